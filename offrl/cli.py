"""The ``offrl`` command line: ``train``, ``train-online``, ``finetune``, ``evaluate`` and ``dataset
info|convert|make|list|report``.

Every option of ``offrl train`` maps onto a field of :class:`offrl.train.TrainConfig` or of the chosen algorithm's
config dataclass; the field documentation is the help text.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from offrl import __version__

TRAIN_EXAMPLES = """examples:
  offrl train                                   IQL on the built-in pendulum-mixed dataset (no download)
  offrl train --algo td3bc --dataset ../shared/data/hopper-medium.hdf5 --task hopper --steps 200000
  offrl train --algo iql --expectile 0.9 --beta 10 --dataset data.npz
  offrl train --resume runs/iql-pendulum-mixed-s0-20260101-120000
  offrl train --algo td3bc --seeds 0,1,2,3,4    five seeds at once, one vmapped loop (for a GPU); a run each
  offrl train --resume RUN_DIR RUN_DIR ...      continue such a group together
  offrl train --algo td3bc --help               TD3+BC's own options
  offrl train --algo recoil --dataset mixed.npz --expert-dataset demos.hdf5 --expert-episodes 5
                                                imitation: the demonstrations mark what to imitate in the data
  offrl train --algo iql --corruption observations:random:0.3    robustness test on corrupted data
