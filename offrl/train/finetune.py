"""Offline-to-online runs: learn from the dataset, then keep learning while acting in the environment.

One run, one directory, one checkpoint format. The **offline phase** is the offline trainer's loop
(``offline_steps`` updates, K per jitted call). At the **switch** the policy is evaluated (the score fine-tuning
starts from), and the **online phase** steps the environment ``online_steps`` times; each step's transitions go
into a device replay buffer and ``updates_per_step`` updates run in the same jitted call, on batches that mix the
offline data and the online buffer (``offrl.train.mixing``):

- ``mixing="ratio"``: a fixed offline share per batch (``offline_fraction``, RLPD's symmetric sampling is 0.5), or
  one annealed linearly to ``final_offline_fraction`` over ``anneal_steps`` online steps;
- ``mixing="buffer"``: the offline data is copied into the online buffer at the switch and batches are drawn from
  the buffer alone (CORL's fine-tuning scripts do this).

Online transitions are stored as the algorithm sees the offline data: observations normalised and rewards scaled
with the offline run's transforms, actions in [-1, 1]; termination vs truncation as everywhere in offrl. The
checkpoint holds the agent, the buffer, both RNG keys and the counters of both phases, and (as in online runs) a
checkpoint during the online phase cuts the running episodes, so a run resumed from any checkpoint, before or after
the switch, continues exactly as the uninterrupted run (tested). Evaluations are logged against a global step
(offline updates, then offline_steps + environment steps); the summary has the fine-tuning metrics
(``offrl.train.finetune_metrics``: score at the switch, dip, final, regret).

Algorithms that read derived columns get them for online transitions too (``offrl.train.online_columns``:
Cal-QL's Monte-Carlo returns, written when an episode ends; ReBRAC's next actions, written when chosen); ReCOIL's
expert flags have no online meaning and are refused.

With ``prefix_fraction`` > 0 a share of the online episodes starts from states along the best logged episodes
(``offrl.envs.start_states``: PrefixRL's reset-to-prefix idea; needs the simulator state, ``infos/qpos`` and
``infos/qvel``, in the data); evaluation episodes always start normally.

What changes at the switch is the algorithm's own business, in its file (``Algorithm.configure_for_finetuning``
and ``Algorithm.online_config``, applied by ``offrl.algos.base.finetuning_configs``): IQL and its family fine-tune
without their learning-rate decay (the official fine-tuning config), CQL and Cal-QL can use another conservative
weight online (``cql_alpha_online``). The online config may change what the update computes but not the shapes of
the state, so one checkpoint format spans both phases; both configs are in ``config.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import offrl
from offrl.algos import get_algorithm
from offrl.algos.base import Algorithm, finetuning_configs, training_update
from offrl.data.columns import derived_column
from offrl.data.dataset import check_against_spaces
from offrl.data.transforms import Transforms
from offrl.envs.evaluation import EvaluationResult
from offrl.envs.registry import get_task
from offrl.envs.start_states import PrefixStarts
from offrl.train import replay
from offrl.train.checkpoint import atomic_write_json, checkpoint_step, load_checkpoint, save_checkpoint
from offrl.train.engine import UpdateLoop, metric_names
from offrl.train.finetune_metrics import fine_tuning_summary
from offrl.train.loggers import Logger, ProgressBar
from offrl.train.mixing import MIXED_COLUMNS, MixSchedule, mixed_updates, seed_buffer
from offrl.train.offline import (
    DataSource,
    NonFiniteLossError,
    _config_from_json,
    _next_multiple,
    algorithm_and_config,
    check_new_run_dir,
    check_resume_target,
    dataset_task,
    evaluate_agent,
    last_good_checkpoint,
    newest_checkpoint,
    open_sinks,
    read_run_config,
    resolve_dataset,
    run_directory,
    spec_for,
)
from offrl.train.online import Environments, StepFunctions, choose_actions
from offrl.train.online_columns import (
    EpisodeReturns,
    check_supported,
    extra_shapes,
    reset_next_actions,
    with_placeholders,
    write_next_actions,
)
from offrl.train.runtime import RunClock, keep_first_runtime, runtime_info

MIXING = ("ratio", "buffer")


@dataclass(frozen=True)
class FinetuneConfig:
    """How to run offline-to-online training (what to learn is the algorithm's config)."""

    algo: str = dataclasses.field(default="iql", metadata={"help": "algorithm"})
    dataset: str = dataclasses.field(default="pendulum-mixed", metadata={"help": "dataset file or built-in name"})
    task: str = dataclasses.field(default="", metadata={"help": "environment task; default: the dataset's own"})
    online_task: str = dataclasses.field(
        default="",
        metadata={"help": "environment the online phase steps, e.g. a simulator with a dynamics gap; default: task"},
    )
    offline_steps: int = dataclasses.field(default=20_000, metadata={"help": "updates on the dataset first"})
    online_steps: int = dataclasses.field(default=20_000, metadata={"help": "environment steps after the switch"})
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed"})
    batch_size: int = dataclasses.field(default=256, metadata={"help": "transitions per update"})
    updates_per_call: int = dataclasses.field(default=1000, metadata={"help": "offline updates per jitted call"})
    updates_per_step: int = dataclasses.field(default=1, metadata={"help": "online updates per environment step"})
    warmup_steps: int = dataclasses.field(
        default=0, metadata={"help": "first online steps: uniform random actions, no updates (RLPD: 5000)"}
    )
    num_envs: int = dataclasses.field(default=1, metadata={"help": "environments stepped together online"})
    mixing: str = dataclasses.field(
        default="ratio", metadata={"help": "ratio (offline share per batch) | buffer (offline data copied in)"}
    )
    offline_fraction: float = dataclasses.field(default=0.5, metadata={"help": "offline share of online batches"})
    final_offline_fraction: float = dataclasses.field(
        default=-1.0, metadata={"help": "share reached after anneal_steps; -1 = offline_fraction (fixed)"}
    )
    anneal_steps: int = dataclasses.field(default=0, metadata={"help": "online steps of the linear anneal"})
    prefix_fraction: float = dataclasses.field(
        default=0.0,
        metadata={"help": "share of online episodes started from states of the best logged episodes (PrefixRL)"},
    )
    prefix_top: float = dataclasses.field(default=0.1, metadata={"help": "share of logged episodes counted as best"})
    buffer_size: int = dataclasses.field(
        default=0, metadata={"help": "online replay capacity; 0 = online_steps (+ the dataset with mixing=buffer)"}
    )
    log_interval: int = dataclasses.field(default=1000, metadata={"help": "updates / env steps between records"})
    eval_interval: int = dataclasses.field(default=5000, metadata={"help": "updates / env steps between evaluations"})
    eval_episodes: int = dataclasses.field(default=10, metadata={"help": "episodes per evaluation"})
    checkpoint_interval: int = dataclasses.field(default=0, metadata={"help": "0 = at every evaluation"})
    keep_checkpoints: int = dataclasses.field(default=2, metadata={"help": "newest checkpoints kept"})
    output_dir: str = dataclasses.field(default="runs", metadata={"help": "parent folder of run directories"})
    run_name: str = dataclasses.field(default="", metadata={"help": "run directory name"})
    progress: bool = dataclasses.field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        for name in ("batch_size", "updates_per_call", "num_envs", "log_interval", "eval_interval", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "offline_steps",
            "online_steps",
            "updates_per_step",
            "warmup_steps",
            "anneal_steps",
            "buffer_size",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.mixing not in MIXING:
            raise ValueError(f"mixing must be one of {', '.join(MIXING)}, got {self.mixing!r}")
        self.schedule()  # validates the fractions
        if not 0.0 <= self.prefix_fraction <= 1.0 or not 0.0 < self.prefix_top <= 1.0:
            raise ValueError("prefix_fraction must be in [0, 1] and prefix_top in (0, 1]")
        for name in ("online_steps", "log_interval", "eval_interval", "checkpoint_interval"):
            if getattr(self, name) % self.num_envs:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of num_envs ({self.num_envs})")

    def schedule(self) -> MixSchedule:
        end = self.offline_fraction if self.final_offline_fraction < 0 else self.final_offline_fraction
        return MixSchedule(self.offline_fraction, end, self.anneal_steps)


@dataclass
class FinetuneResult:
    run_dir: Path
    agent: Any
    final_evaluation: EvaluationResult
    summary: dict[str, Any]
    buffer: replay.ReplayBuffer  # the online replay (normalised rows, as the algorithm sees them)


# ---------------------------------------------------------------------------------------------------------------


def make_online_step(algo: Algorithm, update, config: FinetuneConfig):
    """The online phase's device work per environment step: add the (normalised) transitions, run the updates on
    mixed batches and choose the next exploration actions, then (for algorithms that store them) write the chosen
    actions as the new rows' next actions. The writes and the updates are separate jitted calls
    (:class:`offrl.train.online.StepFunctions` says why)."""
    schedule = config.schedule()

    def learn(agent, buffer, key, data, next_obs, online_step, num_updates: int, uniform: bool):
        metrics: dict[str, jax.Array] = {}
        if num_updates:
            fraction = schedule.fraction(online_step)
            agent, key, metrics = mixed_updates(
                update, agent, key, data, buffer, config.batch_size, fraction, num_updates, config.mixing == "buffer"
            )
        key, actions = choose_actions(algo, agent, key, next_obs, uniform)  # uniform: warm-up
        return agent, key, actions, metrics

    steps = StepFunctions.around(learn, static_argnums=(6, 7))

    @functools.partial(jax.jit, donate_argnums=0)
    def write(buffer, rows, actions):  # the rows just added end at the buffer's position
        start = (buffer.position - rows["rewards"].shape[0]) % buffer.capacity
        return write_next_actions(buffer, start, rows, actions)

    def step(agent, buffer, key, data, rows, next_obs, online_step, num_updates: int, uniform: bool):
        agent, buffer, key, actions, metrics = steps(
            agent, buffer, key, rows, data, next_obs, online_step, num_updates, uniform
        )
        if "next_actions" in buffer.data:
            buffer = write(buffer, rows, actions)
        return agent, buffer, key, actions, metrics

    return step


def normalised_rows(rows: dict[str, np.ndarray], transforms: Transforms) -> dict[str, np.ndarray]:
    """Online transitions in the space the algorithm learned in offline."""
    return {
        "observations": transforms.normalize_observations(rows["observations"]).astype(np.float32),
        "actions": np.asarray(rows["actions"], np.float32),
        "rewards": (rows["rewards"] * transforms.reward_scale + transforms.reward_shift).astype(np.float32),
        "terminals": rows["terminals"],
        "timeouts": rows["timeouts"],
        "next_observations": transforms.normalize_observations(rows["next_observations"]).astype(np.float32),
    }


def finetune(
    config: FinetuneConfig,
    algo_config: Any = None,
    *,
    loggers: list[Logger] | None = None,
    stop_after: int | None = None,
) -> FinetuneResult:
    """Start an offline-to-online run. ``stop_after`` (a global step) ends it early with a checkpoint (tests)."""
    algo, algo_config = algorithm_and_config(config.algo, algo_config)
    check_supported(algo.extra_columns, algo.name)
    algo_config, _ = finetuning_configs(algo, algo_config, config.offline_steps, config.online_steps)
    source = resolve_dataset(config.dataset, config.task)
    name = config.run_name or f"{algo.name}-{source.name}-o2o-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = run_directory(config.output_dir, name)
    check_new_run_dir(run_dir, f"continue it with `offrl finetune --resume {run_dir}`")
    return _execute(config, algo, algo_config, source, run_dir, None, loggers, stop_after)


def resume_finetune(
    run_dir: str | Path,
    *,
    loggers: list[Logger] | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
) -> FinetuneResult:
    """Continue the offline-to-online run in ``run_dir`` from its newest checkpoint, in whichever phase."""
    run_dir = Path(run_dir)
    saved = read_run_config(run_dir)
    if saved.get("kind") != "offline-to-online":
        raise ValueError(f"{run_dir} is not an offline-to-online run")
    config = _config_from_json(FinetuneConfig, saved["train"])
    if progress is not None:
        config = dataclasses.replace(config, progress=progress)
    algo = get_algorithm(config.algo)
    algo_config = _config_from_json(algo.config_class, saved["algo_config"])
    source = resolve_dataset(saved["dataset"]["path"] if not saved["dataset"]["builtin"] else config.dataset)
    if source.dataset.fingerprint() != saved["dataset"]["fingerprint"]:
        raise ValueError(f"the dataset {source.path} differs from the one this run trained on; resume needs it")
    checkpoint = newest_checkpoint(run_dir)
    check_resume_target(run_dir, checkpoint_step(checkpoint), config.offline_steps + config.online_steps)
    return _execute(config, algo, algo_config, source, run_dir, checkpoint, loggers, stop_after)


def _execute(
    config: FinetuneConfig,
    algo: Algorithm,
    algo_config: Any,
    source: DataSource,
    run_dir: Path,
    resume_checkpoint: Path | None,
    loggers: list[Logger] | None,
    stop_after: int | None,
) -> FinetuneResult:
    clock = RunClock()  # of a resumed run: from its checkpoint's below
    dataset = source.dataset
    task = dataset_task(dataset, config.task)
    if task is None:
        raise ValueError(f"{source.name} names no environment: give --task for the online phase")
    check_against_spaces(dataset, *task.spaces())
    online_task = get_task(config.online_task) if config.online_task else task
    if online_task.spaces() != task.spaces():
        raise ValueError(f"the online task {online_task.name} has other spaces than the evaluation task {task.name}")
    if dataset.discrete:
        raise ValueError("offline-to-online runs are for continuous actions")
    starts = (  # checked before anything is written: the online phase may come hours later
        PrefixStarts.from_dataset(dataset, config.prefix_fraction, config.prefix_top)
        if config.prefix_fraction > 0
        else None
    )
    transforms = Transforms.fit(
        dataset, normalize_observations=algo_config.normalize_observations, reward_scaling=algo_config.reward_scaling
    )
    spec = spec_for(dataset)
    arrays = transforms.apply(dataset)
    columns = algo.extra_columns
    check_supported(columns, algo.name)
    discount = getattr(algo_config, "discount", 0.99)
    for name in columns:  # e.g. Cal-QL's Monte-Carlo returns, on the rewards the algorithm sees
        arrays[name] = derived_column(name, dataset, arrays, discount)
    data = jax.device_put(arrays)
    offline_rows = {name: data[name] for name in (*MIXED_COLUMNS, *columns)}
    capacity = config.buffer_size or (config.online_steps + (dataset.size if config.mixing == "buffer" else 0))
    capacity = max(capacity, 1)
    extra = extra_shapes(columns, spec.action_dim)
    replay.check_fits(capacity, spec.observation_shape, spec.action_dim, extra=extra)
    update = training_update(algo, algo_config, arrays)
    online_algo_config = algo.online_config(algo_config)
    online_update = training_update(algo, online_algo_config, arrays) if online_algo_config != algo_config else update

    init_key, sample_key, online_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    state = {
        "agent": algo.init(init_key, spec, algo_config),
        "buffer": replay.create(capacity, spec.observation_shape, spec.action_dim, extra),
        "sample_key": sample_key,
        "key": online_key,
        "offline_step": 0,
        "online_step": 0,
        "episodes_started": 0,
    }
    metadata = {
        "kind": "offline-to-online",
        "offrl_version": offrl.__version__,
        "runtime": runtime_info(),
        "algo": algo.name,
        "train": dataclasses.asdict(config),
        "algo_config": dataclasses.asdict(algo_config),
        "online_algo_config": dataclasses.asdict(online_algo_config),
        "spec": spec.to_json(),
        "transforms": transforms.to_json(),
        "task": task.name,
        "online_task": online_task.name,
        "dataset": {
            "name": source.name,
            "path": source.path,
            "sha256": source.sha256,
            "fingerprint": dataset.fingerprint(),
            "transitions": dataset.size,
            "builtin": source.builtin,
        },
        "buffer_capacity": capacity,
    }
    if resume_checkpoint is not None:
        state, saved = load_checkpoint(resume_checkpoint, state)
        metadata = keep_first_runtime(metadata, run_dir)
        began = clock.began
        clock = RunClock.resumed(saved, int(state["offline_step"]) + int(state["online_step"]))
        clock.began = began
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", metadata)
    agent, buffer, sample_key, key = state["agent"], state["buffer"], state["sample_key"], state["key"]
    offline_step, online_step = int(state["offline_step"]), int(state["online_step"])
    episodes_started = int(state["episodes_started"])
    total = config.offline_steps + config.online_steps
    end = min(total, stop_after) if stop_after is not None else total
    checkpoint_interval = config.checkpoint_interval or config.eval_interval
    curve_on_disk = _read_curve(run_dir) if resume_checkpoint is not None else []  # before the logs are truncated
    sinks = open_sinks(run_dir, offline_step + online_step if resume_checkpoint is not None else None, loggers)
    bar = ProgressBar(total, offline_step + online_step, config.progress, f"{algo.name} {source.name} o2o")
    resumed_at = offline_step + online_step
    curve = [(s, v) for s, v in curve_on_disk if s <= resumed_at]
    train_scores: list[float] = _read_train_scores(run_dir, resumed_at) if resume_checkpoint is not None else []
    last_eval: EvaluationResult | None = None

    def save(at: int) -> None:
        save_checkpoint(
            run_dir / "checkpoints",
            at,
            {
                "agent": agent,
                "buffer": buffer,
                "sample_key": sample_key,
                "key": key,
                "offline_step": offline_step,
                "online_step": online_step,
                "episodes_started": episodes_started,
            },
            {**metadata, "clock": clock.to_json()},
            keep_last=config.keep_checkpoints,
        )
        # the online training episodes' scores so far (for the regret), per checkpoint step
        scores_file = run_dir / "train_episode_scores.json"
        saved_scores = json.loads(scores_file.read_text()) if scores_file.exists() else {}
        saved_scores = {k: v for k, v in saved_scores.items() if int(k) < at}
        atomic_write_json(scores_file, {**saved_scores, str(at): list(train_scores)})

    def run_evaluation(at: int, phase: str) -> EvaluationResult:
        result = evaluate_agent(algo, agent, transforms, task, config.eval_episodes, seed=10_000 + config.seed * 1000)
        for sink in sinks:
            sink.log(at, {**result.summary(), "phase/online": float(phase == "online")}, "eval")
        bar.evaluation(result.normalized_mean)
        curve.append((at, result.normalized_mean))
        return result

    try:
        # 1. Offline phase.
        loop = UpdateLoop(update, config.batch_size)
        names = metric_names(update, agent, data, config.batch_size)
        offline_end = min(config.offline_steps, end)
        while offline_step < offline_end:
            boundaries = [
                offline_end,
                _next_multiple(offline_step, config.log_interval),
                _next_multiple(offline_step, config.eval_interval),
            ]
            boundaries.append(_next_multiple(offline_step, checkpoint_interval))
            k = min(config.updates_per_call, min(boundaries) - offline_step)
            agent, sample_key, chunk = loop.run(agent, sample_key, data, k, names)
            clock.add_updates(k, chunk.seconds)
            if chunk.non_finite is not None:
                offset, metric = chunk.non_finite
                raise NonFiniteLossError(
                    f"non-finite {metric} at offline update {offline_step + offset + 1} "
                    f"({last_good_checkpoint(run_dir)})"
                )
            offline_step += k
            bar.advance(k, chunk.metrics, k / chunk.seconds if chunk.seconds > 0 else 0.0)
            if offline_step % config.log_interval == 0 or offline_step == offline_end:
                for sink in sinks:
                    sink.log(offline_step, {**chunk.metrics, "phase/online": 0.0}, "train")
            at_switch = offline_step == config.offline_steps
            if offline_step % config.eval_interval == 0 or at_switch:
                last_eval = run_evaluation(offline_step, "offline")
            if offline_step % checkpoint_interval == 0 or offline_step == offline_end:
                save(offline_step)

        # 2. Online phase.
        if offline_step == config.offline_steps and offline_step + online_step < end:
            if all(step != config.offline_steps for step, _ in curve):  # not evaluated yet (nor before a resume)
                last_eval = run_evaluation(config.offline_steps, "offline")  # the score at the switch
            if config.mixing == "buffer" and online_step == 0 and int(buffer.size) == 0:
                buffer = seed_buffer(buffer, {**offline_rows, "timeouts": _episode_cuts(dataset)})
            agent = agent.replace(config=online_algo_config)  # the algorithm's online setting (static: no arrays)
            step_fn = make_online_step(algo, online_update, config)
            compiled: set[tuple[int, bool]] = set()  # the step function's variants called so far
            cut = jax.jit(replay.cut_episodes, static_argnums=1, donate_argnums=0)
            end_next_actions = jax.jit(reset_next_actions, static_argnums=1, donate_argnums=0)
            returns = EpisodeReturns(config.num_envs, discount, capacity) if "mc_returns" in columns else None
            position = int(buffer.position)
            envs = Environments(online_task, config.num_envs, config.seed, episodes_started, starts)
            n = config.num_envs
            try:
                envs.reset_all()
                key, actions = choose_actions(
                    algo,
                    agent,
                    key,
                    jnp.asarray(transforms.normalize_observations(envs.observations())),
                    online_step < config.warmup_steps,
                )
                window: dict[str, float] = {}
                window_calls, episodes = 0, []
                window_start, window_steps = time.perf_counter(), 0
                while config.offline_steps + online_step < end:
                    raw, finished = envs.step(np.asarray(transforms.denormalize_actions(np.asarray(actions))))
                    raw["actions"] = np.asarray(actions, np.float32)
                    rows = with_placeholders(normalised_rows(raw, transforms), columns)
                    online_step += n
                    window_steps += n
                    episodes += finished
                    train_scores += [  # regret over normal starts only (not episodes begun at logged states)
                        float(task.normalized_score(r))
                        for (r, _), logged in zip(finished, envs.finished_from_log, strict=True)
                        if not logged
                    ]
                    next_obs = jnp.asarray(transforms.normalize_observations(envs.observations()))
                    updates = config.updates_per_step * n if online_step > config.warmup_steps else 0
                    uniform = online_step < config.warmup_steps  # the next step's actions
                    called = time.perf_counter()
                    compiling = (updates, uniform) not in compiled  # that call compiles: not update time
                    compiled.add((updates, uniform))
                    agent, buffer, key, actions, metrics = step_fn(
                        agent, buffer, key, offline_rows, rows, next_obs, online_step, updates, uniform
                    )
                    episodes_started = envs.episodes_started
                    if returns is not None:  # Monte-Carlo returns of the episodes that ended with this step
                        done = (rows["terminals"] + rows["timeouts"]) > 0
                        buffer = returns.write(buffer, returns.record(position, rows["rewards"], done))
                    position = (position + n) % capacity
                    at = config.offline_steps + online_step
                    if metrics:
                        values = jax.device_get(metrics)  # waits for the step's updates
                        seconds = 0.0 if compiling else time.perf_counter() - called  # with the actions chosen there
                        clock.add_updates(updates, seconds)
                        for name, value in values.items():
                            if not np.isfinite(value):
                                raise NonFiniteLossError(
                                    f"non-finite {name} at online step {online_step} ({last_good_checkpoint(run_dir)})"
                                )
                            window[name] = window.get(name, 0.0) + float(value)
                        window_calls += 1
                    bar.advance(n, {}, 0.0)
                    if online_step % config.log_interval == 0 or at == end:
                        record = {k: v / window_calls for k, v in window.items()} if window_calls else {}
                        if episodes:
                            record["train/episode_return"] = float(np.mean([r for r, _ in episodes]))
                        record["phase/online"] = 1.0
                        record["time/env_steps_per_second"] = window_steps / (time.perf_counter() - window_start)
                        for sink in sinks:
                            sink.log(at, record, "train")
                        window, window_calls, episodes = {}, 0, []
                        window_start, window_steps = time.perf_counter(), 0
                    if online_step % config.eval_interval == 0 or at == total:
                        last_eval = run_evaluation(at, "online")
                    if online_step % checkpoint_interval == 0 or at == end:
                        buffer = cut(buffer, n)  # running episodes end here (as timeouts), as in online runs
                        if returns is not None:
                            buffer = returns.write(buffer, returns.close_all())
                        if "next_actions" in columns:
                            buffer = end_next_actions(buffer, n)
                        save(at)
                        envs.reset_all()
                        episodes_started = envs.episodes_started
                        key, actions = choose_actions(
                            algo,
                            agent,
                            key,
                            jnp.asarray(transforms.normalize_observations(envs.observations())),
                            online_step < config.warmup_steps,
                        )
                    if window_steps == 0:  # evaluation and checkpoint time stays out of the next window's rate
                        window_start = time.perf_counter()
            finally:
                envs.close()
        if last_eval is None:
            last_eval = run_evaluation(offline_step + online_step, "online" if online_step else "offline")
    finally:
        bar.close()
        for sink in sinks:
            sink.close()

    summary: dict[str, Any] = {
        "offline_step": offline_step,
        "online_step": online_step,
        **last_eval.summary(),
        "task": task.name,
        **clock.summary(),  # updates/s and wall time over all the run's invocations
    }
    if (
        online_step
        and any(s <= config.offline_steps for s, _ in curve)
        and any(s > config.offline_steps for s, _ in curve)
    ):
        steps, scores = zip(*sorted(dict(curve).items()), strict=True)
        summary.update(fine_tuning_summary(steps, scores, config.offline_steps, train_scores))
    atomic_write_json(run_dir / "summary.json", summary)
    return FinetuneResult(run_dir, agent, last_eval, summary, buffer)


def _episode_cuts(dataset) -> jax.Array:
    """The dataset's episode ends as timeouts for the buffer (terminals stay terminals)."""
    cuts = np.zeros(dataset.size, np.float32)
    cuts[dataset.episode_ends] = 1.0
    return jnp.asarray(np.where(dataset.terminals, 0.0, cuts), jnp.float32)


def _read_curve(run_dir: Path) -> list[tuple[int, float]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(int(r["step"]), float(r["eval/normalized_score"])) for r in rows if r.get("kind") == "eval"]


def _read_train_scores(run_dir: Path, step: int) -> list[float]:
    """The online training episodes' scores saved with the checkpoint at ``step``."""
    path = run_dir / "train_episode_scores.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    return list(saved.get(str(step), []))
