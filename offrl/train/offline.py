"""Offline training runs: dataset -> transforms -> jitted update loop -> evaluation, logs and checkpoints.

A run directory holds everything needed to understand and continue a run::

    config.json        resolved TrainConfig and algorithm config, offrl version, dataset source/sha256/fingerprint,
                       the data transforms, the task, the network spec, and the runtime it started on (library
                       versions, JAX backend and devices)
    metrics.jsonl      every training and evaluation record
    train.csv eval.csv the same records as tables
    checkpoints/       step_XXXXXXXXX.msgpack + .json (see offrl.train.checkpoint)
    summary.json       final evaluation, throughput and compile time

``train(TrainConfig(...), algo_config)`` starts a run; ``resume(run_dir)`` continues one, bitwise identical to a
run that was never interrupted (same platform).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

import offrl
from offrl.algos import get_algorithm
from offrl.algos.base import Algorithm, Spec, training_update
from offrl.data.columns import derived_column
from offrl.data.corruption import Corruption, corrupt
from offrl.data.dataset import Dataset, check_against_spaces, concatenate
from offrl.data.loaders import file_sha256, load_dataset
from offrl.data.transforms import Transforms
from offrl.envs.evaluation import EvaluationResult, evaluate
from offrl.envs.registry import Task, find_task
from offrl.train.checkpoint import (
    CheckpointError,
    atomic_write_json,
    checkpoint_step,
    list_checkpoints,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from offrl.train.engine import UpdateLoop, metric_names
from offrl.train.loggers import FileLogger, Logger, ProgressBar, TensorBoardLogger, tensorboard_available
from offrl.train.runtime import RunClock, keep_first_runtime, runtime_info


@dataclass(frozen=True)
class TrainConfig:
    """How to run training (what to learn is the algorithm's config)."""

    algo: str = dataclasses.field(default="iql", metadata={"help": "algorithm (listed at the end of this help)"})
    dataset: str = dataclasses.field(
        default="pendulum-mixed", metadata={"help": "dataset file/directory, or a built-in name (made on first use)"}
    )
    task: str = dataclasses.field(default="", metadata={"help": "evaluation task; default: the dataset's own"})
    steps: int = dataclasses.field(default=20_000, metadata={"help": "number of gradient updates"})
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed (network init, sampling, evaluation)"})
    batch_size: int = dataclasses.field(default=256, metadata={"help": "transitions per update"})
    updates_per_call: int = dataclasses.field(default=1000, metadata={"help": "updates per jitted call (lax.scan)"})
    log_interval: int = dataclasses.field(default=1000, metadata={"help": "updates between metric records"})
    eval_interval: int = dataclasses.field(default=5_000, metadata={"help": "updates between evaluations; 0 = end"})
    eval_episodes: int = dataclasses.field(default=10, metadata={"help": "episodes per evaluation"})
    checkpoint_interval: int = dataclasses.field(
        default=0, metadata={"help": "updates between checkpoints; 0 = at every evaluation"}
    )
    keep_checkpoints: int = dataclasses.field(default=2, metadata={"help": "newest checkpoints kept"})
    output_dir: str = dataclasses.field(default="runs", metadata={"help": "parent folder of run directories"})
    run_name: str = dataclasses.field(default="", metadata={"help": "run directory name; default algo-dataset-seed"})
    max_episode_steps: int = dataclasses.field(
        default=0, metadata={"help": "time limit for logs that lack end flags (flat npz); 0 = the task's"}
    )
    progress: bool = dataclasses.field(default=True, metadata={"help": "show a progress bar"})
    corruption: str = dataclasses.field(
        default="",
        metadata={
            "help": "corrupt the data first (robustness tests, offrl.data.corruption): "
            "KIND[:random|adversarial[:RATE[:SCALE]]], KIND = observations | actions | rewards | dynamics"
        },
    )
    corruption_seed: int = dataclasses.field(default=0, metadata={"help": "seed choosing the corrupted rows"})
    expert_dataset: str = dataclasses.field(
        default="",
        metadata={
            "help": "expert demonstrations for imitation algorithms (recoil): a file or built-in name; added to "
            "the dataset and marked as expert (rewards unused)"
        },
    )
    expert_episodes: int = dataclasses.field(
        default=0, metadata={"help": "use only the first N episodes of --expert-dataset; 0 = all"}
    )

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "updates_per_call", "log_interval", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "eval_interval",
            "checkpoint_interval",
            "keep_checkpoints",
            "max_episode_steps",
            "expert_episodes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.corruption:
            Corruption.parse(self.corruption, self.corruption_seed)  # a bad spec fails here, before any work
        if self.expert_episodes and not self.expert_dataset:
            raise ValueError("expert_episodes needs expert_dataset")


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or inf; the run stopped and its last good checkpoint is kept."""


@dataclass
class RunResult:
    run_dir: Path
    step: int
    agent: Any
    final_evaluation: EvaluationResult | None
    behaviour_normalized_score: float | None
    updates_per_second: float
    compile_seconds: float
    #: Why the run stopped early (a member of a group whose loss turned non-finite); ``None`` when it finished.
    error: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class DataSource:
    dataset: Dataset
    name: str
    path: str
    sha256: str
    builtin: bool


def resolve_dataset(name_or_path: str, task: str = "", max_episode_steps: int = 0) -> DataSource:
    """A built-in dataset name or a path, loaded and fingerprinted."""
    from offrl.data.builtin import BUILTIN, load_builtin

    builtin = name_or_path in BUILTIN and not Path(name_or_path).exists()
    if builtin:
        dataset, path = load_builtin(name_or_path)
        name = name_or_path
    else:
        path = Path(name_or_path)
        dataset = load_dataset(path, max_episode_steps=max_episode_steps or None, task=task or None)
        name = path.stem if path.is_file() else path.name
    return DataSource(dataset, name, str(Path(path).resolve()), file_sha256(path), builtin)


def with_expert_demonstrations(dataset: Dataset, expert: Dataset, episodes: int = 0) -> Dataset:
    """``dataset`` followed by the expert demonstrations (their first ``episodes`` episodes if > 0), with
    ``extras["is_expert"]`` marking the expert rows (``offrl.data.columns``)."""
    if episodes:
        if episodes > expert.num_episodes:
            raise ValueError(
                f"expert_episodes is {episodes} but the expert demonstrations hold {expert.num_episodes} episodes"
            )
        expert = expert.first_episodes(episodes)
    if expert.observation_shape != dataset.observation_shape or expert.discrete != dataset.discrete:
        raise ValueError(
            f"the expert demonstrations (observations {expert.observation_shape}, "
            f"{'discrete' if expert.discrete else 'continuous'} actions) do not match the dataset (observations "
            f"{dataset.observation_shape}, {'discrete' if dataset.discrete else 'continuous'} actions)"
        )
    marked = [
        dataset.replace(extras={**dataset.extras, "is_expert": np.zeros(dataset.size, np.float32)}),
        expert.replace(extras={**expert.extras, "is_expert": np.ones(expert.size, np.float32)}),
    ]
    combined = concatenate(marked)
    meta = {**dataset.metadata, "expert_rows": int(expert.size), "expert_episodes": int(expert.num_episodes)}
    return combined.replace(metadata=meta)


def dataset_task(dataset: Dataset, requested: str = "") -> Task | None:
    """The evaluation task: the one requested, else the dataset's recorded task or env id, else none."""
    if requested:
        task = find_task(requested)
        if task is None:
            from offrl.envs.registry import get_task

            get_task(requested)  # raises with the list of known tasks
        return task
    for key in ("task", "env_id", "minari_env_spec"):
        value = dataset.metadata.get(key)
        if isinstance(value, str) and (task := find_task(value)) is not None:
            return task
    return None


def spec_for(dataset: Dataset) -> Spec:
    space = dataset.action_space
    assert space is not None
    if space.discrete:
        return Spec(dataset.observation_shape, space.n, discrete=True)
    return Spec(dataset.observation_shape, int(np.prod(space.shape)))


def behaviour_score(dataset: Dataset, task: Task | None) -> float | None:
    if task is None:
        return None
    return float(np.mean(task.normalized_score(dataset.episode_returns())))


# ---------------------------------------------------------------------------------------------------------------
# Policies


def make_policy(algo: Algorithm, transforms: Transforms, deterministic: bool = True):
    """A jitted policy ``(agent, raw observations, key) -> actions in the task's bounds``; the key is only used
    when ``deterministic`` is false (actions sampled from the policy's distribution)."""

    @jax.jit
    def policy(agent: Any, observations: jax.Array, key: jax.Array) -> jax.Array:
        actions = algo.act(agent, transforms.normalize_observations(observations), key, deterministic)
        return transforms.denormalize_actions(actions)

    return policy


def evaluate_agent(
    algo: Algorithm, agent: Any, transforms: Transforms, task: Task, episodes: int, seed: int
) -> EvaluationResult:
    policy = make_policy(algo, transforms)
    key = jax.random.PRNGKey(0)
    return evaluate(lambda obs: np.asarray(policy(agent, obs, key)), task, episodes, seed)


# ---------------------------------------------------------------------------------------------------------------
# Runs


def algorithm_and_config(name: str, algo_config: Any = None) -> tuple[Algorithm, Any]:
    """The algorithm ``name`` and its config (its defaults when ``None``; a config of another class is refused)."""
    algo = get_algorithm(name)
    algo_config = algo_config if algo_config is not None else algo.config_class()
    if not isinstance(algo_config, algo.config_class):
        raise TypeError(f"{name} needs a {algo.config_class.__name__}, got {type(algo_config).__name__}")
    return algo, algo_config


def read_run_config(run_dir: Path) -> dict[str, Any]:
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    try:
        saved = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{config_path} is not valid JSON ({e}); the run's config file is corrupt") from e
    if not isinstance(saved, dict) or "train" not in saved:
        raise CheckpointError(f"{config_path} is not an offrl run config (no 'train' settings)")
    return saved


def run_directory(output_dir: str, run_name: str) -> Path:
    """``output_dir / run_name``; a run name is one directory name (no path separators, not ``.`` or ``..``), so a
    run never lands outside ``output_dir``."""
    if not run_name or run_name in (".", "..") or "/" in run_name or "\\" in run_name:
        raise ValueError(f"the run name {run_name!r} must be a single directory name (no '/', not '.' or '..')")
    return Path(output_dir) / run_name


def check_new_run_dir(run_dir: Path, continue_with: str) -> None:
    """Refuse to start a run in a directory that holds anything: an earlier run (``continue_with`` says how to
    continue it) or files that are not a run, which a new run's logs and checkpoints would overwrite or mix with."""
    if (run_dir / "config.json").exists():
        raise FileExistsError(f"{run_dir} already holds a run; {continue_with}")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise FileExistsError(
            f"{run_dir} exists and is not an empty directory, but holds no run (no config.json); a new run would "
            "write into it: choose another --run-name or --output-dir"
        )


def check_resume_target(run_dir: Path, at: int, target: int) -> None:
    """Refuse a resume that would go back (``target`` below the checkpoint step ``at``) or redo a finished run."""
    if target < at:
        raise ValueError(
            f"{run_dir} is at step {at} (its newest checkpoint); resuming it to {target} steps would go back: "
            f"give --steps above {at}, or start a new run"
        )
    if target == at and summary_step(run_dir) == at:
        raise ValueError(f"{run_dir} finished at step {at}; give --steps above {at} to train it further")


def summary_step(run_dir: Path) -> int | None:
    """The step a run's ``summary.json`` was written at (a fine-tune run's: offline plus online steps), or ``None``
    when it has no readable summary."""
    path = run_dir / "summary.json"
    try:
        done = json.loads(path.read_text()) if path.exists() else None
        return None if done is None else int(done.get("step", done.get("offline_step", 0) + done.get("online_step", 0)))
    except (json.JSONDecodeError, TypeError, ValueError):
        return None


def newest_checkpoint(run_dir: Path) -> Path:
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    if not checkpoints:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from")
    return checkpoints[-1]


def last_good_checkpoint(run_dir: Path) -> str:
    """For the message of a stopped run: where its newest checkpoint is."""
    kept = list_checkpoints(run_dir / "checkpoints")
    return f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint had been written yet"


def open_sinks(run_dir: Path, resume_from_step: int | None, loggers: list[Logger] | None) -> list[Logger]:
    """The run's metric sinks: files (truncated after the checkpoint on resume), extra loggers, TensorBoard."""
    sinks: list[Logger] = [FileLogger(run_dir, resume_from_step=resume_from_step), *(loggers or [])]
    if tensorboard_available():
        sinks.append(TensorBoardLogger(run_dir))
    return sinks


def _config_from_json(cls: type, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise CheckpointError(f"unknown {cls.__name__} fields {unknown}; the run was written by another offrl")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**kwargs)


def _run_dir(config: TrainConfig, data_name: str) -> Path:
    return run_directory(config.output_dir, config.run_name or f"{config.algo}-{data_name}-s{config.seed}")


def train(
    config: TrainConfig, algo_config: Any = None, *, loggers: list[Logger] | None = None, stop_after: int | None = None
) -> RunResult:
    """Start a new run. ``stop_after`` ends it early at that step (for tests of resume), checkpointing there."""
    algo, algo_config = algorithm_and_config(config.algo, algo_config)
    algo_config = algo.configure_for_training(algo_config, config.steps)
    source = resolve_dataset(config.dataset, config.task, config.max_episode_steps)
    expert = _expert_source(config, algo)
    run_dir = _run_dir(config, source.name)
    check_new_run_dir(
        run_dir, f"continue it with `offrl train --resume {run_dir}` or choose another --run-name / --output-dir"
    )
    return _execute(
        RunInputs(config, algo, algo_config, source, expert),
        run_dir,
        resume_checkpoint=None,
        loggers=loggers,
        stop_after=stop_after,
    )


def _expert_source(config: TrainConfig, algo: Algorithm) -> DataSource | None:
    """The expert demonstrations an imitation algorithm needs (and only such an algorithm takes)."""
    wants = "is_expert" in algo.extra_columns
    if wants and not config.expert_dataset:
        raise ValueError(f"{algo.name} imitates expert demonstrations: give them with --expert-dataset")
    if config.expert_dataset and not wants:
        raise ValueError(f"{algo.name} does not use expert demonstrations; --expert-dataset is for recoil")
    if not config.expert_dataset:
        return None
    return resolve_dataset(config.expert_dataset, config.task, config.max_episode_steps)


def resume(
    run_dir: str | Path,
    *,
    steps: int | None = None,
    loggers: list[Logger] | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
) -> RunResult:
    """Continue the run in ``run_dir`` from its newest checkpoint (optionally to a new total of ``steps``)."""
    run_dir = Path(run_dir)
    inputs = resume_inputs(run_dir, steps=steps, progress=progress)
    checkpoint = newest_checkpoint(run_dir)
    check_resume_target(run_dir, checkpoint_step(checkpoint), inputs.config.steps)
    return _execute(inputs, run_dir, resume_checkpoint=checkpoint, loggers=loggers, stop_after=stop_after)


@dataclass(frozen=True)
class RunInputs:
    """What a run trains on, as ``train`` or ``resume`` resolved it: settings, algorithm and loaded data."""

    config: TrainConfig
    algo: Algorithm
    algo_config: Any
    source: DataSource
    expert: DataSource | None = None


def resume_inputs(run_dir: Path, *, steps: int | None = None, progress: bool | None = None) -> RunInputs:
    """The settings and data of the run in ``run_dir``, checked against what it recorded (for resuming it)."""
    saved = read_run_config(run_dir)
    if saved.get("kind") == "online":
        raise ValueError(f"{run_dir} is an online run; continue it with `offrl train-online --resume`")
    config = _config_from_json(TrainConfig, saved["train"])
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    if progress is not None:
        config = dataclasses.replace(config, progress=progress)
    algo = get_algorithm(config.algo)
    algo_config = _config_from_json(algo.config_class, saved["algo_config"])
    source = resolve_dataset(
        saved["dataset"]["path"] if not saved["dataset"].get("builtin") else config.dataset,
        config.task,
        config.max_episode_steps,
    )
    # runs written before 2026-11-27 recorded only the fingerprint of the data trained on (checked in _prepare)
    if "training_fingerprint" in saved["dataset"] and source.dataset.fingerprint() != saved["dataset"]["fingerprint"]:
        raise CheckpointError(
            f"the dataset {source.path} differs from the one this run trained on (fingerprint "
            f"{saved['dataset']['fingerprint'][:12]}...); resume needs the same data"
        )
    expert = None
    if saved.get("expert_dataset"):
        recorded = saved["expert_dataset"]
        config = dataclasses.replace(
            config, expert_dataset=recorded["name"] if recorded["builtin"] else recorded["path"]
        )
        expert = _expert_source(config, algo)
        if expert.dataset.fingerprint() != recorded["fingerprint"]:
            raise CheckpointError(
                f"the expert demonstrations {expert.path} differ from the ones this run trained on (fingerprint "
                f"{recorded['fingerprint'][:12]}...); resume needs the same data"
            )
    return RunInputs(config, algo, algo_config, source, expert)


@dataclass
class PreparedRun:
    """One run ready to train: its device data, agent and sampling key at ``step``, and what its files record."""

    inputs: RunInputs
    run_dir: Path
    task: Task | None
    transforms: Transforms
    arrays: dict[str, np.ndarray]  # the training columns as the algorithm sees them (host)
    agent: Any
    sample_key: jax.Array
    step: int
    resumed: bool
    metadata: dict[str, Any]
    behaviour: float | None
    clock: RunClock  # the run's time over all its invocations (a resumed run's starts from its checkpoint's)

    def write_config(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", self.metadata)


def prepare_run(
    inputs: RunInputs,
    run_dir: Path,
    resume_checkpoint: Path | None,
    extra_metadata: dict[str, Any] | None = None,
    write: bool = True,
    started: float | None = None,
) -> PreparedRun:
    """Build the training data (corruption, demonstrations, transforms, derived columns), the agent (new or from
    ``resume_checkpoint``) and the run's metadata, and write ``config.json`` (``write``; else ``write_config``
    does, once the caller's own checks passed)."""
    config, algo, algo_config, source, expert = (
        inputs.config,
        inputs.algo,
        inputs.algo_config,
        inputs.source,
        inputs.expert,
    )
    dataset = source.dataset
    if config.corruption:  # the same rows and noise on every run with this corruption and seed (resume included)
        dataset = corrupt(dataset, Corruption.parse(config.corruption, config.corruption_seed))
    if expert is not None:  # after any corruption: the demonstrations stay clean
        dataset = with_expert_demonstrations(dataset, expert.dataset, config.expert_episodes)
    task = dataset_task(dataset, config.task)
    if task is not None:
        check_against_spaces(dataset, *task.spaces())
    if dataset.discrete and not algo.supports_discrete:
        raise ValueError(f"{algo.name} needs continuous actions; this dataset's actions are discrete")
    if not dataset.discrete and not algo.supports_continuous:
        raise ValueError(f"{algo.name} needs discrete actions; this dataset's actions are continuous")
    transforms = Transforms.fit(
        dataset,
        normalize_observations=algo_config.normalize_observations,
        reward_scaling=algo_config.reward_scaling,
    )
    spec = spec_for(dataset)
    arrays = transforms.apply(dataset)
    if dataset.discrete:
        arrays["actions"] = dataset.actions.astype(np.int32)
    for name in algo.extra_columns:  # e.g. Cal-QL's Monte-Carlo returns, on the rewards the algorithm sees
        arrays[name] = derived_column(name, dataset, arrays, getattr(algo_config, "discount", 0.99))

    init_key, sample_key = jax.random.split(jax.random.PRNGKey(config.seed))
    agent = algo.init(init_key, spec, algo_config)
    step = 0
    metadata = {
        "offrl_version": offrl.__version__,
        "runtime": runtime_info(),
        "algo": algo.name,
        "train": dataclasses.asdict(config),
        "algo_config": dataclasses.asdict(algo_config),
        "spec": spec.to_json(),
        "transforms": transforms.to_json(),
        "task": task.name if task else None,
        "dataset": {
            "name": source.name,
            "path": source.path,
            "sha256": source.sha256,
            "fingerprint": source.dataset.fingerprint(),  # the data as loaded (resume checks it)
            "training_fingerprint": dataset.fingerprint(),  # after corruption and expert demonstrations, if any
            "corruption": dataset.metadata.get("corruption"),
            "transitions": dataset.size,
            "episodes": dataset.num_episodes,
            "builtin": source.builtin,
        },
        **(extra_metadata or {}),
    }
    if expert is not None:
        metadata["expert_dataset"] = {
            "name": expert.name,
            "path": expert.path,
            "sha256": expert.sha256,
            "fingerprint": expert.dataset.fingerprint(),
            "builtin": expert.builtin,
            "episodes_used": int(dataset.metadata["expert_episodes"]),
            "transitions_used": int(dataset.metadata["expert_rows"]),
        }
    if resume_checkpoint is not None:
        saved_data = read_run_config(run_dir)["dataset"]
        recorded = saved_data.get("training_fingerprint", saved_data["fingerprint"])
        if recorded != metadata["dataset"]["training_fingerprint"]:
            raise CheckpointError(
                f"the training data rebuilt for {run_dir} (after corruption / demonstrations) differs from what the "
                f"run trained on (fingerprint {recorded[:12]}...); resume needs the same data"
            )
        state, saved = load_checkpoint(resume_checkpoint, {"agent": agent, "sample_key": sample_key, "step": 0})
        agent, sample_key, step = state["agent"], state["sample_key"], int(state["step"])
        metadata = keep_first_runtime(metadata, run_dir)
    clock = RunClock.resumed(saved, step) if resume_checkpoint is not None else RunClock()
    if started is not None:  # the invocation's start (``time.perf_counter()``), before the data was prepared
        clock.began = started
    # the behaviour policy's score: the clean data's returns (corrupted rewards say nothing of how it acted), without
    # the demonstrations
    behaviour = behaviour_score(source.dataset, task)
    run = PreparedRun(
        inputs,
        run_dir,
        task,
        transforms,
        arrays,
        agent,
        sample_key,
        step,
        resume_checkpoint is not None,
        metadata,
        behaviour,
        clock,
    )
    if write:
        run.write_config()
    return run


class RunFiles:
    """The host side of a run while it trains: metric records (averaged over each log interval), evaluations,
    checkpoints and the summary. The update loop (one run, or a vmapped group) only hands it chunk results."""

    def __init__(self, run: PreparedRun, loggers: list[Logger] | None):
        self.run = run
        self.config = run.inputs.config
        self.sinks = open_sinks(run.run_dir, run.step if run.resumed else None, loggers)
        self.checkpoint_interval = self.config.checkpoint_interval or self.config.eval_interval or self.config.steps
        self.last_eval: EvaluationResult | None = None
        self.last_eval_step = -1
        self.last_checkpoint: Path | None = None
        self._window: dict[str, float] = {}
        self._window_updates, self._window_seconds = 0, 0.0

    def boundaries(self, step: int, end: int) -> list[int]:
        """The steps at which this run must next stop the update loop (log, checkpoint, evaluation, end)."""
        found = [end, _next_multiple(step, self.config.log_interval), _next_multiple(step, self.checkpoint_interval)]
        if self.config.eval_interval:
            found.append(_next_multiple(step, self.config.eval_interval))
        return found

    def non_finite_error(self, step: int, problem: tuple[int, str]) -> NonFiniteLossError:
        offset, metric = problem
        return NonFiniteLossError(
            f"non-finite {metric} at update {step + offset + 1}; training stopped "
            f"({last_good_checkpoint(self.run.run_dir)}). Check the data "
            "(offrl dataset info), lower the learning rates or enable normalisation"
        )

    def after_chunk(
        self,
        step: int,
        k: int,
        metrics: dict[str, float],
        seconds: float,
        end: int,
        state: Callable[[], tuple[Any, Any]],
        compile_seconds: float,
        evaluate_here: bool = True,
    ) -> bool:
        """Record a chunk of ``k`` updates that ended at ``step``; log, evaluate and checkpoint where due.
        ``state()`` gives ``(agent, sample_key)``, asked for only when an evaluation or a checkpoint is due. With
        ``evaluate_here`` false a due evaluation is left to the caller (it gets a checkpoint at this step to
        evaluate, ``last_checkpoint``): the return value says whether one is due."""
        for name, value in metrics.items():
            self._window[name] = self._window.get(name, 0.0) + value * k
        self._window_updates += k
        self._window_seconds += seconds
        self.run.clock.add_updates(k, seconds)
        if step % self.config.log_interval == 0 or step == end:
            record = {name: total / self._window_updates for name, total in self._window.items()}
            seconds_total = self._window_seconds
            record["time/updates_per_second"] = self._window_updates / seconds_total if seconds_total else 0.0
            record["time/compile_seconds"] = compile_seconds
            for sink in self.sinks:
                sink.log(step, record, "train")
            self._window, self._window_updates, self._window_seconds = {}, 0, 0.0
        evaluate = bool(
            self.run.task is not None and self.config.eval_interval and step % self.config.eval_interval == 0
        )
        checkpoint = step % self.checkpoint_interval == 0 or step == end or (evaluate and not evaluate_here)
        if (evaluate and evaluate_here) or checkpoint:
            agent, sample_key = state()
            if evaluate and evaluate_here:
                self.evaluate(step, agent)
            if checkpoint:
                self.save(step, agent, sample_key)
        return evaluate and not evaluate_here

    def save(self, step: int, agent: Any, sample_key: Any) -> None:
        self.last_checkpoint = save_checkpoint(
            self.run.run_dir / "checkpoints",
            step,
            {"agent": agent, "sample_key": sample_key, "step": step},
            {**self.run.metadata, "clock": self.run.clock.to_json()},
            keep_last=self.config.keep_checkpoints,
        )

    @property
    def evaluation_seed(self) -> int:
        return 10_000 + self.config.seed * 1000

    def evaluate(self, step: int, agent: Any) -> EvaluationResult:
        task = self.run.task
        assert task is not None
        algo, transforms = self.run.inputs.algo, self.run.transforms
        result = evaluate_agent(algo, agent, transforms, task, self.config.eval_episodes, self.evaluation_seed)
        self.record_evaluation(step, result)
        return result

    def record_evaluation(self, step: int, result: EvaluationResult) -> None:
        for sink in self.sinks:
            sink.log(step, result.summary(), "eval")
        self.last_eval, self.last_eval_step = result, step

    def evaluation_missing(self, step: int) -> bool:
        """Whether a resumed run starts on an evaluation step whose evaluation was never recorded (a group that
        evaluates in worker processes checkpoints first, so it can stop in between)."""
        config = self.config
        if not self.run.resumed or self.run.task is None or not config.eval_interval or step % config.eval_interval:
            return False
        path = self.run.run_dir / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        return not any(row.get("kind") == "eval" and row.get("step") == step for row in rows)

    def needs_final_evaluation(self, step: int) -> bool:
        config = self.config
        return self.run.task is not None and (
            self.last_eval is None or not config.eval_interval or step % config.eval_interval != 0
        )

    def finish(self, step: int, agent: Any) -> None:
        """The final evaluation (unless the last chunk ended on one)."""
        if self.needs_final_evaluation(step):
            self.evaluate(step, agent)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def write_summary(self, step: int, agent: Any, compile_seconds: float) -> RunResult:
        """``summary.json``: the final evaluation, and the run's updates/s and wall time over all its invocations
        (``RunClock``; compile time apart, of this invocation)."""
        clock = self.run.clock
        summary = {
            "step": step,
            "compile_seconds": compile_seconds,
            "behaviour_normalized_score": self.run.behaviour,
            **({k: v for k, v in self.last_eval.summary().items()} if self.last_eval else {}),
            "task": self.run.task.name if self.run.task else None,
            **clock.summary(),
        }
        atomic_write_json(self.run.run_dir / "summary.json", summary)
        return RunResult(
            self.run.run_dir, step, agent, self.last_eval, self.run.behaviour, clock.updates_per_second, compile_seconds
        )


def _execute(
    inputs: RunInputs,
    run_dir: Path,
    *,
    resume_checkpoint: Path | None,
    loggers: list[Logger] | None,
    stop_after: int | None,
) -> RunResult:
    run = prepare_run(inputs, run_dir, resume_checkpoint, started=time.perf_counter())
    config, algo = inputs.config, inputs.algo
    data = jax.device_put(run.arrays)
    agent, sample_key, step = run.agent, run.sample_key, run.step
    files = RunFiles(run, loggers)
    bar = ProgressBar(config.steps, step, config.progress, f"{algo.name} {inputs.source.name}")
    update = training_update(algo, inputs.algo_config, run.arrays)
    loop = UpdateLoop(update, config.batch_size)
    names = metric_names(update, agent, data, config.batch_size)
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    try:
        while step < end:
            k = min(config.updates_per_call, min(files.boundaries(step, end)) - step)
            agent, sample_key, chunk = loop.run(agent, sample_key, data, k, names)
            if chunk.non_finite is not None:
                raise files.non_finite_error(step, chunk.non_finite)
            step += k
            bar.advance(k, chunk.metrics, k / chunk.seconds if chunk.seconds > 0 else 0.0)
            files.after_chunk(
                step, k, chunk.metrics, chunk.seconds, end, lambda a=agent, s=sample_key: (a, s), loop.compile_seconds
            )
            if files.last_eval is not None and files.last_eval_step == step:
                bar.evaluation(files.last_eval.normalized_mean)
        files.finish(step, agent)
    finally:
        bar.close()
        files.close()
    return files.write_summary(step, agent, loop.compile_seconds)


def _next_multiple(step: int, interval: int) -> int:
    return (step // interval + 1) * interval if interval > 0 else step + 1_000_000_000


# ---------------------------------------------------------------------------------------------------------------
# Loading a trained policy


@dataclass
class LoadedPolicy:
    """A trained policy restored from a checkpoint: call it on a batch of raw observations."""

    algo: Algorithm
    agent: Any
    transforms: Transforms
    metadata: dict[str, Any]

    def __post_init__(self) -> None:
        self._policy = make_policy(self.algo, self.transforms)
        self._key = jax.random.PRNGKey(0)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions (the policy's mean or most likely action)."""
        return np.asarray(self._policy(self.agent, np.asarray(observations, np.float32), self._key))

    def sampler(self, seed: int = 0):
        """A stochastic version: each call samples actions from the policy's distribution with a fresh key."""
        policy = make_policy(self.algo, self.transforms, deterministic=False)
        state = {"key": jax.random.PRNGKey(seed)}

        def sample(observations: np.ndarray) -> np.ndarray:
            state["key"], key = jax.random.split(state["key"])
            return np.asarray(policy(self.agent, np.asarray(observations, np.float32), key))

        return sample

    @property
    def task(self) -> Task | None:
        return find_task(self.metadata.get("task"))

    def check_fits(self, task: Task) -> None:
        """Raise a clear error when the policy cannot act in ``task`` (other observation or action space)."""
        spec = Spec.from_json(self.metadata["spec"])
        obs_shape, space = task.spaces()
        action_dim = space.n if space.discrete else int(np.prod(space.shape))
        problems = []
        name, mine, theirs = task.name, tuple(spec.observation_shape), tuple(obs_shape)
        if mine != theirs:
            problems.append(f"observations of shape {mine}, {name} has {theirs}")
        if spec.discrete != space.discrete or spec.action_dim != action_dim:
            kind = lambda d, n: f"{n} discrete actions" if d else f"{n}-dimensional continuous actions"  # noqa: E731
            problems.append(f"{kind(spec.discrete, spec.action_dim)}, {name} has {kind(space.discrete, action_dim)}")
        if problems:
            raise ValueError(f"this policy (trained on {self.metadata.get('task')}) takes " + "; ".join(problems))

    def check_data(self, dataset: Dataset) -> None:
        """Raise a clear error when ``dataset``'s observations or actions are not the policy's (off-policy
        evaluation of this policy on that data would be meaningless)."""
        check_spec_fits_data(
            Spec.from_json(self.metadata["spec"]), dataset, f"this policy ({self.metadata.get('task')})"
        )


def check_spec_fits_data(spec: Spec, dataset: Dataset, what: str) -> None:
    """Raise a clear error, naming ``what``, when ``dataset`` has other observation or action shapes than ``spec``."""
    theirs = spec_for(dataset)
    problems = []
    if tuple(spec.observation_shape) != tuple(theirs.observation_shape):
        problems.append(
            f"observations of shape {tuple(spec.observation_shape)}, the data has {tuple(theirs.observation_shape)}"
        )
    if (spec.discrete, spec.action_dim) != (theirs.discrete, theirs.action_dim):
        kind = lambda d, n: f"{n} discrete actions" if d else f"{n}-dimensional continuous actions"  # noqa: E731
        problems.append(
            f"{kind(spec.discrete, spec.action_dim)}, the data has {kind(theirs.discrete, theirs.action_dim)}"
        )
    if problems:
        raise ValueError(f"{what} takes " + "; ".join(problems))


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load a checkpoint file, or the newest checkpoint of a run directory."""
    path = Path(path)
    if path.is_dir():
        candidates = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
        if not candidates:
            raise CheckpointError(f"no checkpoint found in {path}")
        path = candidates[-1]
    elif path.suffix == ".json" and path.with_suffix(".msgpack").exists():
        raise CheckpointError(f"{path} is a checkpoint's JSON sidecar: give {path.with_suffix('.msgpack')}")
    elif path.exists() and path.suffix != ".msgpack":
        raise CheckpointError(f"{path} is not an offrl checkpoint (step_N.msgpack) or run directory")
    meta = read_metadata(path)
    algo = get_algorithm(meta["algo"])
    algo_config = _config_from_json(algo.config_class, meta["algo_config"])
    spec = Spec.from_json(meta["spec"])
    template_agent = algo.init(jax.random.PRNGKey(0), spec, algo_config)
    agent, meta = load_checkpoint(path, template_agent, part="agent")  # offline and online runs alike
    return LoadedPolicy(algo, agent, Transforms.from_json(meta["transforms"]), meta)


__all__ = [
    "LoadedPolicy",
    "NonFiniteLossError",
    "RunResult",
    "TrainConfig",
    "load_policy",
    "resume",
    "train",
]
