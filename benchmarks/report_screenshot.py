"""Open offrl's HTML reports in a real headless browser (Chromium) and check the screenshots (issue 6).

    python benchmarks/report_screenshot.py REPORT.html [REPORT.html ...] --out-dir runs/screenshots

For each page: a 1200x1600 screenshot with ``chromium --headless``, then checks on the pixels that the page rendered
as a reader would see it: not blank; for a dataset report (``offrl dataset report``) the verdict box (its background
colour) near the top and the plots (the colours of the return histogram and the coverage bars); for a run report
(``offrl report``) the runs' curves (matplotlib's first line colour, translucent) and the band of their spread.
Exits 1 if a check fails. Chromium comes from apt (``apt-get install chromium``); the command is found as
``chromium``, ``chromium-browser`` or ``$CHROMIUM``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

VERDICT_BACKGROUND = (0xEE, 0xEE, 0xFF)
PLOT_COLOURS = {"returns histogram": (0x4C, 0x72, 0xB0), "coverage bars": (0x81, 0x72, 0xB2)}
RUN_CURVE = (121, 173, 210)  # matplotlib's first line colour (#1f77b4) drawn at alpha 0.6 over white
SPREAD_BAND = (0xD9, 0xD9, 0xD9)  # black at alpha 0.15 over white


def browser() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name) or name
    raise FileNotFoundError("no Chromium found: apt-get install chromium, or set CHROMIUM")


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 1600) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri()]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return png


def pixels_of(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 6) -> np.ndarray:
    rgb = (image[..., :3] * 255).round().astype(int) if image.dtype != np.uint8 else image[..., :3].astype(int)
    return (np.abs(rgb - np.array(colour)) <= tolerance).all(axis=-1)


def check(png: Path, kind: str = "dataset") -> list[str]:
    """The problems found in a screenshot of a ``dataset`` or ``runs`` report (empty: it looks right)."""
    import matplotlib.image

    image = matplotlib.image.imread(png)
    problems = []
    if image[..., :3].std() < 0.05:
        problems.append("the page is blank")
    if kind == "runs":
        if pixels_of(image, RUN_CURVE, tolerance=25).sum() < 300:
            problems.append("no run curves")
        if pixels_of(image, SPREAD_BAND, tolerance=4).sum() < 5000:
            problems.append("no spread band")
        return problems
    verdict = pixels_of(image, VERDICT_BACKGROUND)
    if verdict.sum() < 5000:
        problems.append("no verdict box")
    elif np.flatnonzero(verdict.any(axis=1))[0] > image.shape[0] // 4:
        problems.append("the verdict box is not near the top")
    for name, colour in PLOT_COLOURS.items():
        if pixels_of(image, colour).sum() < 200:
            problems.append(f"no {name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", help="report HTML files")
    parser.add_argument("--out-dir", default="runs/screenshots")
    args = parser.parse_args(argv)
    failed = 0
    for page in map(Path, args.pages):
        kind = "dataset" if 'id="verdict"' in page.read_text() else "runs"
        png = screenshot(page, Path(args.out_dir) / f"{page.parent.name}-{page.stem}.png")
        problems = check(png, kind)
        failed += bool(problems)
        print(f"{page} ({kind} report) -> {png}: {'ok' if not problems else '; '.join(problems)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
