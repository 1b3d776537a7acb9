"""What the HTML reports share: matplotlib figures as embedded PNGs, the page frame, writing without overwriting."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto} table{border-collapse:collapse} "
    "th,td{border:1px solid #ccc;padding:0.2em 0.6em;text-align:left} figure{display:inline-block;margin:0.5em} "
    ".verdict{background:#eef;padding:0.8em;border-left:4px solid #446}"
)


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def figures_html(images: dict[str, bytes]) -> str:
    """The plots as inline PNGs; each plot carries its own title, its key is the image's alternative text."""
    return "".join(
        f'<figure><img alt="{html.escape(k)}" src="data:image/png;base64,{base64.b64encode(v).decode("ascii")}">'
        "</figure>"
        for k, v in images.items()
    )


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>{body}</body></html>\n"
    )


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(path: str | Path, text: str, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
