"""Helpers shared by the format readers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, or of every file under a directory (sorted by relative path)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays and bytes turned into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, bytes):
        return obj.decode(errors="replace")
    return obj


# What each writable format's files start with: an existing file is replaced only when it is one of these.
SIGNATURES = {
    "npz": (b"PK\x03\x04", b"PK\x05\x06"),  # a zip archive (np.savez), possibly of no members
    "hdf5": (b"\x89HDF\r\n\x1a\n",),
}
FORMAT_NAMES = {"npz": "an npz file (a zip archive)", "hdf5": "an HDF5 file"}
# Everything offrl's Minari writer creates inside a dataset directory (offrl.data.formats.minari.save_minari).
MINARI_ENTRIES = {Path("data"), Path("data/main_data.hdf5"), Path("data/metadata.json")}


def check_destination(path: str | os.PathLike[str], kind: str, overwrite: bool) -> None:
    """Raise :class:`FileExistsError` unless writing a ``kind`` dataset (``"npz"``, ``"hdf5"`` or ``"minari"``) to
    ``path`` loses nothing the user had.

    A free path is always fine. An existing one needs ``overwrite``, and even then only a file of that format (by its
    first bytes), an empty directory, or a Minari dataset directory holding nothing but what offrl's Minari writer
    creates (``data/main_data.hdf5``, ``data/metadata.json``) is replaced; anything else is refused, named.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    keep = "; remove or rename it yourself, or choose another destination"
    if kind == "minari":
        if path.is_symlink():
            raise FileExistsError(f"{path} is a symbolic link, not a Minari dataset directory; not replacing it{keep}")
        if not path.is_dir():
            raise FileExistsError(
                f"{path} is a file, not a Minari dataset directory; --overwrite replaces only a Minari dataset "
                f"directory written by offrl{keep}"
            )
        others = sorted(
            str(p.relative_to(path))
            for p in path.rglob("*")
            if p.relative_to(path) not in MINARI_ENTRIES
            or (p.relative_to(path) == Path("data")) != (p.is_dir() and not p.is_symlink())
        )
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise FileExistsError(
                f"{path} is not a Minari dataset directory written by offrl: it holds {shown} (offrl's Minari "
                f"writer creates only data/main_data.hdf5 and data/metadata.json); --overwrite replaces only such a "
                f"directory, so nothing in it was deleted{keep}"
            )
        return
    if path.is_dir():
        raise FileExistsError(
            f"{path} is a directory; --overwrite replaces only a .{kind} dataset file, never a directory{keep}"
        )
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(SIGNATURES[kind]):
        raise FileExistsError(
            f"{path} is not {FORMAT_NAMES[kind]} (its first bytes are not that format's signature); --overwrite "
            f"replaces only a file in that dataset format{keep}"
        )
