"""Build the benchmark suite's datasets with `offrl dataset make`, D4RL's recipes on the v5 MuJoCo tasks.

    python benchmarks/make_suite.py --families hopper,halfcheetah,walker2d --out data/suite
    python benchmarks/make_suite.py --families hopper --kinds medium-replay --out data/suite

For each family F (hopper, halfcheetah, walker2d) and kind, the file ``--out/F-KIND.hdf5`` (D4RL layout) is made by
the commands printed before each step (the recipe, run through offrl's own CLI):

- ``random``: uniform random actions, ``--random-transitions`` (default 50,000) transitions, seed 0.
- ``medium``: the external ``sac_F.npz`` actor (``--experts``, default ../shared/experts), actions sampled from its
  tanh-Gaussian as D4RL sampled its SAC agents, ``--transitions`` (default 100,000), seed 1.
- ``expert``: the external ``tqc_F.npz`` actor, sampled, ``--transitions``, seed 2.
- ``medium-expert``: medium followed by expert (D4RL's concatenation).
- ``medium-replay``: the replay buffer of an offrl SAC run (``offrl train-online --algo sac``, seed 0, evaluated
  every 5,000 steps on 10 episodes) stopped at the first evaluation whose mean return reaches the medium actor's
  own deterministic return (measured here on 10 episodes; hopper: ~1,100, a third of expert), at most
  ``--replay-steps`` environment steps; then ``offrl dataset make --replay RUN``. The run directory under
  ``--out/runs`` keeps the policy: it is also offrl's own "medium" policy.

Files that exist are kept (delete one to make it again). ``--reuse DIR[,DIR]`` copies
``F-{random,medium,expert,medium-replay}.hdf5`` from the first DIR that has it instead of collecting it (e.g.
``../shared/data``, whose hopper files were made by this recipe's actors and sizes, and ``benchmarks/data``, which
holds the hopper-medium-replay file the benchmark tables use: a SAC run's replay buffer cannot be made again bit for
bit on another machine, so that one file is versioned with the benchmarks). The suite's hopper files:

    python benchmarks/make_suite.py --families hopper --reuse ../shared/data,benchmarks/data --out data/suite

A manifest ``--out/suite.json`` records per file: the recipe's commands, seconds, transitions, episodes,
mean normalised return and sha256. D4RL's files have 1M transitions (2M for medium-expert); these are 10x smaller
so the table fits a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import time
from pathlib import Path

KINDS = ("random", "medium", "expert", "medium-expert", "medium-replay")
DEFAULT_EXPERTS = Path(__file__).resolve().parents[2] / "shared" / "experts"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="hopper,halfcheetah,walker2d")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--out", default="data/suite")
    parser.add_argument("--experts", default=str(DEFAULT_EXPERTS), help="folder of sac_F.npz / tqc_F.npz actors")
    parser.add_argument("--transitions", type=int, default=100_000, help="medium and expert transitions")
    parser.add_argument("--random-transitions", type=int, default=50_000)
    parser.add_argument("--replay-steps", type=int, default=1_000_000, help="most SAC steps for medium-replay")
    parser.add_argument(
        "--reuse", help="comma-separated folders: copy F-{random,medium,expert,medium-replay}.hdf5 from them when there"
    )
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "suite.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    kinds = args.kinds.split(",")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    for family in args.families.split(","):
        for kind in kinds:
            path = out / f"{family}-{kind}.hdf5"
            if path.exists():
                print(f"{path}: exists, kept", flush=True)
                continue
            start = time.perf_counter()
            commands = make(family, kind, path, args)
            manifest[path.name] = {"commands": commands, "seconds": time.perf_counter() - start, **describe(path)}
            manifest_path.write_text(json.dumps(manifest, indent=2))
            print(f"{path}: {manifest[path.name]}", flush=True)


def offrl_text(argv) -> str:
    return "offrl " + " ".join(shlex.quote(a) for a in argv)


def offrl(*argv: str) -> str:
    """Run one offrl command (in this process) and return it as the recipe's text."""
    from offrl.cli import main as cli

    command = offrl_text(argv)
    print(f"$ {command}", flush=True)
    if cli(list(argv)) != 0:
        raise SystemExit(f"failed: {command}")
    return command


