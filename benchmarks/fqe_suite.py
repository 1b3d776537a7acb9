"""How well Fitted Q Evaluation judges trained policies without running them: FQE on every finished run of a score
benchmark (``benchmarks/scores.py --out DIR``) against the same policy's online discounted return.

Usage::

    python benchmarks/fqe_suite.py --runs runs/scores-hopper --out runs/fqe-suite
    python benchmarks/fqe_suite.py --runs runs/scores-hopper --out runs/fqe-suite --table-only \\
        --json benchmarks/results/fqe-suite.json --into BENCHMARKS.md

For every ``RUNS/DATASET/ALGO-sSEED`` run with a ``summary.json`` (offrl runs; d3rlpy's records have no offrl
checkpoint), the run's newest checkpoint is evaluated by :func:`offrl.ope.fitted_q_evaluation` on the run's own
training data (``--members`` critics: the point estimate and bootstrap fits for the interval) and rolled out online
for ``--episodes`` episodes (env seeds 100000...) for its true discounted return at the same discount. One record per
run in ``--out/DATASET/ALGO-sSEED.json``; finished records are skipped, so the command resumes and picks up runs
that finished since.

The table reports, as Fu et al. ("Benchmarks for Deep Off-Policy Evaluation", ICLR 2021) do: the error of the
estimate (absolute, and relative to the online value), Spearman's rank correlation between estimates and online
values (over all policies, and within each dataset, where OPE would choose among policies trained on the same
data), regret@1 (how much online value is lost by deploying the policy FQE ranks first on a dataset instead of the
best one), and how often the bootstrap interval covers the online value.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_block import write_block  # noqa: E402

from offrl.train.checkpoint import atomic_write_json  # noqa: E402

BEGIN, END = "<!-- fqe-suite:begin -->", "<!-- fqe-suite:end -->"
ONLINE_SEED = 100_000


def finished_runs(runs: Path) -> list[Path]:
    """Finished runs that kept a checkpoint (runs made elsewhere may have brought back only their summaries)."""
    return sorted(p.parent for p in runs.glob("*/*/summary.json") if any((p.parent / "checkpoints").glob("*.msgpack")))


def evaluate_run(run_dir: Path, members: int, steps: int, tau: float, episodes: int) -> dict:
    from offrl.envs import evaluate
    from offrl.ope import FQEConfig, fitted_q_evaluation
    from offrl.train.offline import load_policy, read_run_config, resolve_dataset

    saved = read_run_config(run_dir)
    policy = load_policy(run_dir)
    dataset = resolve_dataset(saved["dataset"]["path"], saved["train"].get("task", "")).dataset
    recorded, current = saved["dataset"].get("fingerprint"), dataset.fingerprint()
    if recorded is not None and recorded != current:
        raise SystemExit(
            f"{run_dir} was trained on other data (fingerprint {recorded[:12]}...) than the file now at "
            f"{saved['dataset']['path']} ({current[:12]}...): FQE on it would evaluate the policy on another dataset "
            "than its own"
        )
    config = FQEConfig(members=members, steps=steps, tau=tau)
    start = time.perf_counter()
    result = fitted_q_evaluation(dataset, policy, config)
    online = evaluate(policy, policy.task, episodes, seed=ONLINE_SEED, discount=config.discount)
    assert online.discounted_returns is not None
    returns = online.discounted_returns
    return {
        "run": f"{run_dir.parent.name}/{run_dir.name}",
        "dataset": run_dir.parent.name,
        "algo": saved["algo"],
        "step": json.loads((run_dir / "summary.json").read_text())["step"],
        "fqe": {
            "estimate": result.estimate,
            "low": result.low,
            "high": result.high,
            "members": members,
            "steps": steps,
            "tau": tau,
            "discount": config.discount,
            "td_loss": result.td_loss,
            "seconds": result.seconds,
        },  # fmt: skip
        "online": {
            "discounted_return": float(returns.mean()),
            "discounted_return_sem": float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0.0,
            "normalized_score": online.normalized_mean,
            "episodes": episodes,
        },  # fmt: skip
        "seconds": time.perf_counter() - start,
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); nan with fewer than 3 points or no spread."""
    if len(x) < 3:
        return float("nan")

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def summarise(records: list[dict]) -> dict:
    est = np.array([r["fqe"]["estimate"] for r in records])
    true = np.array([r["online"]["discounted_return"] for r in records])
    score = np.array([r["online"]["normalized_score"] for r in records])
    low = np.array([r["fqe"]["low"] for r in records])
    high = np.array([r["fqe"]["high"] for r in records])
    error = np.abs(est - true)
    per_dataset = {}
    for name in sorted({r["dataset"] for r in records}):
        idx = [i for i, r in enumerate(records) if r["dataset"] == name]
        chosen = idx[int(np.argmax(est[idx]))]
        per_dataset[name] = {
            "policies": len(idx),
            "spearman": spearman(est[idx], true[idx]),
            "regret_at_1": float(true[idx].max() - true[chosen]),
            "regret_at_1_relative": float((true[idx].max() - true[chosen]) / max(abs(true[idx].max()), 1e-8)),
            "median_relative_error": float(np.median(error[idx] / np.maximum(np.abs(true[idx]), 1e-8))),
        }
    within = [d["spearman"] for d in per_dataset.values() if np.isfinite(d["spearman"])]
    environments = sorted({environment(r["dataset"]) for r in records})
    return {
        "policies": len(records),
        "spearman": spearman(est, true),
        "spearman_normalized_score": spearman(est, score),
        "pearson": float(np.corrcoef(est, true)[0, 1]) if len(records) > 2 else float("nan"),
        "mean_absolute_error": float(error.mean()),
        "median_relative_error": float(np.median(error / np.maximum(np.abs(true), 1e-8))),
        "interval_coverage": float(((low <= true) & (true <= high)).mean()),
        "mean_within_dataset_spearman": float(np.mean(within)) if within else float("nan"),
        "mean_regret_at_1_relative": float(np.mean([d["regret_at_1_relative"] for d in per_dataset.values()])),
        "per_dataset": per_dataset,
        "per_environment": (
            {e: summarise([r for r in records if environment(r["dataset"]) == e]) for e in environments}
            if len(environments) > 1
            else {}
        ),
    }