"""


# ---------------------------------------------------------------------------------------------------------------
# dataclass <-> argparse


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_dataclass_options(group: argparse._ArgumentGroup, cls: type, skip: tuple[str, ...] = ()) -> None:
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        help_text = f.metadata.get("help", "")
        if isinstance(default, bool):
            group.add_argument(
                _flag(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{help_text} (default: {default})",
            )
        elif isinstance(default, tuple):
            group.add_argument(
                _flag(f.name),
                dest=f.name,
                type=_int_tuple,
                default=argparse.SUPPRESS,
                metavar="N,N",
                help=f"{help_text} (default: {','.join(map(str, default))})",
            )
        else:
            kind = f.metadata.get("type", type(default))  # "type" in the metadata: options whose default is None
            group.add_argument(
                _flag(f.name),
                dest=f.name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=kind.__name__.upper(),
                help=f"{help_text} (default: {default})",
            )


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e


def _pick(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(namespace).items() if k in names}


def _algo_in(argv: list[str], default: str) -> str:
    """The algorithm a command line names (``--algo``, else the ``--resume`` run's), to build its options."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", default=None)
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.algo is None and known.resume:
        from offrl.train.offline import read_run_config

        saved = Path(known.resume)
        return read_run_config(saved)["algo"] if (saved / "config.json").exists() else default
    return known.algo or default


def _only_steps_and_progress(parser: argparse.ArgumentParser, args: argparse.Namespace, *classes: type) -> None:
    """A resumed run keeps its settings: refuse any option but --steps and --progress."""
    given = set().union(*(_pick(args, cls) for cls in classes)) - {"steps", "progress", "algo"}
    if given:
        parser.error(
            f"--resume takes only --steps and --progress; the run's other settings are fixed (got {sorted(given)})"
        )


# ---------------------------------------------------------------------------------------------------------------
# train


def _train_parser(algo_name: str) -> argparse.ArgumentParser:
    from offrl.algos import ALGORITHMS, get_algorithm
    from offrl.train import TrainConfig

    algo = get_algorithm(algo_name)
    parser = argparse.ArgumentParser(
        prog="offrl train",
        description="Train a policy offline from logged data. Writes a run directory (config, metrics, "
        "checkpoints) and prints the normalised score of the final policy next to the behaviour data's.",
        epilog=TRAIN_EXAMPLES
        + "\nalgorithms: "
        + ", ".join(f"{a.name} ({a.description})" for a in ALGORITHMS.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run = parser.add_argument_group("run options")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        nargs="+",
        help="continue the run in RUN_DIR from its newest checkpoint (with --steps: to that new total); several "
        "RUN_DIRs continue as one group (see --seeds)",
    )
    run.add_argument(
        "--seeds",
        help="comma-separated seeds: train one run per seed together, as one vmapped update loop "
        "(offrl.train.group; meant for a GPU, no faster on a CPU); instead of --seed",
    )
    _add_dataclass_options(run, TrainConfig)
    group = parser.add_argument_group(f"{algo.name} options ({algo.description})")
    _add_dataclass_options(group, algo.config_class)
    return parser


def cmd_train(argv: list[str]) -> int:
    from offrl.algos import get_algorithm
    from offrl.train import TrainConfig, resume, train

    algo_name = _algo_in(argv, "iql")
    try:
        parser = _train_parser(algo_name)
    except KeyError as e:
        print(f"offrl train: {e.args[0]}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)

    if args.resume:
        _only_steps_and_progress(parser, args, TrainConfig, get_algorithm(algo_name).config_class)
        if args.seeds:
            parser.error("--seeds starts new runs; --resume continues the runs it names")
        steps, progress = getattr(args, "steps", None), getattr(args, "progress", None)
        if len(args.resume) == 1:
            results = [resume(args.resume[0], steps=steps, progress=progress)]
        else:
            from offrl.train.group import resume_group

            results = resume_group(args.resume, steps=steps, progress=progress)
    else:
        train_options = _pick(args, TrainConfig)
        algo = get_algorithm(train_options.get("algo", "iql"))
        seeds = [train_options.get("seed", 0)]
        if args.seeds:
            if "seed" in train_options:
                parser.error("give --seed or --seeds, not both")
            try:
                seeds = [int(s) for s in args.seeds.split(",")]
            except ValueError:
                parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
            if len(set(seeds)) < len(seeds):
                parser.error(f"--seeds repeats a seed: {args.seeds}")
        dataset = train_options.get("dataset", TrainConfig.dataset)
        stem = Path(dataset).stem if Path(dataset).suffix else Path(dataset).name
        stamp = time.strftime("%Y%m%d-%H%M%S")
        configs = []
        for seed in seeds:
            options = {**train_options, "seed": seed}
            if not train_options.get("run_name"):
                options["run_name"] = f"{algo.name}-{stem}-s{seed}-{stamp}"
            elif args.seeds:
                options["run_name"] = f"{train_options['run_name']}-s{seed}"
            configs.append(TrainConfig(**options))
        algo_config = algo.config_class(**_pick(args, algo.config_class))
        if args.seeds:
            from offrl.train.group import train_group

            results = train_group(configs, algo_config)
        else:
            results = [train(configs[0], algo_config)]
    failed = 0
    for result in results:
        if result.error is not None:
            print(f"{result.run_dir}: stopped: {result.error}", file=sys.stderr)
            failed += 1
        else:
            _print_result(result)
    return 1 if failed else 0


def _print_result(result: Any) -> None:
    config = json.loads((result.run_dir / "config.json").read_text())
    lines = [
        f"{config['algo']} on {config['dataset']['name']} ({config['dataset']['transitions']} transitions), "
        f"{result.step} updates"
    ]
    ev = result.final_evaluation
    if ev is not None:
        lines.append(
            f"  policy:         normalised score {ev.normalized_mean:6.1f} +- {ev.normalized_std:.1f}   "
            f"(return {ev.mean:.1f} +- {ev.std:.1f}, {len(ev.returns)} episodes on {config['task']})"
        )
    if result.behaviour_normalized_score is not None:
        lines.append(
            f"  behaviour data: normalised score {result.behaviour_normalized_score:6.1f}   "
            "(mean over the dataset's episodes)"
        )
    lines.append(
        f"  throughput:     {result.updates_per_second:.0f} updates/s (compile {result.compile_seconds:.1f} s)"
    )
    lines.append(f"  run directory:  {result.run_dir}")
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------------------------------
# train-online

ONLINE_EXAMPLES = """examples:
  offrl train-online --algo sac --task pendulum --steps 20000
  offrl train-online --algo sac --task hopper --steps 200000 --eval-interval 10000
  offrl train-online --algo td3 --task hopper --steps 200000 --updates-per-step 2
  offrl train-online --resume runs/sac-hopper-s0-20260101-120000 --steps 400000
"""


def _online_parser(algo_name: str) -> argparse.ArgumentParser:
    from offrl.algos import get_algorithm
    from offrl.train.online import ONLINE_ALGORITHMS, OnlineConfig

    algo = get_algorithm(algo_name)
    parser = argparse.ArgumentParser(
        prog="offrl train-online",
        description="Learn a policy by interacting with a Gymnasium task (SAC or TD3). Writes a run directory "
        "like `offrl train` (config, metrics, checkpoints with the replay buffer) and prints the final score.",
        epilog=ONLINE_EXAMPLES + "\nalgorithms: " + ", ".join(ONLINE_ALGORITHMS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run = parser.add_argument_group("run options")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the online run in RUN_DIR from its newest checkpoint (with --steps: to that new total)",
    )
    _add_dataclass_options(run, OnlineConfig)
    group = parser.add_argument_group(f"{algo.name} options ({algo.description})")
    _add_dataclass_options(group, algo.config_class, skip=("normalize_observations", "reward_scaling"))
    return parser


def cmd_train_online(argv: list[str]) -> int:
    from offrl.algos import get_algorithm
    from offrl.train.online import OnlineConfig, resume_online, train_online

    algo_name = _algo_in(argv, "sac")
    try:
        parser = _online_parser(algo_name)
    except KeyError as e:
        print(f"offrl train-online: {e.args[0]}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.resume:
        _only_steps_and_progress(parser, args, OnlineConfig, get_algorithm(algo_name).config_class)
        result = resume_online(
            args.resume, steps=getattr(args, "steps", None), progress=getattr(args, "progress", None)
        )
    else:
        options = _pick(args, OnlineConfig)
        algo = get_algorithm(options.get("algo", "sac"))
        config = OnlineConfig(**options)
        algo_config = algo.config_class(**_pick(args, algo.config_class))
        result = train_online(config, algo_config)
    ev = result.final_evaluation
    config_json = json.loads((result.run_dir / "config.json").read_text())
    print(
        "\n".join(
            [
                f"{config_json['algo']} on {config_json['task']} ({config_json['env_id']}), "
                f"{result.step} environment steps",
                f"  policy:         normalised score {ev.normalized_mean:6.1f} +- {ev.normalized_std:.1f}   "
                f"(return {ev.mean:.1f} +- {ev.std:.1f}, {len(ev.returns)} episodes)",
                f"  throughput:     {result.updates_per_second:.0f} updates/s while learning, "
                f"environment alone {result.env_steps_per_second:.0f} steps/s",
                f"  run directory:  {result.run_dir}",
            ]
        )
    )
    return 0


# ---------------------------------------------------------------------------------------------------------------
# finetune (offline-to-online)

FINETUNE_EXAMPLES = """examples:
  offrl finetune --algo iql --offline-steps 20000 --online-steps 20000      on the built-in pendulum-mixed data
  offrl finetune --algo iql --dataset ../shared/data/hopper-medium.hdf5 --task hopper --offline-steps 200000 \\
      --online-steps 100000 --offline-fraction 0.5
  offrl finetune --algo awac --mixing buffer --online-steps 50000            offline data copied into the buffer
  offrl finetune --resume runs/iql-pendulum-mixed-o2o-s0-20260101-120000
"""


def _finetune_parser(algo_name: str) -> argparse.ArgumentParser:
    from offrl.algos import get_algorithm
    from offrl.train.finetune import FinetuneConfig

    algo = get_algorithm(algo_name)
    parser = argparse.ArgumentParser(
        prog="offrl finetune",
        description="Offline-to-online: train on the dataset, then keep learning while acting in its environment, "
        "on batches that mix the offline data and the online replay. One run directory; the summary has the score "
        "at the switch, the dip after it, the final score and the regret.",
        epilog=FINETUNE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run = parser.add_argument_group("run options")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    _add_dataclass_options(run, FinetuneConfig)
    group = parser.add_argument_group(f"{algo.name} options ({algo.description})")
    _add_dataclass_options(group, algo.config_class)
    return parser


def cmd_finetune(argv: list[str]) -> int:
    from offrl.algos import get_algorithm
    from offrl.train.finetune import FinetuneConfig, finetune, resume_finetune

    algo_name = _algo_in(argv, "iql")
    try:
        parser = _finetune_parser(algo_name)
    except KeyError as e:
        print(f"offrl finetune: {e.args[0]}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.resume:
        given = sorted(
            (set(_pick(args, FinetuneConfig)) | set(_pick(args, get_algorithm(algo_name).config_class)))
            - {"algo", "progress"}
        )
        if given:
            parser.error(f"--resume continues the run as it was configured; drop {', '.join(given)}")
        result = resume_finetune(args.resume, progress=getattr(args, "progress", None))
    else:
        options = _pick(args, FinetuneConfig)
        algo = get_algorithm(options.get("algo", "iql"))
        result = finetune(FinetuneConfig(**options), algo.config_class(**_pick(args, algo.config_class)))
    s, ev = result.summary, result.final_evaluation
    lines = [f"offline-to-online, {s['offline_step']} offline updates then {s['online_step']} environment steps"]
    if "score_at_switch" in s:
        lines += [
            f"  at the switch:  normalised score {s['score_at_switch']:6.1f}",
            f"  after it:       minimum {s['min_after_switch']:.1f} (dip {s['dip']:.1f}), "
            f"regret {s['eval_regret']:.3f} (evaluations) / {s['train_regret']:.3f} (training episodes)",
        ]
    lines += [
        f"  final policy:   normalised score {ev.normalized_mean:6.1f} +- {ev.normalized_std:.1f}",
        f"  run directory:  {result.run_dir}",
    ]
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# evaluate


def cmd_evaluate(argv: list[str]) -> int:
    from offrl.envs import evaluate, get_task
    from offrl.train import load_policy

    parser = argparse.ArgumentParser(
        prog="offrl evaluate", description="Evaluate a trained policy (a checkpoint file or a run directory)."
    )
    parser.add_argument("checkpoint", help="a step_*.msgpack checkpoint, or a run directory (newest checkpoint)")
    parser.add_argument("--task", help="task to evaluate on (default: the one the run used)")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    parser.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions from the policy's distribution instead of taking its mean",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    policy = load_policy(args.checkpoint)
    task = get_task(args.task) if args.task else policy.task
    if task is None:
        parser.error("the checkpoint records no task; pass --task")
    try:
        policy.check_fits(task)
    except ValueError as e:
        parser.error(str(e))
    result = evaluate(policy.sampler(args.seed) if args.stochastic else policy, task, args.episodes, args.seed)
    if args.json:
        print(json.dumps({**result.summary(), "returns": result.returns.tolist(), "task": task.name}))
    else:
        print(
            f"{task.name}: return {result.mean:.1f} +- {result.std:.1f}, normalised score "
            f"{result.normalized_mean:.1f} +- {result.normalized_std:.1f} over {args.episodes} episodes "
            f"(step {policy.metadata['step']})"
        )
    return 0


def cmd_fqe(argv: list[str]) -> int:
    from offrl.envs import evaluate, get_task
    from offrl.ope import FQEConfig, fitted_q_evaluation
    from offrl.train import load_policy
    from offrl.train.offline import resolve_dataset

    parser = argparse.ArgumentParser(
        prog="offrl fqe",
        description="Off-policy evaluation: estimate a trained policy's discounted return from logged data with "
        "Fitted Q Evaluation, with a bootstrap confidence interval; --online-episodes also runs the policy to compare.",
    )
    parser.add_argument("checkpoint", help="a step_*.msgpack checkpoint, or a run directory (newest checkpoint)")
    parser.add_argument("--dataset", required=True, help="logged data to evaluate on (file, directory or built-in)")
    parser.add_argument("--task", help="task of the data (default: the dataset's)")
    _add_dataclass_options(parser.add_argument_group("FQE options"), FQEConfig)
    parser.add_argument("--online-episodes", type=int, default=0, help="also roll the policy out this many times")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    config = FQEConfig(**_pick(args, FQEConfig))
    policy = load_policy(args.checkpoint)
    source = resolve_dataset(args.dataset, args.task or "", 0)
    task = get_task(args.task) if args.task else policy.task
    if task is not None:
        policy.check_fits(task)
    result = fitted_q_evaluation(source.dataset, policy, config)
    record: dict[str, Any] = {**result.summary(), "seconds": result.seconds}
    if args.online_episodes:
        if task is None:
            parser.error("--online-episodes needs a task: pass --task")
        online = evaluate(policy, task, args.online_episodes, seed=100_000, discount=config.discount)
        assert online.discounted_returns is not None
        record["online/discounted_return"] = float(online.discounted_returns.mean())
        record["online/normalized_score"] = online.normalized_mean
    if args.json:
        print(json.dumps(record))
        return 0
    print(
        f"FQE (gamma {config.discount}): {result.estimate:.2f}, {config.confidence:.0%} interval "
        f"[{result.low:.2f}, {result.high:.2f}] over {config.members - 1} bootstrap fits ({result.seconds:.0f} s)"
    )
    # a loss far above other policies' on the same data marks a fit that has not settled (BENCHMARKS.md, FQE)
    print(f"final TD loss: {result.td_loss:.4g}")
    if args.online_episodes:
        print(
            f"online, {args.online_episodes} episodes: discounted return {record['online/discounted_return']:.2f} "
            f"(normalised score {record['online/normalized_score']:.1f})"
        )
    return 0


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole > 1e-12 else "n/a"


def cmd_workflow(argv: list[str]) -> int:
    from offrl.ope.workflow import checkpoint_statistics, diagnose
    from offrl.train.offline import read_run_config, resolve_dataset

    parser = argparse.ArgumentParser(
        prog="offrl workflow",
        description="Judge a training run without online evaluation (Kumar et al. 2021): the average dataset "
        "Q-value and TD error of every checkpoint, then the verdict (overfitting, underfitting, diverging or "
        "fine), the checkpoint to deploy and what to change. Train with --keep-checkpoints 0 to keep every "
        "checkpoint.",
    )
    parser.add_argument("run_dir", help="an offrl training run directory")
    parser.add_argument("--dataset", help="transitions to measure on (default: the run's training data)")
    parser.add_argument("--max-rows", type=int, default=20_000, help="rows of the dataset used (evenly spaced)")
    parser.add_argument("--json", action="store_true", help="print the statistics and verdict as JSON")
    args = parser.parse_args(argv)
    saved = read_run_config(Path(args.run_dir))
    name = args.dataset or (
        saved["dataset"]["path"] if not saved["dataset"].get("builtin") else saved["train"]["dataset"]
    )
    dataset = resolve_dataset(name, saved["train"].get("task", "")).dataset
    stats = checkpoint_statistics(args.run_dir, dataset, args.max_rows)
    result = diagnose(stats)
    if args.json:
        finite = lambda s: {k: v if np.isfinite(v) else None for k, v in vars(s).items()}  # noqa: E731
        print(json.dumps({"checkpoints": [finite(s) for s in stats], **vars(result)}))
        return 0
    print("step        dataset Q    TD error   TD error / target variance")
    for s in stats:
        print(f"{s.step:<11d} {s.dataset_q:10.4g} {s.td_error:11.4g} {_share(s.td_error, s.target_variance):>9}")
    print(f"values the data's rewards allow: [{stats[-1].value_low:.4g}, {stats[-1].value_high:.4g}]")
    print(f"verdict: {result.verdict}: {result.explanation}")
    print(f"recommended checkpoint: step {result.recommended_step}")
    print(f"advice: {result.advice}")
    return 0


def cmd_report(argv: list[str]) -> int:
    from offrl.reports.runs import plots, read_run, render, write_report

    parser = argparse.ArgumentParser(
        prog="offrl report",
        description="Learning curves of one or several runs (score, losses, Q statistics, gradient norms) on one "
        "self-contained HTML page, plus one PNG per plot; several runs (e.g. seeds) are overlaid with their mean "
        "and spread.",
    )
    parser.add_argument("run_dirs", nargs="+", help="offrl run directories")
    parser.add_argument("--out", default="report", help="output directory: index.html and the PNGs")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; the report is a directory (index.html and PNGs)")
    if out.is_dir() and any(out.iterdir()) and not (out / "index.html").exists():
        parser.error(f"--out {out} holds other files and no earlier report; choose an empty or new directory")
    runs = [read_run(d) for d in args.run_dirs]
    empty = [str(d) for d, r in zip(args.run_dirs, runs, strict=True) if not r.eval and not r.train]
    if empty:
        parser.error(f"no metrics recorded yet in {', '.join(empty)} (train.csv and eval.csv are missing or empty)")
    images = plots(runs)
    write_report(out / "index.html", render(runs, images), overwrite=args.overwrite)
    for name, png in images.items():
        (out / f"{name.replace('/', '_')}.png").write_bytes(png)
    print(f"wrote {out / 'index.html'} and {len(images)} PNGs ({len(runs)} runs)")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# dataset


def _stats_table(name: str, values: np.ndarray) -> list[str]:
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    rows = [f"  {name} (per dimension):", "    dim        mean        std        min        max"]
    for j in range(flat.shape[1]):
        col = flat[:, j]
        rows.append(f"    {j:3d} {col.mean():11.4g} {col.std():10.4g} {col.min():10.4g} {col.max():10.4g}")
    return rows


def dataset_report(path: str, task_name: str | None = None, max_episode_steps: int | None = None) -> dict[str, Any]:
    """Everything ``offrl dataset info`` prints, as a dict."""
    from offrl.data.dataset import DatasetError, check_against_spaces, next_observation_mismatches
    from offrl.train.offline import dataset_task, resolve_dataset

    source = resolve_dataset(path, task_name or "", max_episode_steps or 0)
    ds = source.dataset
    task = dataset_task(ds, task_name or "")
    returns = ds.episode_returns()
    lengths = ds.episode_lengths()
    problems: list[str] = []
    if task is not None:
        try:
            check_against_spaces(ds, *task.spaces())
        except DatasetError as e:
            problems += e.problems
    mismatches = next_observation_mismatches(ds)
    if mismatches:
        problems.append(
            f"{mismatches} rows inside episodes have next_observations different from the next row's "
            "observations (shuffled rows or missing episode ends?)"
        )
    constant = np.flatnonzero(ds.observations.reshape(ds.size, -1).std(axis=0) == 0)
    if constant.size:
        problems.append(f"observation dimensions {constant.tolist()} are constant (they carry no information)")
    if not ds.terminals.any():
        problems.append("no terminal transitions: every episode ended by a time limit (fine for Pendulum-like tasks)")
    report: dict[str, Any] = {
        "path": source.path,
        "sha256": source.sha256,
        "fingerprint": ds.fingerprint(),
        "transitions": ds.size,
        "episodes": ds.num_episodes,
        "terminals": int(ds.terminals.sum()),
        "timeouts": int(ds.timeouts.sum()),
        "observation_shape": list(ds.observation_shape),
        "action_space": ds.action_space.to_json() if ds.action_space else None,
        "episode_length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())},
        "return": {"min": float(returns.min()), "mean": float(returns.mean()), "max": float(returns.max())},
        "task": task.name if task else None,
        "problems": problems,
        "metadata": {k: v for k, v in ds.metadata.items() if isinstance(v, (str, int, float, bool))},
    }
    if task is not None:
        norm = np.asarray(task.normalized_score(returns))
        report["normalized_return"] = {"min": float(norm.min()), "mean": float(norm.mean()), "max": float(norm.max())}
    report["_dataset"] = ds
    return report


def cmd_dataset(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="offrl dataset", description="Inspect, convert, make and list datasets.")
    sub = parser.add_subparsers(dest="action", required=True)
    info = sub.add_parser("info", help="statistics and validation problems of a dataset")
    info.add_argument("path", help="a dataset file or directory, or a built-in name")
    info.add_argument("--task", help="task whose spaces and reference returns to use (default: the dataset's)")
    info.add_argument("--max-episode-steps", type=int, help="time limit for flat logs without end flags")
    info.add_argument("--json", action="store_true", help="print the report as JSON (no per-dimension tables)")
    convert = sub.add_parser(
        "convert",
        help="save a dataset in offrl's own npz format (several sources: concatenated, e.g. medium + expert)",
    )
    convert.add_argument("source", nargs="+", help="dataset files or directories, or built-in names")
    convert.add_argument("destination", help="the .npz file to write (.npz is appended when missing)")
    convert.add_argument("--task", help="task (for flat logs: its time limit)")
    convert.add_argument("--max-episode-steps", type=int, help="time limit for flat logs without end flags")
    convert.add_argument("--overwrite", action="store_true", help="replace the destination if it exists")
    make = sub.add_parser(
        "make",
        help="collect a dataset by running a policy in a task (D4RL HDF5 or Minari directory)",
        description="Collect a dataset by running a behaviour policy: an offrl run or checkpoint, an actor npz "
        "(hidden0_w/_b, hidden1_w/_b, mean_w/_b, log_std_w/_b), or uniform random actions. A destination ending in "
        ".hdf5 gets the D4RL layout (with infos/qpos and infos/qvel for MuJoCo tasks); anything else becomes a "
        "Minari dataset directory. Provenance (policy, its sha256, noise, seed, offrl version) is recorded in the "
        "file. Examples: `offrl dataset make --task hopper --policy random --transitions 50000 random.hdf5`; "
        "`offrl dataset make --task hopper --policy ../shared/experts/sac_hopper.npz --stochastic medium.hdf5`. "
        "With --replay RUN_DIR instead of --policy, the replay buffer of an offrl online run becomes the dataset "
        "(D4RL's medium-replay: `offrl train-online --algo sac --task hopper --stop-return 1100 ...`, then "
        "`offrl dataset make --replay RUN_DIR medium-replay.hdf5`).",
    )
    make.add_argument("destination", help="output: a .hdf5 file (D4RL layout) or a directory (Minari)")
    make.add_argument("--task", help="task to run (offrl name or Gymnasium id); with --replay: the run's")
    source = make.add_mutually_exclusive_group(required=True)
    source.add_argument("--policy", help="random | an actor .npz | an offrl run directory or checkpoint")
    source.add_argument("--replay", help="an offrl online run directory or checkpoint: its replay buffer is the data")
    make.add_argument("--stochastic", action="store_true", help="sample from the policy instead of its mean")
    make.add_argument("--transitions", type=int, default=100_000, help="number of transitions (default 100000)")
    make.add_argument("--seed", type=int, default=0, help="seed of episode resets and action sampling")
    make.add_argument("--action-noise", type=float, default=0.0, help="Gaussian noise std, in half action ranges")
    make.add_argument("--epsilon", type=float, default=0.0, help="probability of a uniform random action instead")
    make.add_argument("--dataset-id", help="Minari dataset id (default: offrl/TASK-NAME-v0)")
    make.add_argument("--overwrite", action="store_true", help="replace the destination if it exists")
    sub.add_parser("list", help="the built-in datasets")
    report = sub.add_parser(
        "report",
        help="an HTML report: TQ, SACo, returns, coverage, plots and a verdict",
        description="Write a self-contained HTML report of a dataset: trajectory quality (TQ) and state-action "
        "coverage (SACo) after Schweighofer et al. 2022, return and episode-length distributions, action and state "
        "coverage, and a verdict on whether behaviour cloning or offline RL suits the data. Example: `offrl dataset "
        "report ../shared/data/hopper-medium.hdf5 --task hopper --reference data/suite/hopper-medium-replay.hdf5`.",
    )
    report.add_argument("path", help="a dataset file or directory, or a built-in name")
    report.add_argument("--task", help="task whose reference returns give TQ (default: the dataset's)")
    report.add_argument("--reference", help="dataset SACo is relative to (e.g. a replay dataset of the task)")
    report.add_argument("--bins", type=int, default=100, help="bins per dimension for SACo (default 100, the paper's)")
    report.add_argument("--out", help="output HTML file (default: PATH's name + -report.html in the working directory)")
    report.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    report.add_argument("--max-episode-steps", type=int, help="time limit for flat-layout npz files")
    args = parser.parse_args(argv)

    if args.action == "make":
        return _dataset_make(args)
    if args.action == "report":
        return _dataset_report_html(args)

    if args.action == "list":
        from offrl.data.builtin import BUILTIN, builtin_path

        for spec in BUILTIN.values():
            cached = "cached" if builtin_path(spec.name).exists() else "built on first use"
            print(f"{spec.name:18s} task {spec.task:10s} {spec.description} [{cached}]")
        return 0
    if args.action == "convert":
        from offrl.data.dataset import concatenate
        from offrl.data.formats.common import check_destination
        from offrl.data.formats.npz import npz_destination
        from offrl.data.loaders import save_dataset
        from offrl.train.offline import resolve_dataset

        destination = npz_destination(args.destination)
        check_destination(destination, "npz", args.overwrite)  # before loading: refuse early, write nothing
        parts = [resolve_dataset(s, args.task or "", args.max_episode_steps or 0).dataset for s in args.source]
        dataset = parts[0] if len(parts) == 1 else concatenate(parts)
        digest = save_dataset(dataset, destination, overwrite=args.overwrite)
        print(f"wrote {destination} ({dataset.size} transitions, {dataset.num_episodes} episodes), sha256 {digest}")
        return 0

    report = dataset_report(args.path, args.task, args.max_episode_steps)
    ds = report.pop("_dataset")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    lines = [
        f"dataset {report['path']}",
        f"  sha256 {report['sha256']}",
        f"  transitions {report['transitions']}, episodes {report['episodes']} "
        f"(terminals {report['terminals']}, timeouts {report['timeouts']})",
        f"  episode length min / mean / max: {report['episode_length']['min']} / "
        f"{report['episode_length']['mean']:.1f} / {report['episode_length']['max']}",
        f"  return min / mean / max: {report['return']['min']:.2f} / {report['return']['mean']:.2f} / "
        f"{report['return']['max']:.2f}",
    ]
    if "normalized_return" in report:
        n = report["normalized_return"]
        lines.append(
            f"  normalised return ({report['task']}) min / mean / max: {n['min']:.1f} / {n['mean']:.1f} / "
            f"{n['max']:.1f}"
        )
    else:
        lines.append("  normalised return: unknown task (pass --task)")
    space = report["action_space"]
    if space["discrete"]:
        lines.append(f"  actions: discrete, {space['n']} choices")
    lines += _stats_table("observations", ds.observations)
    if not ds.discrete:
        lines += _stats_table("actions", ds.actions)
    else:
        counts = np.bincount(ds.actions, minlength=space["n"])
        lines.append("  action counts: " + ", ".join(f"{i}: {c}" for i, c in enumerate(counts)))
    lines.append(f"  problems found: {len(report['problems'])}")
    lines += [f"    - {p}" for p in report["problems"]]
    print("\n".join(lines))
    return 0


def _dataset_report_html(args: argparse.Namespace) -> int:
    from offrl.data.dataset import check_against_spaces
    from offrl.data.diagnostics import measure
    from offrl.reports.dataset import render, verdict, write_report
    from offrl.train.offline import dataset_task, resolve_dataset

    if args.out:
        _check_report_destination(Path(args.out), args.overwrite)
    source = resolve_dataset(args.path, args.task or "", args.max_episode_steps or 0)
    dataset = source.dataset
    task = dataset_task(dataset, args.task or "")
    if task is not None:  # as `offrl train` does: TQ from another task's reference returns would mean nothing
        check_against_spaces(dataset, *task.spaces())
    reference = None
    if args.reference:
        reference = resolve_dataset(args.reference, args.task or "", args.max_episode_steps or 0).dataset
        if task is not None:
            check_against_spaces(reference, *task.spaces())
    refs = {"random_return": task.ref_random, "best_return": task.ref_expert} if task is not None else {}
    measures = measure(dataset, reference=reference, bins=args.bins, **refs)
    normalized = np.asarray(task.normalized_score(measures.episode_returns)) if task is not None else None
    name = Path(str(source.path)).name if source.path else args.path
    out = Path(args.out) if args.out else Path(f"{Path(name).stem}-report.html")
    _check_report_destination(out, args.overwrite)
    page = render(name, dataset, measures, task=task.name if task else None, reference=args.reference,
                  normalized_returns=normalized)  # fmt: skip
    write_report(out, page, overwrite=args.overwrite)
    tq = "-" if measures.tq is None else f"{measures.tq:.3f}"
    print(f"wrote {out}: TQ {tq}, SACo {measures.saco:.3f} ({measures.unique_state_actions} unique state-action bins)")
    print(verdict(measures, reference is not None))
    return 0


def _check_report_destination(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an HTML report destination that would be lost or cannot be written."""
    if out.is_dir():
        raise FileExistsError(f"{out} is a directory; --out must name an HTML file (a directory is never replaced)")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")


def _dataset_make(args: argparse.Namespace) -> int:
    from offrl.data import collect as c
    from offrl.data.formats.common import check_destination
    from offrl.data.loaders import file_sha256
    from offrl.envs import get_task

    destination = Path(args.destination)
    # Before collecting: a file only replaces a D4RL file, a directory only a Minari dataset offrl wrote.
    check_destination(destination, _made_format(destination), args.overwrite)
    if args.replay:
        return _dataset_from_replay(args, destination)
    if not args.task:
        raise ValueError("--task is required with --policy")
    task = get_task(args.task)
    if args.policy == "random":
        policy, kind, digest = c.uniform_policy(task, args.seed), "uniform random", None
    elif args.policy.endswith(".npz"):
        policy = c.npz_actor(args.policy, task, args.stochastic, args.seed)
        kind, digest = f"actor npz {Path(args.policy).name}", file_sha256(args.policy)
    else:
        policy = c.checkpoint_policy(args.policy, task, args.stochastic, args.seed)
        kind, digest = f"offrl policy {args.policy}", None
    policy = c.with_noise(policy, task, args.seed, args.action_noise, args.epsilon)
    start = time.perf_counter()
    dataset = c.collect(task, policy, args.transitions, args.seed, progress=True)
    seconds = time.perf_counter() - start
    attrs = c.describe(
        kind,
        policy=args.policy,
        policy_sha256=digest,
        stochastic=bool(args.stochastic) if args.policy != "random" else None,
        action_noise=args.action_noise,
        epsilon=args.epsilon,
        seed=args.seed,
        env_id=task.env_id,
        ref_min_score=task.ref_random,
        ref_max_score=task.ref_expert,
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    _write_made_dataset(dataset, destination, task, attrs, args)
    print(f"collected in {seconds:.0f} s")
    return 0


def _write_made_dataset(dataset: Any, destination: Path, task: Any, attrs: dict[str, Any], args: Any) -> None:
    from offrl.data.formats.d4rl import save_d4rl_hdf5
    from offrl.data.formats.minari import save_minari

    if _made_format(destination) == "hdf5":
        save_d4rl_hdf5(dataset, destination, attrs, overwrite=args.overwrite)
    else:
        dataset_id = args.dataset_id or f"offrl/{task.name}-{destination.name}-v0"
        save_minari(dataset, destination, dataset_id, attrs, overwrite=args.overwrite)
    returns = dataset.episode_returns()
    print(
        f"wrote {destination}: {dataset.size} transitions, {dataset.num_episodes} episodes; "
        f"mean return {returns.mean():.1f} (normalised {float(task.normalized_score(returns.mean())):.1f})"
    )


def _made_format(destination: Path) -> str:
    """What ``offrl dataset make`` writes to ``destination``: a D4RL HDF5 file or a Minari directory."""
    return "hdf5" if destination.suffix in (".hdf5", ".h5") else "minari"


def _dataset_from_replay(args: argparse.Namespace, destination: Path) -> int:
    from offrl.data import collect as c
    from offrl.data.dataset import check_against_spaces
    from offrl.envs import get_task
    from offrl.train.online import replay_dataset

    ignored = [
        flag
        for flag, value in (
            ("--stochastic", args.stochastic),
            ("--action-noise", args.action_noise),
            ("--epsilon", args.epsilon),
        )
        if value
    ]
    if ignored:
        raise ValueError(f"{', '.join(ignored)} apply to --policy, not to --replay")
    dataset = replay_dataset(args.replay)
    task = get_task(args.task or dataset.metadata["task"])
    check_against_spaces(dataset, *task.spaces())  # --task must be the run's task (or one with its spaces)
    attrs = c.describe(
        "replay buffer of an offrl online run",
        policy=args.replay,
        env_steps=dataset.metadata["env_steps"],
        env_id=task.env_id,
        ref_min_score=task.ref_random,
        ref_max_score=task.ref_expert,
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    _write_made_dataset(dataset, destination, task, attrs, args)
    return 0


# ---------------------------------------------------------------------------------------------------------------


COMMANDS = {
    "train": cmd_train,
    "train-online": cmd_train_online,
    "finetune": cmd_finetune,
    "evaluate": cmd_evaluate,
    "fqe": cmd_fqe,
    "workflow": cmd_workflow,
    "report": cmd_report,
    "dataset": cmd_dataset,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            f"offrl {__version__}: data-driven reinforcement learning in JAX\n\n"
            "usage: offrl COMMAND [options]   (offrl COMMAND --help for each)\n\n"
            "commands:\n"
            "  train         train a policy from logged data (default: IQL on the built-in pendulum-mixed data)\n"
            "  train-online  learn by interaction with a Gymnasium task (SAC, TD3)\n"
            "  finetune      offline-to-online: train on a dataset, then keep learning in its environment\n"
            "  evaluate      evaluate a checkpoint on its task\n"
            "  fqe           estimate a checkpoint's value from logged data (Fitted Q Evaluation, bootstrap interval)\n"
            "  workflow      judge a run from its checkpoints without online evaluation (over/underfitting)\n"
            "  report        learning curves of runs (HTML and PNG)\n"
            "  dataset       info | convert | make | list | report (TQ, SACo, plots, verdict)\n"
        )
        return 0 if argv else 2
    if argv[0] == "--version":
        print(__version__)
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"offrl: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from offrl.data.dataset import DatasetError
    from offrl.train.checkpoint import CheckpointError
    from offrl.train.offline import NonFiniteLossError

    try:
        return command(argv[1:])
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (
        DatasetError,
        CheckpointError,
        NonFiniteLossError,
        FileExistsError,
        FileNotFoundError,
        KeyError,
        ValueError,
    ) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"offrl {argv[0]}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
