"""HNPG against on-policy NPG on the combination lock (issue 5): does offline data open a lock that on-policy
exploration cannot?

    python benchmarks/hnpg_lock.py --horizons 5,10 --seeds 0,1,2 --iterations 200 \\
        --json benchmarks/results/finetune/hnpg-lock.json

Offline data: 2,000 episodes of the epsilon-greedy optimal policy with epsilon = 1/H (the official recipe, which uses
50,000). Each run: ``--iterations`` iterations of 1,000 environment steps. Reported: the mean return of the on-policy
episodes of the last 10 iterations (1 = the lock opens every time; 0.05 = the distracting reward for dying), and the
first iteration whose return passes 0.9.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from offrl.algos.hnpg import HNPGConfig, train_hnpg
from offrl.envs.combination_lock import VectorLock, collect_offline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--horizons", default="5,10")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--offline-episodes", type=int, default=2000)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    rows = []
    for horizon in [int(h) for h in args.horizons.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            lock = VectorLock(horizon, 10, lock_seed=seed)
            offline = collect_offline(lock, args.offline_episodes, 1.0 / horizon, seed=seed + 1000)
            for name, config, data in (("HNPG", HNPGConfig(), offline), ("NPG", HNPGConfig(hybrid=False), None)):
                start = time.perf_counter()
                _, history = train_hnpg(lock, data, config, args.iterations, seed=seed)
                returns = [h["train/return"] for h in history]
                solved = next((i + 1 for i, r in enumerate(returns) if r > 0.9), None)
                row = {
                    "horizon": horizon,
                    "seed": seed,
                    "method": name,
                    "final_return": float(np.mean(returns[-10:])),
                    "first_iteration_above_0.9": solved,
                    "seconds": time.perf_counter() - start,
                    "offline_return": float(offline["rewards"].sum(0).mean()),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| horizon | method | final return (mean ± std over seeds) | opened (> 0.9) in | seconds per run |")
    print("|---|---|---|---|---|")
    for horizon in dict.fromkeys(r["horizon"] for r in rows):
        for method in ("HNPG", "NPG"):
            group = [r for r in rows if r["horizon"] == horizon and r["method"] == method]
            finals = [r["final_return"] for r in group]
            opened = [r["first_iteration_above_0.9"] for r in group]
            opened_text = ", ".join("never" if o is None else f"{o}" for o in opened)
            print(
                f"| {horizon} | {method} | {np.mean(finals):.3f} ± {np.std(finals):.3f} | {opened_text} | "
                f"{np.mean([r['seconds'] for r in group]):.0f} |"
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "json")
        meta = {
            "command": f"python benchmarks/hnpg_lock.py {options}",
            "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