def make(family: str, kind: str, path: Path, args: argparse.Namespace) -> list[str]:
    experts = Path(args.experts)
    folders = [Path(folder) for folder in args.reuse.split(",") if folder] if args.reuse else []
    reused = next((folder / path.name for folder in folders if (folder / path.name).exists()), None)
    if kind in ("random", "medium", "expert", "medium-replay") and reused is not None:
        shutil.copyfile(reused, path)
        return [f"cp {reused} {path}"]
    if kind == "random":
        n = str(args.random_transitions)
        return [
            offrl(
                "dataset", "make", "--task", family, "--policy", "random", "--transitions", n, "--seed", "0", str(path)
            )
        ]
    if kind in ("medium", "expert"):
        actor = experts / f"{'sac' if kind == 'medium' else 'tqc'}_{family}.npz"
        seed = "1" if kind == "medium" else "2"
        n = str(args.transitions)
        return [
            offrl(
                "dataset", "make", "--task", family, "--policy", str(actor), "--stochastic",
                "--transitions", n, "--seed", seed, str(path),
            )
        ]  # fmt: skip
    if kind == "medium-expert":
        return medium_expert(family, path, args)
    return medium_replay(family, path, args)


def medium_expert(family: str, path: Path, args: argparse.Namespace) -> list[str]:
    from offrl.data import load_dataset
    from offrl.data.dataset import concatenate
    from offrl.data.formats.d4rl import save_d4rl_hdf5

    parts = []
    commands = []
    for kind in ("medium", "expert"):
        part = path.parent / f"{family}-{kind}.hdf5"
        if not part.exists():
            commands += make(family, kind, part, args)
        parts.append(load_dataset(part))
    data = concatenate(parts)
    attrs = {k: v for k, v in parts[0].metadata.items() if k in ("env_id", "ref_min_score", "ref_max_score")}
    attrs["behavior"] = f"concatenation of {family}-medium.hdf5 and {family}-expert.hdf5"
    save_d4rl_hdf5(data, path, attrs)
    return [*commands, f"concatenate({family}-medium.hdf5, {family}-expert.hdf5) -> {path.name}"]


def medium_return(family: str, args: argparse.Namespace) -> float:
    """The medium actor's deterministic return on 10 episodes (the return its SAC run must reach)."""
    import numpy as np

    from offrl.data.collect import npz_actor
    from offrl.envs import evaluate, get_task

    task = get_task(family)
    act = npz_actor(Path(args.experts) / f"sac_{family}.npz", task, stochastic=False, seed=0)
    result = evaluate(lambda obs: np.stack([act(o) for o in obs]), task, episodes=10, seed=100)
    return float(np.mean(result.returns))


def medium_replay(family: str, path: Path, args: argparse.Namespace) -> list[str]:
    target = medium_return(family, args)
    print(f"{family}: the medium actor's deterministic return is {target:.0f}", flush=True)
    runs = path.parent / "runs"
    run = runs / f"sac-{family}-medium-s0"
    train = [
        "train-online", "--algo", "sac", "--task", family, "--steps", str(args.replay_steps), "--seed", "0",
        "--eval-interval", "5000", "--checkpoint-interval", "20000", "--stop-return", f"{target:.0f}",
        "--output-dir", str(runs), "--run-name", run.name, "--no-progress",
    ]  # fmt: skip
    if (run / "summary.json").exists():
        kept = json.loads((run / "config.json").read_text())["train"]
        options = ("steps", "seed", "eval_interval", "eval_episodes", "checkpoint_interval", "stop_return")
        settings = " ".join(f"--{k.replace('_', '-')} {kept[k]}" for k in options)
        commands = [f"(kept {run}, made by: offrl train-online --algo {kept['algo']} --task {family} {settings})"]
    elif (run / "config.json").exists():  # interrupted: continue it from its newest checkpoint
        offrl("train-online", "--resume", str(run), "--no-progress")
        commands = [offrl_text(train) + f" (interrupted, then `offrl train-online --resume {run}`)"]
    else:
        commands = [offrl(*train)]
    summary = json.loads((run / "summary.json").read_text())
    if not summary.get("stopped_at_return"):
        print(f"{run} did not reach {target:.0f} in {summary['step']} steps: its whole buffer is used", flush=True)
    return [*commands, offrl("dataset", "make", "--replay", str(run), str(path))]


def describe(path: Path) -> dict:
    from offrl.data import load_dataset
    from offrl.data.loaders import file_sha256
    from offrl.envs import find_task

    data = load_dataset(path)
    task = find_task(str(data.metadata.get("env_id", "")))
    returns = data.episode_returns()
    record = {
        "transitions": int(data.size),
        "episodes": int(data.num_episodes),
        "mean_return": float(returns.mean()),
        "sha256": file_sha256(path),
    }
    if task is not None:
        record["normalized_return"] = float(task.normalized_score(returns.mean()))
    return record


if __name__ == "__main__":
    main()
