"""Normalised scores of offrl's algorithms on a dataset, several seeds each, as a Markdown table for BENCHMARKS.md.

    python benchmarks/scores.py --dataset ../shared/data/hopper-medium.hdf5 --task hopper \
        --algos bc,td3bc,iql --seeds 0,1,2 --steps 200000 --out benchmarks/results/hopper-medium

Each (algorithm, seed) is one ``offrl.train.train`` run with the settings in ``benchmarks/configs/ALGO-FAMILY.json``
(one small file per algorithm and task family: ``mujoco`` for hopper / halfcheetah / walker2d / ant, ``classic``
otherwise; paper defaults); its run directory lands under ``--out``. ``--quick`` runs a small set in minutes.
The table reports the final evaluation (``--eval-episodes`` episodes, default 10) after
``--steps`` updates: mean +- std over seeds of the per-seed mean normalised score. Runs already finished under
``--out`` are read back instead of trained again and unfinished ones are resumed from their newest checkpoint, so
an interrupted benchmark can be continued, and several processes can share the work (give each its own --algos /
--seeds; ``--table-only`` then prints the table of all finished runs). With ``--peer`` (and d3rlpy installed, e.g.
in a separate environment with the ``bench`` extra) d3rlpy's IQL and TD3+BC run on the same data, steps and seeds
in the same invocation (``benchmarks/peer_d3rlpy.py``) and get their own rows.

Ten episodes per seed are what papers report, but on hopper an episode either falls early or runs long, so that
number moves by 20 points between evaluation seeds. Each finished run's final checkpoint is therefore also
evaluated on ``--final-episodes`` episodes (default 100, the same environment seeds for every run, cached in the
run directory as ``final_eval.json``); the table shows both, the best evaluation during training, and updates/s.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="dataset file/directory or built-in name (required unless --quick)")
    parser.add_argument("--task", default="")
    parser.add_argument("--algos", default="bc,td3bc,iql")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--eval-interval", type=int, default=50_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--final-episodes", type=int, default=100, help="episodes of the final re-evaluation")
    parser.add_argument("--checkpoint-interval", type=int, default=10_000, help="so an interrupted run loses little")
    parser.add_argument("--out", help="folder for run directories and results.json (--quick: runs/scores-quick)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small set that finishes in minutes: BC, TD3+BC and IQL on the built-in pendulum-mixed data (no "
        "download), 1 seed, 5000 updates, 20 final episodes",
    )
    parser.add_argument("--table-only", action="store_true", help="only print the table of finished runs")
    parser.add_argument(
        "--peer",
        action="store_true",
        help="also run d3rlpy's IQL and TD3+BC (those of --algos it has) on the same data, steps and seeds, in "
        "this process, and add their rows (needs the bench extra; results cached as d3rlpy-ALGO-sSEED.json)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.dataset, args.task = args.dataset or "pendulum-mixed", args.task or "pendulum"
        args.seeds, args.steps, args.eval_interval, args.final_episodes = "0", 5000, 2500, 20
        args.checkpoint_interval = 2500
        args.out = args.out or "runs/scores-quick"
    if not args.dataset or not args.out:
        parser.error("--dataset and --out are required (or use --quick)")

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
                    algo_config, config_file = paper_config(algo, args.task)
                    print(f"{run_dir.name}: settings from {config_file}", flush=True)
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
                        ),
                        algo_config,
                    )
                summary = json.loads((run_dir / "summary.json").read_text())
                print(
                    f"{run_dir.name}: normalised {summary['eval/normalized_score']:.1f} "
                    f"(behaviour {summary['behaviour_normalized_score']:.1f}), "
                    f"{summary['updates_per_second']:.0f} updates/s",
                    flush=True,
                )
        if args.peer:
            run_peers(args, out, algos, seeds)
    table(out, algos, seeds, args.steps, args.final_episodes)


PEER_ALGOS = ("iql", "td3bc")


def run_peers(args: argparse.Namespace, out: Path, algos: list[str], seeds: list[int]) -> None:
    try:
        import d3rlpy  # noqa: F401
    except ImportError:
        print("d3rlpy is not installed (pip install 'offrl[bench]'): no peer rows", flush=True)
        return
    from peer_d3rlpy import train_and_evaluate

    for algo in (a for a in algos if a in PEER_ALGOS):
        for seed in seeds:
            path = out / f"d3rlpy-{algo}-s{seed}.json"
            if path.exists() and json.loads(path.read_text())["steps"] >= args.steps:
                continue
            record = train_and_evaluate(
                algo,
                args.dataset,
                args.task,
                args.steps,
                seed,
                args.eval_interval,
                args.eval_episodes,
                args.final_episodes,
            )
            path.write_text(json.dumps(record, indent=2))
            print(f"d3rlpy {algo} s{seed}: normalised {record['final_score']:.1f}", flush=True)


CONFIGS = Path(__file__).resolve().parent / "configs"
FAMILIES = {"hopper": "mujoco", "halfcheetah": "mujoco", "walker2d": "mujoco", "ant": "mujoco"}


def paper_config(algo_name: str, task: str):
    """The algorithm's settings for the task's family from ``benchmarks/configs/ALGO-FAMILY.json``."""
    import dataclasses

    from offrl.algos import get_algorithm

    family = FAMILIES.get(task.lower(), "classic")
    path = CONFIGS / f"{algo_name}-{family}.json"
    algo = get_algorithm(algo_name)
    if not path.exists():
        return algo.config_class(), f"{algo_name}'s defaults (no {path.name})"
    values = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    known = {f.name for f in dataclasses.fields(algo.config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path} sets unknown {algo_name} options {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return algo.config_class(**values), str(path.relative_to(CONFIGS.parent.parent))


def _finished(run_dir: Path, steps: int) -> bool:
    path = run_dir / "summary.json"
    return path.exists() and json.loads(path.read_text())["step"] >= steps


FINAL_EVAL_SEED = 100_000


def final_evaluation(run_dir: Path, episodes: int) -> dict:
    """The run's final checkpoint on ``episodes`` episodes (env seeds FINAL_EVAL_SEED...), cached in the run dir."""
    path = run_dir / "final_eval.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("episodes") == episodes:
            return cached
    from offrl.envs import evaluate
    from offrl.train.offline import load_policy

    policy = load_policy(run_dir)
    result = evaluate(policy, policy.task, episodes, seed=FINAL_EVAL_SEED)
    record = {"episodes": episodes, "seed": FINAL_EVAL_SEED, "step": policy.metadata.get("step"), **result.summary()}
    path.write_text(json.dumps(record, indent=2))
    return record


