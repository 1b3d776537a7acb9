"""The offline-to-online table (issue 5): methods x datasets x seeds, one ``offrl finetune`` run each, the same
online budget for all, and a Markdown table of what fine-tuning does: score at the switch, the minimum after it,
the final score and the regret (CORL's: mean of 1 - score/100 over the online evaluations).

    python benchmarks/finetune_table.py --methods iql,cal-ql,rlpd,pa-rl,famo2o \\
        --datasets pendulum-random,pendulum-mixed --seeds 0,1,2 --offline-steps 5000 --online-steps 5000 \\
        --jobs 2 --out runs/finetune-table --into BENCHMARKS.md

Each method runs with its own fine-tuning setting (``Algorithm.configure_for_finetuning`` / ``online_config``) and
the preset below (RLPD does not pre-train: its offline steps are 0 and its online batches are half prior data, as
in the paper). Runs go to ``OUT/DATASET/METHOD-sSEED`` and are skipped when finished; a stopped run resumes from its
newest checkpoint (exactly). Each run is a separate process on one core (single-threaded XLA).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_block import write_block  # noqa: E402

SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
BEGIN, END = "<!-- finetune-table:begin -->", "<!-- finetune-table:end -->"

#: Per method: (changes to the run config, changes to the algorithm config, a note for the table).
PRESETS: dict[str, tuple[dict, dict, str]] = {
    "iql": ({}, {}, "IQL, no learning-rate decay (its fine-tuning config)"),
    "cal-ql": ({}, {"hidden_dims": (256, 256)}, "Cal-QL, 2x256 networks"),
    "rlpd": (
        {"offline_steps": 0, "updates_per_step": 4, "warmup_steps": 200},
        {"actor_every": 4},
        "RLPD: no pre-training, 50/50 batches, UTD 4, 200 random warm-up steps",
    ),
    "pa-rl": (
        {},
        {"num_critics": 2, "num_base_actions": 8, "num_keep": 4, "opt_steps": 3},
        "PA-RL, Gaussian base; 2 critics, m=8, k=4, T=3 (CPU-sized)",
    ),
    "famo2o": ({}, {}, "FamO2O on IQL"),
    "resfit": ({}, {}, "ResFiT: BC base offline, TD3 residual online"),
}


@dataclasses.dataclass(frozen=True)
class Unit:
    method: str
    dataset: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.method}-s{self.seed}"


def run_dir(out: Path, unit: Unit) -> Path:
    return out / unit.dataset / f"{unit.method}-s{unit.seed}"


def run_unit(unit: Unit, args: argparse.Namespace) -> None:
    from offrl.algos import get_algorithm
    from offrl.train.checkpoint import list_checkpoints
    from offrl.train.finetune import FinetuneConfig, finetune, resume_finetune

    directory = run_dir(Path(args.out), unit)
    if (directory / "config.json").exists() and list_checkpoints(directory / "checkpoints"):
        resume_finetune(directory)
        return
    run_changes, algo_changes, _ = PRESETS[unit.method]
    options = {
        "algo": unit.method,
        "dataset": unit.dataset,
        "offline_steps": args.offline_steps,
        "online_steps": args.online_steps,
        "seed": unit.seed,
        "eval_interval": args.eval_interval,
        "eval_episodes": args.eval_episodes,
        "output_dir": str(directory.parent),
        "run_name": directory.name,
        "progress": False,
    }
    config = FinetuneConfig(**{**options, **run_changes})  # the method's preset wins (RLPD: no offline steps)
    algo = get_algorithm(unit.method)
    finetune(config, algo.config_class(**algo_changes))


def finished(out: Path, unit: Unit) -> bool:
    return (run_dir(out, unit) / "summary.json").exists()


def run_all(units: list[Unit], args: argparse.Namespace, argv: list[str]) -> None:
    """``args.jobs`` runs at a time, each a child process of this script (given the same ``argv``)."""
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()}
    pending = [u for u in units if not finished(Path(args.out), u)]
    running: list[tuple[subprocess.Popen, Unit]] = []
    failed = []
    while pending or running:
        for process, unit in list(running):
            if process.poll() is not None:
                running.remove((process, unit))
                if process.returncode:
                    failed.append(unit.label)
                print(f"{unit.label}: {'failed' if process.returncode else 'done'}", flush=True)
        while pending and len(running) < args.jobs:
            unit = pending.pop(0)
            command = [sys.executable, __file__, *argv, "--unit", json.dumps(dataclasses.asdict(unit))]
            running.append((subprocess.Popen(command, env=env), unit))
            print(f"{unit.label}: started", flush=True)
        time.sleep(1.0)
    if failed:
        print(f"{len(failed)} runs failed: {', '.join(failed)}; run the same command again to retry", flush=True)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def table(units: list[Unit], args: argparse.Namespace) -> str:
    out = Path(args.out)
    lines = [
        "| dataset | method | seeds | at the switch | minimum after | final | eval regret | train regret | minutes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    methods = list(dict.fromkeys(u.method for u in units))
    for dataset in dict.fromkeys(u.dataset for u in units):
        for method in methods:
            summaries = [
                json.loads((run_dir(out, u) / "summary.json").read_text())
                for u in units
                if u.dataset == dataset and u.method == method and finished(out, u)
            ]
            if not summaries:
                continue

            def col(key: str, s=summaries) -> list[float]:
                return [float(x[key]) for x in s if x.get(key) is not None and np.isfinite(float(x[key]))]

            def regret(key: str, s=summaries) -> str:
                values = col(key, s)
                return f"{np.mean(values):.3f}" if values else "-"

            partly = any(x.get("timed_from_step") for x in summaries)  # resumed from a checkpoint without a clock
            lines.append(
                f"| {dataset} | {method} | {len(summaries)} | {_mean_std(col('score_at_switch'))} | "
                f"{_mean_std(col('min_after_switch'))} | {_mean_std(col('final'))} | {regret('eval_regret')} | "
                f"{regret('train_regret')} | {np.mean(col('wall_seconds')) / 60:.1f}{'*' if partly else ''} |"
            )
    notes = [f"- {m}: {PRESETS[m][2]}" for m in methods]
    notes.append(
        "- minutes: wall time over all of a run's invocations; * a run resumed from a checkpoint written before offrl "
        "recorded its time, so the minutes before that checkpoint are missing"
    )
    header = (
        f"{args.offline_steps} offline updates (RLPD: none), then {args.online_steps} environment steps; evaluations "
        f"every {args.eval_interval} steps, {args.eval_episodes} episodes; mean ± std over seeds."
    )
    return "\n".join([header, "", *lines, "", *notes])


def write_into(path: Path, text: str) -> None:
    write_block(path, BEGIN, END, text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="iql,cal-ql,rlpd,pa-rl,famo2o")
    parser.add_argument("--datasets", default="pendulum-random,pendulum-mixed")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--offline-steps", type=int, default=5000)
    parser.add_argument("--online-steps", type=int, default=5000)
    parser.add_argument("--eval-interval", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="runs/finetune-table")
    parser.add_argument("--table-only", action="store_true", help="print the table of the finished runs")
    parser.add_argument("--into", default="", help="also write the table into this Markdown file")
    parser.add_argument("--unit", default="", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in PRESETS]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(PRESETS)}")
    if args.unit:
        run_unit(Unit(**json.loads(args.unit)), args)
        return
    units = [
        Unit(m, d, int(s)) for d in args.datasets.split(",") if d for m in methods for s in args.seeds.split(",") if s
    ]
    if not args.table_only:
        run_all(units, args, argv)
    text = table(units, args)
    print(text)
    if args.into:
        write_into(Path(args.into), text)


if __name__ == "__main__":
    main()
