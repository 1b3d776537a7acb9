"""How often the offline workflow's verdict (``offrl workflow``, Kumar et al. 2021) picks a good checkpoint: train
algorithms on the benchmark datasets keeping every checkpoint, judge each run from its checkpoints alone, then
compare with the same checkpoints' online scores, which the verdict never sees.

Usage::

    python benchmarks/workflow_suite.py --algos td3bc,iql,cql --seeds 0 --steps 100000 --interval 10000 \\
        --out runs/workflow-suite
    python benchmarks/workflow_suite.py --out runs/workflow-suite --table-only \\
        --json benchmarks/results/workflow-suite.json --into BENCHMARKS.md

Each run (``--out/DATASET/ALGO-sSEED``, the paper settings of ``benchmarks/configs/``) evaluates its policy online
(``--episodes`` episodes) and writes a checkpoint every ``--interval`` updates, keeping all of them; a stopped run
resumes from its newest checkpoint. Then :func:`offrl.ope.workflow.checkpoint_statistics` and
:func:`~offrl.ope.workflow.diagnose` give the verdict and the checkpoint to deploy (record: ``workflow.json`` in the
run directory). ``--table-only --json FILE`` keeps FILE's records of runs that are not under ``--out`` (trained on a
machine since lost), so a table can grow over several machines.

Scored per run, in normalised score from the online evaluations at the checkpoints:

- **regret**: best checkpoint's score minus the recommended checkpoint's; the recommendation is **good** when the
  regret is at most ``--tolerance`` (5) points;
- the same for two rules that need no workflow: always the last checkpoint, and a checkpoint drawn at random
  (its expected regret and probability of being good);
- **verdict right**: "overfitting" is right when the recommended (peak) checkpoint beats the last by more than the
  tolerance (stopping early helped); "fine" when the last checkpoint is good; "underfitting" when the final policy
  scores below the data's behaviour (the run needs changing); "diverging" when the last checkpoint is not good
  (the run went wrong).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_block import write_block  # noqa: E402
from scores import SUITE_KINDS, offrl_run_fingerprint, paper_config, refuse_runs_on_other_data  # noqa: E402

from offrl.train.checkpoint import atomic_write_json  # noqa: E402

BEGIN, END = "<!-- workflow-suite:begin -->", "<!-- workflow-suite:end -->"


def finished(run_dir: Path, steps: int) -> bool:
    summary = run_dir / "summary.json"
    return summary.exists() and json.loads(summary.read_text())["step"] >= steps


def run_config(dataset: Path, algo: str, seed: int, steps: int, interval: int, episodes: int, out: Path):
    """The TrainConfig and algorithm config of a new run (paper settings from benchmarks/configs/)."""
    from offrl.train import TrainConfig

    name = dataset.stem
    task = name.split("-")[0]
    algo_config, _, batch_size = paper_config(algo, task, name)
    config = TrainConfig(
        algo=algo,
        dataset=str(dataset),
        task=task,
        steps=steps,
        seed=seed,
        eval_interval=interval,
        eval_episodes=episodes,
        checkpoint_interval=interval,
        keep_checkpoints=0,
        output_dir=str(out / name),
        run_name=f"{algo}-s{seed}",
        progress=False,
        **({"batch_size": batch_size} if batch_size else {}),
    )
    return config, algo_config


def started_run_dir(dataset: Path, algo: str, seed: int, out: Path) -> Path:
    """The run's directory; one left by a run stopped before its first checkpoint is removed (only logs)."""
    from offrl.train.checkpoint import list_checkpoints

    run_dir = out / dataset.stem / f"{algo}-s{seed}"
    if (run_dir / "config.json").exists() and not list_checkpoints(run_dir / "checkpoints"):
        shutil.rmtree(run_dir)  # logs of a run stopped before its first checkpoint, inside --out
    return run_dir


def train_run(dataset: Path, algo: str, seed: int, steps: int, interval: int, episodes: int, out: Path) -> Path:
    from offrl.train import resume, train

    run_dir = started_run_dir(dataset, algo, seed, out)
    if finished(run_dir, steps):
        return run_dir
    if (run_dir / "config.json").exists():
        resume(run_dir, steps=steps, progress=False)
        return run_dir
    train(*run_config(dataset, algo, seed, steps, interval, episodes, out))
    return run_dir