def _best_evaluation(run_dir: Path) -> float:
    with open(run_dir / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    return max(float(row["eval/normalized_score"]) for row in rows)


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} +- {spread:.1f}"


def table(out: Path, algos: list[str], seeds: list[int], steps: int, final_episodes: int = 100) -> None:
    """Print the Markdown table of every finished run and write ``results.json`` beside the runs."""
    results = {}
    for algo in algos:
        for seed in seeds:
            run_dir = out / f"{algo}-s{seed}"
            if _finished(run_dir, steps):
                summary = json.loads((run_dir / "summary.json").read_text())
                final = final_evaluation(run_dir, final_episodes) if final_episodes else None
                results[run_dir.name] = {
                    "algo": algo,
                    "seed": seed,
                    **summary,
                    "best/normalized_score": _best_evaluation(run_dir),
                    **({f"final{final_episodes}/normalized_score": final["eval/normalized_score"]} if final else {}),
                }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nNormalised score after {steps} updates, mean +- std over seeds.\n")
    big = f"final, {final_episodes} episodes"
    print(f"| algorithm | seeds | final, 10 episodes | best during training | {big} | {big}, per seed | updates/s |")
    print("|---|---|---|---|---|---|---|")
    for algo in algos:
        rows = [r for r in results.values() if r["algo"] == algo]
        if not rows:
            continue
        final = [r["eval/normalized_score"] for r in rows]
        best = [r["best/normalized_score"] for r in rows]
        key = f"final{final_episodes}/normalized_score"
        many = [r[key] for r in rows if key in r]
        per_seed = ", ".join(f"{v:.1f}" for v in many)
        speed = statistics.mean(r["updates_per_second"] for r in rows)
        many_cell = _mean_std(many) if many else "-"
        cells = [algo, str(len(rows)), _mean_std(final), _mean_std(best), many_cell, per_seed, f"{speed:.0f}"]
        print("| " + " | ".join(cells) + " |")
    for algo in algos:
        peers = [json.loads(p.read_text()) for p in sorted(out.glob(f"d3rlpy-{algo}-s*.json"))]
        peers = [p for p in peers if p["steps"] >= steps and p["seed"] in seeds]
        if not peers:
            continue
        final = [p["final_score"] for p in peers]
        best = [max(point["normalized_score"] for point in p["curve"]) for p in peers]
        many = [p["final_100"] for p in peers]
        speed = statistics.mean(p["updates_per_second"] for p in peers)
        cells = [
            f"d3rlpy {algo}",
            str(len(peers)),
            _mean_std(final),
            _mean_std(best),
            _mean_std(many),
            ", ".join(f"{v:.1f}" for v in many),
            f"{speed:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
