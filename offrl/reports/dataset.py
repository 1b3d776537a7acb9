"""``offrl dataset report``: one self-contained HTML page about a dataset (plots embedded as PNG), with the measures
of ``offrl.data.diagnostics`` and a short verdict on what kind of method the data favours.

The verdict reads TQ and SACo the way Schweighofer et al. (2022) found them to matter:

- high TQ (>= ``HIGH_TQ``): behaviour cloning is likely to do about as well as offline RL; with high SACo too,
  constrained offline RL (TD3+BC, IQL) can still edge it out;
- low TQ with high SACo (>= ``HIGH_SACO``): the data explores; Q-learning-based offline RL (IQL, CQL) can improve
  far beyond BC;
- low TQ with low SACo: little to learn from; expect poor results from every method, and collect more diverse or
  better data.

SACo is only meaningful against a reference (``--reference``, e.g. a replay dataset of the same task); without one
the verdict uses TQ alone and says so. The thresholds are offrl's reading of the paper's figures, not values from it.
"""

from __future__ import annotations

import html

import numpy as np

from offrl.data.dataset import Dataset
from offrl.data.diagnostics import DatasetMeasures
from offrl.reports.html import figure_png, figures_html, fmt, page, pyplot, write_report

__all__ = ["HIGH_SACO", "HIGH_TQ", "plots", "render", "verdict", "verdict_kind", "write_report"]

HIGH_TQ = 0.6
HIGH_SACO = 0.5


def verdict_kind(measures: DatasetMeasures, has_reference: bool) -> str | None:
    """Which case of the verdict the measures fall in: ``"bc"`` (high TQ, low SACo: behaviour cloning will likely
    do as well as offline RL), ``"bc-baseline"`` (high TQ and SACo: BC is a strong baseline that constrained offline
    RL can still improve on), ``"q-learning"`` (low TQ, high SACo: Q-learning can improve far beyond BC), ``"poor"``
    (low TQ and SACo: poor results from every method); without a reference, ``"bc-no-reference"`` or
    ``"imitation-not-enough"`` by TQ alone; None when TQ is unknown."""
    if measures.tq is None:
        return None
    high_tq = measures.tq >= HIGH_TQ
    if not has_reference:
        return "bc-no-reference" if high_tq else "imitation-not-enough"
    high_saco = measures.saco >= HIGH_SACO
    if high_tq:
        return "bc-baseline" if high_saco else "bc"
    return "q-learning" if high_saco else "poor"


def verdict(measures: DatasetMeasures, has_reference: bool) -> str:
    tq, saco = measures.tq, measures.saco
    kind = verdict_kind(measures, has_reference)
    coverage = " Coverage was not judged: pass --reference (e.g. a replay dataset of the task) for SACo."
    if kind is None:
        return "TQ unknown (the task's reference returns are needed: pass --task); no verdict."
    if kind == "bc-no-reference":
        return f"High TQ ({tq:.2f}): behaviour cloning will likely do as well as offline RL.{coverage}"
    if kind == "imitation-not-enough":
        return (
            f"Low TQ ({tq:.2f}): imitation alone will not do; offline RL needs data that covers good actions.{coverage}"
        )
    if kind == "bc":
        return f"High TQ ({tq:.2f}), low SACo ({saco:.2f}): behaviour cloning will likely do as well as offline RL."
    if kind == "bc-baseline":
        return (
            f"High TQ ({tq:.2f}), high SACo ({saco:.2f}): behaviour cloning is a strong baseline; constrained offline "
            "RL (TD3+BC, IQL) can still improve on it."
        )
    if kind == "q-learning":
        return (
            f"Low TQ ({tq:.2f}), high SACo ({saco:.2f}): the data explores; Q-learning-based offline RL (IQL, CQL) can "
            "improve far beyond behaviour cloning."
        )
    return (
        f"Low TQ ({tq:.2f}), low SACo ({saco:.2f}): little to learn from; expect poor results from every method and "
        "collect more diverse or better data."
    )


def plots(dataset: Dataset, measures: DatasetMeasures, normalized_returns: np.ndarray | None) -> dict[str, bytes]:
    """Named PNGs: returns, episode lengths, actions, state coverage."""
    plt = pyplot()

    out = {}
    fig, ax = plt.subplots(figsize=(5, 3))
    values = measures.episode_returns if normalized_returns is None else normalized_returns
    ax.hist(values, bins=min(50, max(5, measures.episodes // 2)), color="#4c72b0")
    ax.set_xlabel("normalised return" if normalized_returns is not None else "return")
    ax.set_ylabel("episodes")
    ax.set_title("Episode returns")
    out["returns"] = figure_png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(measures.episode_lengths, bins=min(50, max(5, measures.episodes // 2)), color="#55a868")
    ax.set_xlabel("length")
    ax.set_ylabel("episodes")
    ax.set_title("Episode lengths")
    out["lengths"] = figure_png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    if dataset.discrete:
        counts = np.bincount(dataset.actions, minlength=dataset.action_space.n)
        ax.bar(np.arange(len(counts)), counts, color="#c44e52")
        ax.set_xlabel("action")
        ax.set_ylabel("transitions")
    else:
        flat = dataset.actions.reshape(dataset.size, -1)
        for j in range(min(flat.shape[1], 8)):
            ax.hist(flat[:, j], bins=50, histtype="step", label=f"dim {j}")
        ax.set_xlabel("action value")
        ax.set_ylabel("transitions")
        ax.legend(fontsize=7)
    ax.set_title("Actions")
    out["actions"] = figure_png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(np.arange(len(measures.state_coverage)), measures.state_coverage, color="#8172b2")
    ax.set_ylim(0, 1)
    ax.set_xlabel("observation dimension")
    ax.set_ylabel(f"share of {measures.bins} bins used")
    ax.set_title("State coverage")
    out["coverage"] = figure_png(fig)
    plt.close(fig)
    return out


def render(
    name: str,
    dataset: Dataset,
    measures: DatasetMeasures,
    *,
    task: str | None,
    reference: str | None,
    normalized_returns: np.ndarray | None,
) -> str:
    """The report page as an HTML string (no external files or scripts)."""
    summary = measures.summary()
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(fmt(v))}</td></tr>" for k, v in summary.items())
    figures = figures_html(plots(dataset, measures, normalized_returns))
    text = verdict(measures, reference is not None)
    body = f"""<h1>Dataset report: {html.escape(name)}</h1>
<p>task: {html.escape(task or "unknown")}; SACo reference: {html.escape(reference or "none (the dataset itself)")}</p>
<p class="verdict" id="verdict">{html.escape(text)}</p>
<h2>Measures</h2><table id="measures">{rows}</table>
<p>TQ: mean return normalised between the task's random (0) and expert (1) reference returns. SACo: unique
(state, action) pairs after cutting every dimension into {measures.bins} bins over the reference's range, relative to
the reference (Schweighofer et al. 2022).</p>
<h2>Plots</h2>{figures}
"""
    return page(f"offrl dataset report: {name}", body)
