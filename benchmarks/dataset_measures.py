"""TQ and SACo of every dataset of the benchmark suite, next to the best score an algorithm reached on it (issue 6):
does the dataset perspective of Schweighofer et al. (2022) hold here?

    python benchmarks/dataset_measures.py --data-dir data/suite --families hopper \\
        --results benchmarks/results/scores-hopper --into BENCHMARKS.md

- TQ: the dataset's mean normalised return / 100 (the task's random and expert references, ``offrl.data.diagnostics``).
- SACo: unique (state, action) bins (``--bins``: 100 per dimension, the paper's, and a coarse 4) relative to the
  family's **union** of datasets, the reference here (the paper's reference is the full replay buffer of the
  behavioural agent's online training; the union holds random, medium, expert and a medium-replay buffer of the
  same task). Binning is over the union's range.
- The scores: the final normalised score of each offrl run archived by ``benchmarks/scores.py`` under
  ``--results`` (comma-separated folders; mean over the seeds present), per algorithm; "BC vs best" tells whether
  BC is within 5 points of the best algorithm (the paper: BC is competitive when TQ is high). Both are left
  empty ("-") until BC, TD3+BC and IQL all have a finished run on the dataset.
- The verdict ``offrl dataset report`` would give with the union as its reference (one column per ``--bins``; the
  report's default is 100), and whether the scores bear it out (``report_verdict_held``): "BC as good" when BC is
  within 5 points of the best; "Q-learning gains" when TD3+BC or IQL beats BC by more than 5; "poor for all" when
  no algorithm reaches 50; "BC a strong baseline, RL may improve" allows every outcome and is not scored ("-").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from offrl.data import load_dataset
from offrl.data.dataset import concatenate
from offrl.data.diagnostics import measure
from offrl.envs import get_task
from offrl.reports.dataset import verdict_kind

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_block import write_block  # noqa: E402

KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert")
BEGIN, END = "<!-- dataset-measures:begin -->", "<!-- dataset-measures:end -->"


def final_scores(results: list[Path], dataset: str) -> dict[str, float]:
    """Mean final score per offrl algorithm over the archived seeds of ``dataset`` (in the first of ``results`` that
    has a folder for it)."""
    scores: dict[str, list[float]] = {}
    folder = next((r / dataset for r in results if (r / dataset).is_dir()), None)
    for run in sorted(folder.glob("*-s[0-9]*")) if folder is not None else []:
        if not run.is_dir():
            continue
        final = run / "final_eval.json"
        summary = final if final.exists() else run / "summary.json"
        if summary.exists():
            algo = run.name.rsplit("-s", 1)[0]
            scores.setdefault(algo, []).append(float(json.loads(summary.read_text())["eval/normalized_score"]))
    return {algo: float(np.mean(v)) for algo, v in scores.items()}


ALGOS = ("bc", "td3bc", "iql")
VERDICT_LABELS = {
    "bc": "BC as good",
    "bc-baseline": "BC a strong baseline, RL may improve",
    "q-learning": "Q-learning gains",
    "poor": "poor for all",
}


def best_and_bc_close(scores: dict[str, float], tolerance: float = 5.0) -> tuple[float | None, str]:
    """The best of the algorithms' scores and whether BC is within ``tolerance`` of it ("yes" / "no"); (None, "-")
    until every one of ALGOS has a score: the best of some of them is not the best algorithm's score."""
    if not all(a in scores for a in ALGOS):
        return None, "-"
    best = max(scores[a] for a in ALGOS)
    return best, "yes" if scores["bc"] >= best - tolerance else "no"


def report_verdict_held(kind: str, scores: dict[str, float], tolerance: float = 5.0) -> str:
    """Whether the scores bear out the dataset report's verdict of this kind ("yes" / "no"; "-" for a verdict that
    allows every outcome or until every one of ALGOS has a score)."""
    if not all(a in scores for a in ALGOS) or kind not in ("bc", "q-learning", "poor"):
        return "-"
    best_rl = max(scores["td3bc"], scores["iql"])
    held = {
        "bc": scores["bc"] >= max(best_rl, scores["bc"]) - tolerance,
        "q-learning": best_rl > scores["bc"] + tolerance,
        "poor": max(best_rl, scores["bc"]) < 50.0,
    }[kind]
    return "yes" if held else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/suite")
    parser.add_argument("--families", default="hopper")
    parser.add_argument(
        "--results",
        default="benchmarks/results/scores-hopper",
        help="comma-separated folders of archived score runs (scores.py --archive), one subfolder per dataset",
    )
    parser.add_argument("--bins", default="100,4", help="bins per dimension for SACo, one column each")
    parser.add_argument("--into", default="")
    args = parser.parse_args()
    bins = [int(b) for b in args.bins.split(",")]
    saco_columns = " | ".join(f"SACo ({b} bins)" for b in bins)
    verdict_columns = " | ".join(f"report's verdict ({b} bins): held?" for b in bins)
    lines = [
        f"| dataset | transitions | TQ | {saco_columns} | BC | TD3+BC | IQL | best | BC within 5 of best | "
        f"{verdict_columns} |",
        "|---|---|---|" + "---|" * len(bins) + "---|---|---|---|---|" + "---|" * len(bins),
    ]
    for family in args.families.split(","):
        task = get_task(family)
        paths = {k: Path(args.data_dir) / f"{family}-{k}.hdf5" for k in KINDS}
        data = {k: load_dataset(p, max_episode_steps=task.max_episode_steps) for k, p in paths.items() if p.exists()}
        union = concatenate(list(data.values()))
        for kind, dataset in data.items():
            ms = [measure(dataset, reference=union, random_return=task.ref_random, best_return=task.ref_expert,
                          bins=b) for b in bins]  # fmt: skip
            scores = final_scores([Path(r) for r in args.results.split(",")], f"{family}-{kind}")
            cells = [f"{scores[a]:.1f}" if a in scores else "-" for a in ALGOS]
            best, bc_close = best_and_bc_close(scores)
            kinds = [verdict_kind(m, has_reference=True) for m in ms]
            verdicts = [f"{VERDICT_LABELS[k]}: {report_verdict_held(k, scores)}" for k in kinds]
            lines.append(
                f"| {family}-{kind} | {dataset.size} | {ms[0].tq:.2f} | "
                + " | ".join(f"{m.saco:.3f}" for m in ms)
                + " | "
                + " | ".join(cells)
                + f" | {'-' if best is None else f'{best:.1f}'} | {bc_close} | "
                + " | ".join(verdicts)
                + " |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.into:
        write_block(args.into, BEGIN, END, text)


if __name__ == "__main__":
    main()
