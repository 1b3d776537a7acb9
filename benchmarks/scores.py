"""Normalised scores of offrl's algorithms on a dataset, several seeds each, as a Markdown table for BENCHMARKS.md.

    python benchmarks/scores.py --dataset ../shared/data/hopper-medium.hdf5 --task hopper \
        --algos bc,td3bc,iql --seeds 0,1,2 --steps 200000 --out benchmarks/results/hopper-medium

Each (algorithm, seed) is one ``offrl.train.train`` run with the algorithm's default config; its run directory
lands under ``--out``. The table reports the final evaluation (``--eval-episodes`` episodes, default 10) after
``--steps`` updates: mean +- std over seeds of the per-seed mean normalised score. Runs already finished under
``--out`` are read back instead of trained again, so an interrupted benchmark can be continued.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
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
    parser.add_argument("--out", required=True, help="folder for run directories and results.json")
    args = parser.parse_args(argv)

    from offrl.train import TrainConfig, resume, train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for algo in args.algos.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            name = f"{algo}-s{seed}"
            run_dir = out / name
            summary_path = run_dir / "summary.json"
            start = time.time()
            if summary_path.exists() and json.loads(summary_path.read_text())["step"] >= args.steps:
                summary = json.loads(summary_path.read_text())
            else:
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
                            output_dir=str(out),
                            run_name=name,
                            progress=False,
                        )
                    )
                summary = json.loads(summary_path.read_text())
            results[name] = {"algo": algo, "seed": seed, **summary, "wall_seconds": time.time() - start}
            print(
                f"{name}: normalised {summary['eval/normalized_score']:.1f} "
                f"(behaviour {summary['behaviour_normalized_score']:.1f}), "
                f"{summary['updates_per_second']:.0f} updates/s",
                flush=True,
            )
            (out / "results.json").write_text(json.dumps(results, indent=2))

    print(f"\n| algorithm | normalised score after {args.steps} updates (mean +- std over seeds) | per seed |")
    print("|---|---|---|")
    for algo in args.algos.split(","):
        scores = [r["eval/normalized_score"] for r in results.values() if r["algo"] == algo]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(f"| {algo} | {statistics.mean(scores):.1f} +- {spread:.1f} | {', '.join(f'{s:.1f}' for s in scores)} |")


if __name__ == "__main__":
    main()