def train_groups(runs: list[tuple[Path, str, int]], args: argparse.Namespace) -> None:
    """Train the unfinished (dataset, algorithm, seed) runs as groups (``offrl.train.group``): one per algorithm and
    settings; started ones continue as a group, or one at a time when they stopped at different steps."""
    from offrl.train.group import train_or_resume_group

    out = Path(args.out)
    groups: dict[tuple, list[tuple]] = {}
    for dataset, algo, seed in runs:
        if finished(started_run_dir(dataset, algo, seed, out), args.steps):
            continue
        config, algo_config = run_config(dataset, algo, seed, args.steps, args.interval, args.episodes, out)
        groups.setdefault((algo, config.task, config.batch_size, repr(algo_config)), []).append((config, algo_config))
    for members in groups.values():
        train_or_resume_group([c for c, _ in members], members[0][1], eval_workers=args.eval_workers)


def judged_by_current_rules(record: dict) -> bool:
    from offrl.ope.workflow import RULES

    return record.get("rules") == RULES


def cached_record(path: Path) -> dict | None:
    """A run's judged record (``workflow.json``), unless it is missing or was judged under other rules."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if judged_by_current_rules(record) else None


def published_records(path: str | None) -> dict[str, dict]:
    """The records of the table written before (``--json``), by run, that the current rules judged. ``--table-only``
    keeps those whose run directory is not here (a run trained on a machine since lost): a record holds every
    checkpoint's statistics and online score, all the table needs; it cannot be judged again without the run."""
    if not path or not Path(path).exists():
        return {}
    return {r["run"]: r for r in json.loads(Path(path).read_text()) if judged_by_current_rules(r)}


def judge(run_dir: Path, dataset: Path, tolerance: float) -> dict:
    """The workflow's verdict on ``run_dir`` and how it compares with the online scores of its checkpoints."""
    from offrl.data import load_dataset
    from offrl.ope.workflow import RULES, checkpoint_statistics, diagnose

    stats = checkpoint_statistics(run_dir, load_dataset(dataset))
    diagnosis = diagnose(stats)
    with open(run_dir / "eval.csv") as f:
        online = {int(row["step"]): float(row["eval/normalized_score"]) for row in csv.DictReader(f)}
    steps = [s.step for s in stats if s.step in online]
    scores = np.array([online[s] for s in steps])
    best = float(scores.max())
    recommended = online[diagnosis.recommended_step]
    last = float(scores[-1])
    behaviour = json.loads((run_dir / "summary.json").read_text())["behaviour_normalized_score"]
    right = {
        "overfitting": recommended - last > tolerance,
        "fine": best - last <= tolerance,
        "underfitting": last < behaviour,
        "diverging": best - last > tolerance,
    }[diagnosis.verdict]
    return {
        "run": f"{run_dir.parent.name}/{run_dir.name}",
        "dataset": run_dir.parent.name,
        "algo": run_dir.name.rsplit("-s", 1)[0],
        "verdict": diagnosis.verdict,
        "explanation": diagnosis.explanation,
        "recommended_step": diagnosis.recommended_step,
        "rules": RULES,
        "value_bounds": [v if np.isfinite(v) else None for v in (stats[-1].value_low, stats[-1].value_high)],
        "checkpoints": [
            {
                "step": s.step,
                "dataset_q": s.dataset_q,
                "td_error": s.td_error,
                "target_scale": s.target_scale,
                "target_variance": s.target_variance,
                "online_score": online.get(s.step),
            }
            for s in stats  # fmt: skip
        ],
        "best_step": steps[int(np.argmax(scores))],
        "best_score": best,
        "recommended_score": recommended,
        "last_score": last,
        "behaviour_score": behaviour,
        "regret": best - recommended,
        "regret_last": best - last,
        "regret_random": float((best - scores).mean()),
        "good": best - recommended <= tolerance,
        "good_last": best - last <= tolerance,
        "good_random": float((best - scores <= tolerance).mean()),
        "verdict_right": bool(right),
    }


def table(records: list[dict], tolerance: float) -> str:
    lines = [
        "| dataset | algorithm | verdict | deploy step | its score | best (step) | last | regret | verdict right |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['dataset']} | {r['algo']} | {r['verdict']} | {r['recommended_step']} | "
            f"{r['recommended_score']:.1f} | {r['best_score']:.1f} ({r['best_step']}) | {r['last_score']:.1f} | "
            f"{r['regret']:.1f} | {'yes' if r['verdict_right'] else 'no'} |"
        )
    n = len(records)
    mean = lambda key: float(np.mean([r[key] for r in records]))  # noqa: E731
    verdicts = {
        v: sum(r["verdict"] == v for r in records) for v in ("fine", "overfitting", "underfitting", "diverging")
    }
    lines += [
        "",
        f"| rule ({n} runs) | good checkpoint (regret <= {tolerance:g}) | mean regret |",
        "|---|---|---|",
        f"| workflow verdict | {mean('good'):.0%} | {mean('regret'):.1f} |",
        f"| last checkpoint | {mean('good_last'):.0%} | {mean('regret_last'):.1f} |",
        f"| random checkpoint (expected) | {mean('good_random'):.0%} | {mean('regret_random'):.1f} |",
        "",
        f"Verdicts: {verdicts['fine']} fine, {verdicts['overfitting']} overfitting, {verdicts['underfitting']} "
        f"underfitting, {verdicts['diverging']} diverging; the verdict is right for {mean('verdict_right'):.0%} of "
        "the runs.",
    ]
    return "\n".join(lines)


