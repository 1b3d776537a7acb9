"""Files appear whole or not at all: written under a temporary name in the same folder, then renamed.

``tempfile.mkstemp`` / ``mkdtemp`` create owner-only entries (0600 / 0700); :func:`publish` gives the result the
permissions a plain ``open(path, "w")`` (or ``mkdir``) would have under the process's umask before renaming it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Rename the finished temporary file or folder ``tmp`` to ``path`` with the usual permissions."""
    tmp, path = Path(tmp), Path(path)
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
    os.replace(tmp, path)
    return path
