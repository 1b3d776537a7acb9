"""Files appear whole or not at all: written under a temporary name in the same folder, then renamed.

``tempfile.mkstemp`` / ``mkdtemp`` create owner-only entries (0600 / 0700); :func:`publish` gives the result the
permissions a plain ``open(path, "w")`` (or ``mkdir``) would have under the process's umask, or keeps those of the
file it replaces, before renaming it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` alone must set it)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Rename the finished temporary file or folder ``tmp`` to ``path`` with the usual permissions."""
    tmp, path = Path(tmp), Path(path)
    if path.exists() and path.is_dir() == tmp.is_dir():
        mode = path.stat().st_mode & 0o7777  # replacing: keep what the user had
    else:
        mode = (0o777 if tmp.is_dir() else 0o666) & ~_umask()
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path