def publish(records: list[dict], tolerance: float, json_path: str | None, into: str | None,
            markers: tuple[str, str]) -> int:  # fmt: skip
    """Print the table of ``records``; also write them to ``json_path`` and the table between ``markers`` of the
    Markdown file ``into``. Returns the exit status (1 when there is nothing to tabulate)."""
    if not records:
        print("no finished runs", file=sys.stderr)
        return 1
    text = table(records, tolerance)
    print(text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(records, indent=2) + "\n")
    if into:
        write_block(into, *markers, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/suite", help="where the suite's datasets are")
    parser.add_argument("--datasets", default=",".join(f"hopper-{k}" for k in SUITE_KINDS), help="dataset names")
    parser.add_argument("--algos", default="td3bc,iql,cql", help="algorithms (with a critic)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=100_000, help="updates per run")
    parser.add_argument("--interval", type=int, default=10_000, help="updates between checkpoints/evaluations")
    parser.add_argument("--episodes", type=int, default=10, help="online episodes per evaluation")
    parser.add_argument(
        "--tolerance", type=float, default=5.0, help="normalised points from the best that count as good"
    )
    parser.add_argument("--out", default="runs/workflow-suite")
    parser.add_argument(
        "--group",
        action="store_true",
        help="train each algorithm's runs together as vmapped groups (offrl.train.group; meant for a GPU)",
    )
    parser.add_argument("--eval-workers", type=int, default=0, help="with --group: evaluation worker processes")
    parser.add_argument("--table-only", action="store_true", help="judge and tabulate the finished runs only")
    parser.add_argument(
        "--json",
        help="also write the records here; with --table-only, the records already in it are kept for the runs that "
        "are not finished under --out",
    )
    parser.add_argument("--into", help="replace the table between the workflow-suite markers of this Markdown file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    datasets = [Path(args.data_dir) / f"{name}.hdf5" for name in args.datasets.split(",") if name]
    missing = [str(d) for d in datasets if not d.exists()]
    if missing:
        parser.error(f"datasets not found: {', '.join(missing)} (make them with benchmarks/make_suite.py)")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [(d, a, s) for a in args.algos.split(",") for d in datasets for s in seeds]
    # a run trained on another file of the same name (a rebuilt suite file) would describe other data
    refuse_runs_on_other_data(
        out, [(f"{d.stem}/{a}-s{s}", offrl_run_fingerprint(out / d.stem / f"{a}-s{s}"), str(d), "") for d, a, s in runs]
    )
    if args.group and not args.table_only:
        train_groups(runs, args)
    records, published = [], published_records(args.json) if args.table_only else {}
    for algo in args.algos.split(","):  # the fast algorithms' runs first
        for dataset in datasets:
            for seed in seeds:
                name = f"{dataset.stem}/{algo}-s{seed}"
                run_dir = out / name
                done = finished(run_dir, args.steps)
                if not done and args.table_only:
                    if name in published:  # judged before, on a machine that had the run
                        print(f"{name}: not finished here; its record in {args.json} is kept", flush=True)
                        records.append(published[name])
                    continue
                if not done:
                    print(f"{name}: training", flush=True)
                    train_run(dataset, algo, seed, args.steps, args.interval, args.episodes, out)
                path = run_dir / "workflow.json"
                record = cached_record(path)
                if record is None:
                    record = judge(run_dir, dataset, args.tolerance)
                    atomic_write_json(path, record)
                print(
                    f"{record['run']}: {record['verdict']}, deploy {record['recommended_step']} "
                    f"({record['recommended_score']:.1f}; best {record['best_score']:.1f})",
                    flush=True,
                )
                records.append(record)
    return publish(records, args.tolerance, args.json, args.into, (BEGIN, END))


if __name__ == "__main__":
    sys.exit(main())
