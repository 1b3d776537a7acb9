"""Write a generated table into a Markdown file (BENCHMARKS.md) between two marker comments, keeping the rest."""

from __future__ import annotations

from pathlib import Path

from offrl.train.checkpoint import atomic_write_bytes


def write_block(path: str | Path, begin: str, end: str, text: str) -> None:
    """Replace what lies between ``begin`` and ``end`` in ``path`` by ``text``; append the block if the markers are
    absent (and create the file if it does not exist)."""
    path = Path(path)
    content = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in content and end in content.split(begin, 1)[1]:
        head, rest = content.split(begin, 1)
        content = head + block + rest.split(end, 1)[1]
    else:
        content = content.rstrip("\n") + ("\n\n" if content else "") + block + "\n"
    atomic_write_bytes(path, content.encode())
