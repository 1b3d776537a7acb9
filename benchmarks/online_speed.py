"""Online training speed against the replay buffer's capacity: does a step cost the same with a small and a large
buffer? (It should: the buffer is written in place.)

    python benchmarks/online_speed.py --task hopper --capacities 10000,200000,1000000 --steps 6000

For each capacity, one short ``offrl train-online`` run in this process (SAC by default; ``--warmup`` uniform random
steps, then one update per environment step; no evaluation before the end). Reported: environment steps/s while
learning (acting, storing and updating; the median of the 500-step log windows after the first, which compiles)
and updates/s by the run's own clock. Run it with another checkout's code first on ``PYTHONPATH`` to compare
versions on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path


def measure(task: str, algo: str, capacity: int, steps: int, warmup: int, seed: int) -> dict:
    from offrl.train.online import OnlineConfig, train_online

    with tempfile.TemporaryDirectory() as tmp:
        config = OnlineConfig(
            algo=algo,
            task=task,
            steps=steps,
            seed=seed,
            warmup_steps=warmup,
            buffer_size=capacity,
            log_interval=500,
            eval_interval=0,
            eval_episodes=1,
            output_dir=tmp,
            run_name="speed",
            progress=False,
        )
        started = time.perf_counter()
        result = train_online(config)
        wall = time.perf_counter() - started
        with open(Path(tmp) / "speed" / "train.csv") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) > warmup + 500]  # the first window compiles
    rates = [float(r["time/env_steps_per_second"]) for r in rows]
    return {
        "capacity": capacity,
        "env_steps_per_second": statistics.median(rates),
        "updates_per_second": result.updates_per_second,
        "wall_seconds": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="hopper")
    parser.add_argument("--algo", default="sac")
    parser.add_argument("--capacities", default="10000,200000,1000000")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = []
    for capacity in (int(c) for c in args.capacities.split(",")):
        r = measure(args.task, args.algo, capacity, args.steps, args.warmup, args.seed)
        print(
            f"{args.algo} {args.task}, buffer of {capacity:,} rows: {r['env_steps_per_second']:.1f} environment "
            f"steps/s (median of windows after warm-up), {r['updates_per_second']:.1f} updates/s",
            flush=True,
        )
        results.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
