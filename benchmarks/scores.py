"""Normalised scores of offrl's algorithms on a dataset, several seeds each, as a Markdown table for BENCHMARKS.md.

    python benchmarks/scores.py --dataset ../shared/data/hopper-medium.hdf5 --task hopper \
        --algos bc,td3bc,iql --seeds 0,1,2 --steps 200000 --out benchmarks/results/hopper-medium

Each (algorithm, seed) is one ``offrl.train.train`` run with the algorithm's default config; its run directory
lands under ``--out``. The table reports the final evaluation (``--eval-episodes`` episodes, default 10) after
``--steps`` updates: mean +- std over seeds of the per-seed mean normalised score. Runs already finished under
``--out`` are read back instead of trained again and unfinished ones are resumed from their newest checkpoint, so
an interrupted benchmark can be continued, and several processes can share the work (give each its own --algos /
--seeds; ``--table-only`` then prints the table of all finished runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--task", default="")
    parser.add_argument("--algos", default="bc,td3bc,iql")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--eval-interval", type=int, default=50_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--checkpoint-interval", type=int, default=10_000, help="so an interrupted run loses little")
    parser.add_argument("--out", required=True, help="folder for run directories and results.json")
    parser.add_argument("--table-only", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args(argv)

    from offrl.train import TrainConfig, resume, train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    algos = args.algos.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.table_only:
        for algo in algos:
            for seed in seeds:
                run_dir = out / f"{algo}-s{seed}"
                if _finished(run_dir, args.steps):
                    continue
                if (run_dir / "config.json").exists():
                    resume(run_dir, steps=args.steps, progress=False)
                else:
                    train(
                        TrainConfig(
                            algo=algo,
                            dataset=args.dataset,
                            task=args.task,
                            steps=args.steps,
                            seed=seed,
                            eval_interval=args.eval_interval,
                            eval_episodes=args.eval_episodes,
                            checkpoint_interval=args.checkpoint_interval,
                            output_dir=str(out),
                            run_name=run_dir.name,
                            progress=False,
                        )
                    )
                summary = json.loads((run_dir / "summary.json").read_text())
                print(
                    f"{run_dir.name}: normalised {summary['eval/normalized_score']:.1f} "
                    f"(behaviour {summary['behaviour_normalized_score']:.1f}), "
                    f"{summary['updates_per_second']:.0f} updates/s",
                    flush=True,
                )
    table(out, algos, seeds, args.steps)


def _finished(run_dir: Path, steps: int) -> bool:
    path = run_dir / "summary.json"
    return path.exists() and json.loads(path.read_text())["step"] >= steps


def table(out: Path, algos: list[str], seeds: list[int], steps: int) -> None:
    """Print the Markdown table of every finished run and write ``results.json`` beside the runs."""
    results = {}
    for algo in algos:
        for seed in seeds:
            run_dir = out / f"{algo}-s{seed}"
            if _finished(run_dir, steps):
                results[run_dir.name] = {
                    "algo": algo,
                    "seed": seed,
                    **json.loads((run_dir / "summary.json").read_text()),
                }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n| algorithm | normalised score after {steps} updates (mean +- std over seeds) | per seed |")
    print("|---|---|---|")
    for algo in algos:
        scores = [r["eval/normalized_score"] for r in results.values() if r["algo"] == algo]
        if not scores:
            continue
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(f"| {algo} | {statistics.mean(scores):.1f} +- {spread:.1f} | {', '.join(f'{s:.1f}' for s in scores)} |")


if __name__ == "__main__":
    main()
