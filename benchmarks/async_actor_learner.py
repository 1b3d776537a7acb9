"""Acting while learning: SERL's asynchronous actor/learner split against the synchronous loop (issue 5).

Three runs of RLPD (offline data in half of every batch, LayerNorm ensemble of 10, no offline pre-training) for the
same number of environment steps:

1. **synchronous** (``offrl finetune --offline-steps 0``): each environment step waits for ``--utd`` updates;
2. **asynchronous, free-running actor** (``offrl.train.async_actor_learner``): the actor steps as fast as it can
   while the learner trains in the other process; the learner's update-to-data ratio is what it achieves;
3. **asynchronous, real-time actor** at ``--actor-hz`` (a robot's control rate), the setting SERL is built for: the
   learner trains between the actor's steps, and the policy's score shows what that buys.

Reported: environment steps/s of the actor (for 1, of the whole loop), learner updates/s, updates per environment
step, final normalised score (``--eval-episodes`` episodes).

    python benchmarks/async_actor_learner.py --dataset pendulum-expert --steps 2000 --utd 4 --actor-hz 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="pendulum-expert")
    parser.add_argument("--task", default="")
    parser.add_argument("--steps", type=int, default=2000, help="environment steps of each run")
    parser.add_argument("--warmup", type=int, default=200, help="uniform random steps first")
    parser.add_argument("--utd", type=int, default=4, help="updates per environment step of the synchronous run")
    parser.add_argument("--actor-hz", type=float, default=50.0, help="control rate of the real-time actor")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/async-bench", help="run directory of the synchronous run")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from offrl.algos.rlpd import RLPDConfig
    from offrl.train.async_actor_learner import AsyncConfig, run_async
    from offrl.train.finetune import FinetuneConfig, finetune

    algo_config = RLPDConfig(actor_every=args.utd)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args), "runs": {}}

    sync_config = FinetuneConfig(
        algo="rlpd", dataset=args.dataset, task=args.task, offline_steps=0, online_steps=args.steps,
        updates_per_step=args.utd, warmup_steps=args.warmup, eval_interval=args.steps,
        eval_episodes=args.eval_episodes, log_interval=max(args.steps // 10, 1), seed=args.seed,
        output_dir=args.out, run_name=f"sync-{time.strftime('%Y%m%d-%H%M%S')}", progress=False,
    )  # fmt: skip
    sync = finetune(sync_config, algo_config)
    rows = [json.loads(line) for line in (sync.run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["time/env_steps_per_second"] for r in rows if r.get("kind") == "train" and r["step"] > args.warmup]
    results["runs"]["synchronous"] = {
        "env_steps_per_second": statistics.median(rates[1:] or rates),  # the first window after warm-up compiles
        "updates_per_env_step": float(args.utd),
        "final_score": sync.summary["final"] if "final" in sync.summary else sync.final_evaluation.normalized_mean,
    }
    for name, hz in (
        ("asynchronous, free actor", 0.0),
        (f"asynchronous, actor at {args.actor_hz:g} Hz", args.actor_hz),
    ):
        config = AsyncConfig(
            algo="rlpd", dataset=args.dataset, task=args.task, online_steps=args.steps, seed=args.seed,
            warmup_steps=args.warmup, updates_per_call=args.utd, publish_every=10 * args.utd,
            eval_episodes=args.eval_episodes, actor_hz=hz,
        )  # fmt: skip
        result = run_async(config, algo_config)
        results["runs"][name] = {
            "env_steps_per_second": result.actor_steps_per_second,
            "learner_updates_per_second": result.learner_updates_per_second,
            "updates_per_env_step": result.updates_per_env_step,
            "parameter_versions": result.parameter_versions,
            "final_score": result.final_evaluation.normalized_mean,
            "wall_seconds": result.wall_seconds,
        }
    print("| run | env steps/s (actor) | learner updates/s | updates per env step | final score |")
    print("|---|---|---|---|---|")
    for name, r in results["runs"].items():
        learner = f"{r['learner_updates_per_second']:.0f}" if "learner_updates_per_second" in r else "-"
        print(
            f"| {name} | {r['env_steps_per_second']:.0f} | {learner} | {r['updates_per_env_step']:.2f} | "
            f"{r['final_score']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
