"""The H2O gap experiment (issue 5): a small dataset from the "real" system, a simulator with a dynamics gap, and
three ways to use them, all scored on the real system.

    python benchmarks/h2o_gap.py --real hopper:friction=0.5 --sim hopper --seeds 0 --steps 100000 \\
        --out runs/h2o-gap --json benchmarks/results/finetune/h2o-gap.json

- the real data: ``offrl dataset make --task REAL --policy BEHAVIOUR --stochastic``, ``--real-transitions`` rows
  (default 100k). ``--behaviour`` is an actor npz (default ``../shared/experts/sac_hopper.npz``, the medium expert
  of the suite, run on the real dynamics) or ``simulator``: the simulator-only arm's seed-0 policy, deployed on the
  real system with its Gaussian noise (a controller designed in the simulator, logged on the real plant). The
  small version from the method notes:

    python benchmarks/h2o_gap.py --real pendulum:gravity=1.5 --sim pendulum --behaviour simulator \\
        --real-transitions 10000 --steps 20000 --eval-interval 2000 --final-episodes 20 --seeds 0,1,2 \\
        --out runs/h2o-gap-pendulum

- **offline only**: IQL on the real data for ``--steps`` updates (its paper config for hopper);
- **simulator only**: SAC trained online on the simulator for ``--steps`` environment steps, then evaluated on
  the real system (``offrl evaluate --task REAL``);
- **H2O**: ``offrl finetune --algo h2o --dataset REAL_DATA --offline-steps 0 --online-steps STEPS --online-task SIM``:
  half of every batch real data, half simulator transitions, scored on the real task.

Each arm is a separate process (single-threaded XLA), skipped when its result exists, so seeds can run as separate
invocations; ``--table-only`` tabulates every finished arm in ``--out``. The final scores use
``--final-episodes`` episodes on the real system.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXPERT = ROOT.parent / "shared" / "experts" / "sac_hopper.npz"
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
ARMS = ("offline-only (IQL)", "simulator-only (SAC)", "H2O")


def run(command: list[str], log: Path) -> None:
    env = {**os.environ, "XLA_FLAGS": SINGLE_THREAD_XLA}
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, env=env)


def evaluate(run_dir: Path, task: str, episodes: int, log: Path) -> float:
    env = {**os.environ, "XLA_FLAGS": SINGLE_THREAD_XLA}
    command = ["offrl", "evaluate", str(run_dir), "--task", task, "--episodes", str(episodes), "--seed", "100000"]
    result = subprocess.run([*command, "--json"], check=True, capture_output=True, text=True, env=env)
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)} --json\n{result.stdout}\n")
    return float(json.loads(result.stdout)["eval/normalized_score"])


def arm(name: str, seed: int, args: argparse.Namespace, data: Path, out: Path) -> dict:
    result_file = out / f"{name.split()[0]}-s{seed}.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    log = out / f"{name.split()[0]}-s{seed}.log"
    run_name = f"{name.split()[0]}-s{seed}"
    start = time.perf_counter()
    common = ["--seed", str(seed), "--output-dir", str(out), "--run-name", run_name, "--no-progress"]
    if name.startswith("offline"):
        run(["offrl", "train", "--algo", "iql", "--dataset", str(data), "--task", args.real, "--steps",
             str(args.steps), "--eval-interval", str(args.eval_interval), *common], log)  # fmt: skip
    elif name.startswith("simulator"):
        run(["offrl", "train-online", "--algo", "sac", "--task", args.sim, "--steps", str(args.steps),
             "--eval-interval", str(args.eval_interval), *common], log)  # fmt: skip
    else:
        run(["offrl", "finetune", "--algo", "h2o", "--dataset", str(data), "--task", args.real, "--online-task",
             args.sim, "--offline-steps", "0", "--online-steps", str(args.steps), "--eval-interval",
             str(args.eval_interval), *common], log)  # fmt: skip
    score = evaluate(out / run_name, args.real, args.final_episodes, log)
    record = {"arm": name, "seed": seed, "real_score": score, "minutes": (time.perf_counter() - start) / 60}
    result_file.write_text(json.dumps(record))
    print(json.dumps(record), flush=True)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", default="hopper:friction=0.5")
    parser.add_argument("--sim", default="hopper")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--real-transitions", type=int, default=100_000)
    parser.add_argument("--behaviour", default=str(EXPERT), help="actor npz | simulator (the seed-0 SAC of the sim)")
    parser.add_argument("--eval-interval", type=int, default=10_000)
    parser.add_argument("--final-episodes", type=int, default=10)
    parser.add_argument("--arms", default="offline,simulator,h2o")
    parser.add_argument("--out", default="runs/h2o-gap")
    parser.add_argument("--json", default="")
    parser.add_argument("--table-only", action="store_true", help="tabulate every finished arm in --out; run nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table_only:
        records = finished(out)
        if not records:
            raise SystemExit(f"no finished arms in {out} (files ARM-sSEED.json)")
        report(records, args)
        return
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"real-{args.real.replace(':', '_').replace('=', '')}.hdf5"
    if not data.exists():
        behaviour = args.behaviour
        if behaviour == "simulator":  # the simulator-trained controller, deployed on the real system
            arm(ARMS[1], 0, args, data, out)
            behaviour = str(out / "simulator-only-s0")
        run(["offrl", "dataset", "make", "--task", args.real, "--policy", behaviour, "--stochastic",
             "--transitions", str(args.real_transitions), "--seed", "0", str(data)], out / "dataset.log")  # fmt: skip
    chosen = [a for a in ARMS if a.split()[0].split("-")[0].lower() in args.arms.split(",")]
    records = [arm(a, int(s), args, data, out) for s in args.seeds.split(",") for a in chosen]
    report(records, args)


def finished(out: Path) -> list[dict]:
    """Every arm record the runs in ``out`` wrote, in the order of ARMS, then seed."""
    records = [json.loads(f.read_text()) for f in sorted(out.glob("*-s*.json"))]
    records = [r for r in records if r.get("arm") in ARMS]
    return sorted(records, key=lambda r: (ARMS.index(r["arm"]), r["seed"]))


def report(records: list[dict], args: argparse.Namespace) -> None:
    chosen = [a for a in ARMS if any(r["arm"] == a for r in records)]
    print(f"\nreal = {args.real}, simulator = {args.sim}, {args.steps} steps; normalised score on the real system")
    print("| arm | seeds | real-system score (mean ± std; per seed) |\n|---|---|---|")
    for name in chosen:
        scores = [r["real_score"] for r in records if r["arm"] == name]
        each = ", ".join(f"{x:.1f}" for x in scores)
        print(f"| {name} | {len(scores)} | {np.mean(scores):.1f} ± {np.std(scores):.1f} ({each}) |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        meta = {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M")}
        Path(args.json).write_text(json.dumps({"meta": meta, "records": records}, indent=1))


if __name__ == "__main__":
    main()
