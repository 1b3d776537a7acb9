"""The offline workflow (``offrl workflow``, Kumar et al. 2021) on the ground it was made for: a conservative
Q-learner (discrete CQL) trained on little data or with a small critic, judged from its checkpoints alone and
compared with the online scores of the same checkpoints, which the verdict never sees.

Usage::

    python benchmarks/workflow_cartpole.py --datasets expert-1,expert-100,mixed-1 --critics 256x256,8 \\
        --seeds 0,1,2 --out runs/workflow-cartpole
    python benchmarks/workflow_cartpole.py --datasets expert-1,expert-100,mixed-1 --critics 256x256,8 \\
        --seeds 0,1,2 --out runs/workflow-cartpole --table-only --json benchmarks/results/workflow-cartpole.json \\
        --into BENCHMARKS.md

Datasets (CartPole-v1, made in ``--out/data`` on first use):

- ``expert-N``: the first N episodes of an expert log (``--expert-log``, by default the MIT-licensed
  ``../shared/data/external/expert_cartpole.npz``: 100 episodes, mean return 495);
- ``mixed-N``: the same N expert episodes plus ``--random-transitions`` steps of uniformly random actions
  (episodes of about 22 steps that fall), so that the data hold both good and bad actions;
- ``random``: the random-action steps alone.

Critics: ``--critics`` lists the Q-network's hidden widths (``256x256`` is discrete CQL's default, ``8`` one layer
of 8 units). Each (dataset, critic, seed) trains ``--steps`` updates and keeps a checkpoint and an online evaluation
every ``--interval`` updates (run directory ``--out/DATASET/cql-discrete-CRITIC-sSEED``, resumed if stopped); the
verdict, the checkpoint it recommends and its regret are those of ``benchmarks/workflow_suite.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_suite import cached_record, finished, judge, publish, started_run_dir  # noqa: E402

from offrl.train.checkpoint import atomic_write_json  # noqa: E402

BEGIN, END = "<!-- workflow-cartpole:begin -->", "<!-- workflow-cartpole:end -->"
EXPERT_LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "expert_cartpole.npz"
RANDOM_SEED = 7


def random_episodes(transitions: int, seed: int):
    """``transitions`` steps of uniformly random actions on CartPole-v1 (the last episode cut by a timeout)."""
    import gymnasium as gym

    from offrl.data import from_arrays

    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "next", "term", "tout")}
    episode = 0
    while len(cols["obs"]) < transitions:
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        done = False
        while not done and len(cols["obs"]) < transitions:
            action = int(rng.integers(2))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(
                cols, (obs, action, reward, next_obs, terminated, truncated and not terminated), strict=True
            ):
                cols[key].append(value)
            obs, done = next_obs, terminated or truncated
        episode += 1
    env.close()
    cols["tout"][-1] = not cols["term"][-1]  # the collection's end cuts the last episode
    arrays = [np.array(cols[k]) for k in ("obs", "act", "rew", "term", "tout", "next")]
    return from_arrays(*arrays[:5], next_observations=arrays[5], metadata={"task": "cartpole"})


def make_dataset(name: str, data_dir: Path, expert_log: Path, random_transitions: int) -> Path:
    """The dataset ``name`` (expert-N, mixed-N or random) as an offrl npz in ``data_dir``, made if missing."""
    from offrl.data import load_dataset, save_dataset
    from offrl.data.dataset import concatenate

    path = data_dir / f"cartpole-{name}.npz"
    if path.exists():
        return path
    kind, _, count = name.partition("-")
    if kind not in ("expert", "mixed", "random") or (kind != "random" and not count.isdigit()):
        raise ValueError(f"unknown dataset {name!r}: expected expert-N, mixed-N or random")
    parts = []
    if kind in ("expert", "mixed"):
        if not expert_log.exists():
            raise FileNotFoundError(f"the expert log {expert_log} does not exist (--expert-log)")
        expert = load_dataset(expert_log, max_episode_steps=500, task="cartpole")
        parts.append(expert.first_episodes(int(count)))
    if kind in ("mixed", "random"):
        parts.append(random_episodes(random_transitions, RANDOM_SEED))
    data = parts[0] if len(parts) == 1 else concatenate(parts)
    data_dir.mkdir(parents=True, exist_ok=True)
    save_dataset(data, path)
    return path


def widths(critic: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(w) for w in critic.split("x"))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise ValueError(f"--critics: {critic!r} is not a list of widths like 256x256")
    return dims


def train_run(dataset: Path, critic: str, seed: int, args: argparse.Namespace) -> Path:
    from offrl.algos.cql_discrete import DiscreteCQLConfig
    from offrl.train import TrainConfig, resume, train

    out = Path(args.out)
    run_dir = started_run_dir(dataset, f"cql-discrete-{critic}", seed, out)
    if finished(run_dir, args.steps):
        return run_dir
    if (run_dir / "config.json").exists():
        resume(run_dir, steps=args.steps, progress=False)
        return run_dir
    config = TrainConfig(
        algo="cql-discrete",
        dataset=str(dataset),
        task="cartpole",
        steps=args.steps,
        seed=seed,
        eval_interval=args.interval,
        eval_episodes=args.episodes,
        checkpoint_interval=args.interval,
        keep_checkpoints=0,
        output_dir=str(out / dataset.stem),
        run_name=run_dir.name,
        progress=False,
    )
    train(config, DiscreteCQLConfig(hidden_dims=widths(critic), target_update_interval=args.target_update_interval))
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="expert-1,expert-100,mixed-1", help="expert-N, mixed-N or random")
    parser.add_argument("--critics", default="256x256,8", help="Q-network hidden widths, comma-separated")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=50_000, help="updates per run")
    parser.add_argument("--interval", type=int, default=2_500, help="updates between checkpoints/evaluations")
    parser.add_argument("--episodes", type=int, default=10, help="online episodes per evaluation")
    parser.add_argument(
        "--target-update-interval", type=int, default=100, help="updates between copies of the Q-network to its target"
    )
    parser.add_argument("--tolerance", type=float, default=5.0, help="normalised points from the best that are good")
    parser.add_argument("--expert-log", default=str(EXPERT_LOG), help="flat npz of expert CartPole episodes")
    parser.add_argument("--random-transitions", type=int, default=10_000, help="random-action steps of mixed-N")
    parser.add_argument("--out", default="runs/workflow-cartpole")
    parser.add_argument("--table-only", action="store_true", help="judge and tabulate the finished runs only")
    parser.add_argument("--json", help="also write the records here")
    parser.add_argument("--into", help="replace the table between the workflow-cartpole markers of this Markdown file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    critics = [c for c in args.critics.split(",") if c]
    for critic in critics:
        try:
            widths(critic)
        except ValueError as error:
            parser.error(str(error))
    seeds = [int(s) for s in args.seeds.split(",")]
    records = []
    for name in [n for n in args.datasets.split(",") if n]:
        path = out / "data" / f"cartpole-{name}.npz"
        if not args.table_only:
            try:
                path = make_dataset(name, out / "data", Path(args.expert_log), args.random_transitions)
            except (ValueError, FileNotFoundError) as error:
                parser.error(str(error))
        for critic in critics:
            for seed in seeds:
                run_dir = out / path.stem / f"cql-discrete-{critic}-s{seed}"
                if not finished(run_dir, args.steps):
                    if args.table_only:
                        continue
                    print(f"{path.stem}/{run_dir.name}: training", flush=True)
                    train_run(path, critic, seed, args)
                record_path = run_dir / "workflow.json"
                record = cached_record(record_path)
                if record is None:
                    from offrl.data import load_dataset

                    record = judge(run_dir, path, args.tolerance)
                    record["algo"] = f"CQL {critic}"
                    record["dataset_transitions"] = int(load_dataset(path).size)
                    atomic_write_json(record_path, record)
                print(
                    f"{record['run']}: {record['verdict']}, deploy {record['recommended_step']} "
                    f"({record['recommended_score']:.1f}; best {record['best_score']:.1f}, last "
                    f"{record['last_score']:.1f})",
                    flush=True,
                )
                records.append({**record, "algo": f"{record['algo']}, seed {seed}"})
    return publish(records, args.tolerance, args.json, args.into, (BEGIN, END))


if __name__ == "__main__":
    sys.exit(main())