def environment(dataset: str) -> str:
    """The environment a suite dataset comes from: ``walker2d-medium-replay`` -> ``walker2d``."""
    return dataset.split("-", 1)[0]


def table(records: list[dict], summary: dict) -> str:
    lines = [
        "| dataset | policy | FQE estimate [95% interval] | online discounted return (± s.e.) | error | covered | "
        "online normalised score |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        f, o = r["fqe"], r["online"]
        covered = "yes" if f["low"] <= o["discounted_return"] <= f["high"] else "no"
        lines.append(
            f"| {r['dataset']} | {r['run'].split('/')[1]} | {f['estimate']:.1f} [{f['low']:.1f}, {f['high']:.1f}] | "
            f"{o['discounted_return']:.1f} ± {o['discounted_return_sem']:.1f} | "
            f"{f['estimate'] - o['discounted_return']:+.1f} | {covered} | {o['normalized_score']:.1f} |"
        )
    lines += ["", "| dataset | policies | Spearman (FQE vs online) | regret@1 | median relative error |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name, d in summary["per_dataset"].items():
        lines.append(
            f"| {name} | {d['policies']} | {d['spearman']:.2f} | {d['regret_at_1']:.1f} "
            f"({d['regret_at_1_relative']:.0%}) | {d['median_relative_error']:.0%} |"
        )
    if summary["per_environment"]:
        lines += ["", "| environment | policies | Spearman | Pearson | mean absolute error | median relative error | "
                  "interval covers | mean within-dataset Spearman | mean regret@1 |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, e in summary["per_environment"].items():
            lines.append(
                f"| {name} | {e['policies']} | {e['spearman']:.2f} | {e['pearson']:.2f} | "
                f"{e['mean_absolute_error']:.1f} | {e['median_relative_error']:.0%} | {e['interval_coverage']:.0%} | "
                f"{e['mean_within_dataset_spearman']:.2f} | {e['mean_regret_at_1_relative']:.0%} |"
            )
    s = summary
    lines += [
        "",
        f"Over all {s['policies']} policies: Spearman {s['spearman']:.2f} (against the undiscounted normalised "
        f"score: {s['spearman_normalized_score']:.2f}), Pearson {s['pearson']:.2f}, mean absolute "
        f"error {s['mean_absolute_error']:.1f}, median relative error {s['median_relative_error']:.0%}, the 95% "
        f"bootstrap interval covers the online value for {s['interval_coverage']:.0%}; within a dataset: mean "
        f"Spearman {s['mean_within_dataset_spearman']:.2f}, mean regret@1 {s['mean_regret_at_1_relative']:.0%} of the "
        "best policy's value.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="a benchmarks/scores.py --out folder")
    parser.add_argument("--out", default="runs/fqe-suite", help="where the per-run records go")
    parser.add_argument("--members", type=int, default=5, help="FQE critics (point estimate + bootstrap fits)")
    parser.add_argument("--steps", type=int, default=20_000, help="FQE gradient steps")
    parser.add_argument("--tau", type=float, default=0.02, help="FQE target Polyak rate")
    parser.add_argument("--episodes", type=int, default=10, help="online episodes per policy")
    parser.add_argument("--datasets", default="", help="comma-separated dataset names to include (default: all)")
    parser.add_argument("--table-only", action="store_true", help="print the table of the finished records")
    parser.add_argument("--json", help="also write the records and summary here")
    parser.add_argument("--into", help="replace the table between the fqe-suite markers of this Markdown file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    wanted = set(filter(None, args.datasets.split(",")))
    runs = [r for r in finished_runs(Path(args.runs)) if not wanted or r.parent.name in wanted]
    if not args.table_only:
        for i, run_dir in enumerate(runs):
            path = out / run_dir.parent.name / f"{run_dir.name}.json"
            if path.exists():
                continue
            print(f"[{i + 1}/{len(runs)}] {run_dir}", flush=True)
            record = evaluate_run(run_dir, args.members, args.steps, args.tau, args.episodes)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, record)
            print(
                f"  FQE {record['fqe']['estimate']:.1f} [{record['fqe']['low']:.1f}, {record['fqe']['high']:.1f}], "
                f"online {record['online']['discounted_return']:.1f} ({record['seconds']:.0f} s)",
                flush=True,
            )
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/*.json"))]
    records = [r for r in records if not wanted or r["dataset"] in wanted]
    if not records:
        print("no finished records", file=sys.stderr)
        return 1
    summary = summarise(records)
    text = table(records, summary)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"records": records, "summary": summary}, indent=2) + "\n")
    if args.into:
        write_block(args.into, BEGIN, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
