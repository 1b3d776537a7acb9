"""``offrl report RUN_DIR [RUN_DIR ...]``: learning curves of one or several runs on one HTML page, and as PNG files.

Every run directory contributes its ``eval.csv`` (the normalised score) and ``train.csv`` (losses, Q statistics,
gradient norms, whatever its algorithm logs). Each plot overlays the runs (thin lines); with two or more runs it adds
their mean and the band of one standard deviation, over the steps all of them logged (the seeds of one setting
share their steps). Training metrics are plotted when every run logged them.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offrl.reports.html import figure_png, figures_html, page, pyplot, write_report

__all__ = ["RunCurves", "plots", "read_run", "render", "write_report"]

MAX_TRAIN_PLOTS = 12
#: training metrics plotted first when present (the rest follow in name order, up to MAX_TRAIN_PLOTS)
PREFERRED = ("critic/loss", "critic/q_mean", "actor/loss", "critic/grad_norm", "actor/grad_norm", "value/loss")


@dataclass(frozen=True)
class RunCurves:
    name: str
    algo: str
    dataset: str
    eval: dict[str, np.ndarray]  # column -> values; "step" included
    train: dict[str, np.ndarray]


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    columns = {}
    for key in rows[0]:
        try:
            columns[key] = np.array([float(r[key]) if r[key] not in ("", None) else np.nan for r in rows])
        except ValueError:
            continue  # a text column
    return columns


def read_run(run_dir: str | Path) -> RunCurves:
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir} is not an offrl run directory (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path} is not valid JSON ({e}); the run's config file is corrupt") from e
    dataset = config.get("dataset", {}).get("name", "") if isinstance(config.get("dataset"), dict) else ""
    return RunCurves(
        name=run_dir.name,
        algo=str(config.get("algo", "")),
        dataset=str(dataset),
        eval=_read_csv(run_dir / "eval.csv"),
        train=_read_csv(run_dir / "train.csv"),
    )


def _curve_plot(plt, title: str, curves: list[tuple[str, np.ndarray, np.ndarray]]) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, steps, values in curves:
        ax.plot(steps, values, linewidth=0.8, alpha=0.6 if len(curves) > 1 else 1.0, label=name)
    if len(curves) > 1:
        common = curves[0][1]
        for _, steps, _ in curves[1:]:
            common = np.intersect1d(common, steps)
        if len(common):
            stacked = np.stack([values[np.searchsorted(steps, common)] for _, steps, values in curves])
            mean, std = np.nanmean(stacked, 0), np.nanstd(stacked, 0)
            ax.plot(common, mean, color="black", linewidth=1.8, label=f"mean of {len(curves)}")
            ax.fill_between(common, mean - std, mean + std, color="black", alpha=0.15)
    ax.set_title(title)
    ax.set_xlabel("step")
    if len(curves) <= 8:
        ax.legend(fontsize=6)
    out = figure_png(fig)
    plt.close(fig)
    return out


def plots(runs: list[RunCurves]) -> dict[str, bytes]:
    """Named PNGs: the evaluation score, then the training metrics every run logged."""
    plt = pyplot()
    out = {}
    scored = [r for r in runs if "eval/normalized_score" in r.eval]
    if scored:
        out["score"] = _curve_plot(
            plt, "normalised score", [(r.name, r.eval["step"], r.eval["eval/normalized_score"]) for r in scored]
        )
    shared = set.intersection(*(set(r.train) for r in runs)) - {"step"} if runs else set()
    shared = {m for m in shared if not m.startswith("time/")}
    ordered = [m for m in PREFERRED if m in shared] + sorted(shared - set(PREFERRED))
    for metric in ordered[:MAX_TRAIN_PLOTS]:
        out[metric] = _curve_plot(plt, metric, [(r.name, r.train["step"], r.train[metric]) for r in runs])
    return out


def render(runs: list[RunCurves], images: dict[str, bytes]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.algo)}</td><td>{html.escape(r.dataset)}</td>"
        f"<td>{_final(r)}</td></tr>"
        for r in runs
    )
    body = (
        f"<h1>Run report: {len(runs)} run{'s' if len(runs) != 1 else ''}</h1>"
        f'<table id="runs"><tr><th>run</th><th>algorithm</th><th>dataset</th><th>last score</th></tr>{rows}</table>'
        f"<p>Thin lines: each run; with several runs, the black line is their mean and the band one standard "
        f"deviation, over the steps all runs logged.</p><h2>Curves</h2>{figures_html(images)}"
    )
    return page("offrl run report", body)


def _final(run: RunCurves) -> str:
    scores = run.eval.get("eval/normalized_score")
    return "-" if scores is None or not len(scores) else f"{scores[-1]:.1f}"
