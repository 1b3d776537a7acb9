"""Online training runs: act in Gymnasium environments, store transitions in a device replay buffer, update.

One host iteration steps every environment once (``num_envs`` environment steps), adds those transitions to the
buffer (a jitted, in-place write), and makes one jitted call that runs ``updates_per_step * num_envs`` updates as a
``lax.scan`` (batches sampled inside) and picks the next actions (:class:`StepFunctions` says why two calls).
Before ``warmup_steps`` environment steps the actions are uniform random and no update runs.

Episodes end exactly as offline: ``terminated`` is stored as a terminal (no bootstrap), ``truncated`` (time limit)
is not, and the stored next observation is the real final one, never the reset observation. Episode ``k`` (counted
over all environments) is reset with seed ``seed * 1_000_003 + k``.

Checkpoints hold the agent, the replay buffer, the RNG key and the step and episode counters. So that a checkpoint
never needs a simulator's internal state, every checkpoint also *cuts* the running episodes: they end there as
truncations (which bootstrap, so the data stay correct) and the next step resets every environment. A run that is
resumed from a checkpoint therefore continues exactly as the uninterrupted run does (same platform).

The run directory has the offline layout: ``config.json``, ``metrics.jsonl``, ``train.csv``, ``eval.csv``,
``checkpoints/``, ``summary.json``; ``offrl evaluate RUN_DIR`` works on it.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import offrl
from offrl.algos import get_algorithm
from offrl.algos.base import Algorithm, Spec
from offrl.data.dataset import Dataset
from offrl.data.transforms import Transforms
from offrl.envs.evaluation import EvaluationResult
from offrl.envs.registry import Task, get_task
from offrl.train import replay
from offrl.train.checkpoint import (
    CheckpointError,
    atomic_write_json,
    checkpoint_step,
    load_checkpoint,
    save_checkpoint,
)
from offrl.train.loggers import Logger, ProgressBar
from offrl.train.offline import (
    NonFiniteLossError,
    _config_from_json,
    algorithm_and_config,
    check_new_run_dir,
    check_resume_target,
    evaluate_agent,
    last_good_checkpoint,
    newest_checkpoint,
    open_sinks,
    read_run_config,
    run_directory,
)
from offrl.train.runtime import RunClock, keep_first_runtime, runtime_info

ONLINE_ALGORITHMS = ("sac", "td3")


@dataclass(frozen=True)
class OnlineConfig:
    """How to run online training (what to learn is the algorithm's config)."""

    algo: str = dataclasses.field(default="sac", metadata={"help": "algorithm: sac or td3"})
    task: str = dataclasses.field(default="pendulum", metadata={"help": "task to learn (offrl name or Gymnasium id)"})
    steps: int = dataclasses.field(default=100_000, metadata={"help": "environment steps (all environments together)"})
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed (networks, actions, episode resets)"})
    num_envs: int = dataclasses.field(default=1, metadata={"help": "environments stepped together (synchronously)"})
    warmup_steps: int = dataclasses.field(default=5_000, metadata={"help": "uniform random steps before learning"})
    updates_per_step: int = dataclasses.field(
        default=1, metadata={"help": "gradient updates per environment step (update-to-data ratio)"}
    )
    batch_size: int = dataclasses.field(default=256, metadata={"help": "transitions per update"})
    buffer_size: int = dataclasses.field(default=0, metadata={"help": "replay capacity; 0 = steps (keep everything)"})
    log_interval: int = dataclasses.field(default=1_000, metadata={"help": "environment steps between records"})
    eval_interval: int = dataclasses.field(default=10_000, metadata={"help": "steps between evaluations; 0 = end"})
    eval_episodes: int = dataclasses.field(default=10, metadata={"help": "episodes per evaluation"})
    checkpoint_interval: int = dataclasses.field(
        default=0, metadata={"help": "steps between checkpoints (which cut running episodes); 0 = every evaluation"}
    )
    keep_checkpoints: int = dataclasses.field(default=2, metadata={"help": "newest checkpoints kept"})
    output_dir: str = dataclasses.field(default="runs", metadata={"help": "parent folder of run directories"})
    run_name: str = dataclasses.field(default="", metadata={"help": "run directory name; default algo-task-seed"})
    progress: bool = dataclasses.field(default=True, metadata={"help": "show a progress bar"})
    stop_return: float | None = dataclasses.field(
        default=None,
        metadata={
            "help": "end the run at the first evaluation whose mean return reaches this (e.g. a D4RL-style medium "
            "policy and its replay buffer); default: run all steps",
            "type": float,
        },
    )

    def __post_init__(self) -> None:
        if self.algo not in ONLINE_ALGORITHMS:
            raise ValueError(f"online training supports {', '.join(ONLINE_ALGORITHMS)}; got {self.algo!r}")
        for name in ("steps", "num_envs", "batch_size", "log_interval", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "updates_per_step", "buffer_size", "eval_interval", "checkpoint_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if 0 < self.buffer_size < self.batch_size:
            raise ValueError(
                f"buffer_size ({self.buffer_size}) is smaller than a batch ({self.batch_size}): every batch would "
                "repeat rows; make the buffer at least batch_size"
            )
        if self.stop_return is not None and not self.eval_interval:
            raise ValueError("stop_return needs evaluations during the run: set eval_interval > 0")
        for name in ("steps", "warmup_steps", "log_interval", "eval_interval", "checkpoint_interval"):
            if getattr(self, name) % self.num_envs:
                raise ValueError(f"{name} ({getattr(self, name)}) must be a multiple of num_envs ({self.num_envs})")

    @property
    def capacity(self) -> int:
        return self.buffer_size or self.steps


@dataclass
class OnlineResult:
    run_dir: Path
    step: int
    agent: Any
    final_evaluation: EvaluationResult | None
    updates_per_second: float
    env_steps_per_second: float


# ---------------------------------------------------------------------------------------------------------------
# Environments


def check_environment(task: Task) -> list[str]:
    """Gymnasium's environment checker on a fresh instance; its warnings are returned (errors raise)."""
    from gymnasium.utils.env_checker import check_env

    env = task.make()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()
    return [str(w.message) for w in caught]


def task_spec_and_transforms(task: Task) -> tuple[Spec, Transforms]:
    observation_shape, space = task.spaces()
    if space.discrete:
        raise ValueError(f"{task.name} has discrete actions; online SAC and TD3 need continuous ones")
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"{task.name}'s action space is unbounded; the policies need finite bounds")
    dim = int(np.prod(observation_shape))
    transforms = Transforms(np.zeros(dim, np.float32), np.ones(dim, np.float32), low, high)
    return Spec(tuple(observation_shape), int(np.prod(space.shape))), transforms


class Environments:
    """``num_envs`` copies of a task stepped one after another; resets are seeded from a global episode counter."""

    def __init__(self, task: Task, num: int, seed: int, episodes_started: int, start_states: Any = None):
        self.envs = [task.make() for _ in range(num)]
        self.start_states = start_states  # offrl.envs.start_states.PrefixStarts: some episodes start from logged states
        self.seed = seed
        self.episodes_started = episodes_started
        self.obs: list[np.ndarray | None] = [None] * num
        self.returns = np.zeros(num)
        self.lengths = np.zeros(num, np.int64)
        self.from_log = [False] * num  # the running episode started from a logged state
        self.finished_from_log: list[bool] = []  # for the episodes the last step() finished

    def reset_all(self) -> None:
        for i in range(len(self.envs)):
            self._reset(i)

    def _reset(self, i: int) -> None:
        obs, _ = self.envs[i].reset(seed=self.seed * 1_000_003 + self.episodes_started)
        self.from_log[i] = False
        if self.start_states is not None:
            index = self.start_states.choose(self.seed, self.episodes_started)
            if index is not None:
                obs = self.start_states.apply(self.envs[i], index)
                self.from_log[i] = True
        self.episodes_started += 1
        self.obs[i] = np.asarray(obs, np.float32)
        self.returns[i], self.lengths[i] = 0.0, 0

    def observations(self) -> np.ndarray:
        return np.stack(self.obs)  # type: ignore[arg-type]

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], list[tuple[float, int]]]:
        """Step every environment; returns the transitions and the (return, length) of episodes that finished."""
        obs = self.observations()
        next_obs = np.empty_like(obs)
        rewards = np.empty(len(self.envs), np.float32)
        terminals = np.zeros(len(self.envs), np.float32)
        timeouts = np.zeros(len(self.envs), np.float32)
        finished = []
        self.finished_from_log = []
        for i, env in enumerate(self.envs):
            o, r, terminated, truncated, _ = env.step(actions[i])
            next_obs[i] = o
            rewards[i] = r
            terminals[i] = float(terminated)
            timeouts[i] = float(truncated and not terminated)
            self.returns[i] += float(r)
            self.lengths[i] += 1
            self.obs[i] = np.asarray(o, np.float32)
            if terminated or truncated:
                finished.append((float(self.returns[i]), int(self.lengths[i])))
                self.finished_from_log.append(self.from_log[i])
                self._reset(i)
        rows = {  # the caller adds "actions" as the algorithm sees them (in [-1, 1])
            "observations": obs,
            "rewards": rewards,
            "terminals": terminals,
            "timeouts": timeouts,
            "next_observations": next_obs,
        }
        return rows, finished

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ---------------------------------------------------------------------------------------------------------------
# The jitted step: add the new transitions, run the updates, choose the next actions.


@dataclass(frozen=True)
class StepFunctions:
    """An environment step's device work as two jitted calls: ``add`` writes the new transitions into the buffer in
    place (the buffer is donated), ``learn`` runs the updates on batches sampled from it and chooses the next
    actions (the agent is donated; the buffer is only read).

    They are two calls, not one, for speed: in one call that both writes the (donated) buffer and samples from it,
    XLA fuses the new rows into the batch gathers, which then read the old buffer, and keeps the in-place write
    correct by copying buffer columns, twice, at every call. The step's cost then grew with the buffer's capacity
    (SAC on Walker2d: 12 steps/s with a 1M-row buffer against 120 with a 10k-row one, same core). A second
    dispatch costs microseconds."""

    add: Any
    learn: Any  # learn(agent, buffer, key, *args) -> (agent, key, actions, metrics)

    @classmethod
    def around(cls, learn, static_argnums: tuple[int, ...]) -> StepFunctions:
        """The jitted buffer write and ``learn`` jitted with the agent donated."""
        return cls(
            add=jax.jit(replay.add, donate_argnums=0),
            learn=jax.jit(learn, static_argnums=static_argnums, donate_argnums=0),
        )

    def __call__(self, agent, buffer, key, rows, *args):
        """Add ``rows``, then ``learn(agent, buffer, key, *args)``; returns the agent, buffer, key, actions and
        metrics."""
        buffer = self.add(buffer, rows)
        agent, key, actions, metrics = self.learn(agent, buffer, key, *args)
        return agent, buffer, key, actions, metrics


def make_step_function(algo: Algorithm, batch_size: int) -> StepFunctions:
    def learn(agent, buffer, key, next_obs, num_updates: int, random_actions: bool):
        def body(carry, _):
            agent, key = carry
            key, batch_key = jax.random.split(key)
            agent, metrics = algo.update(agent, replay.sample(buffer, batch_key, batch_size))
            return (agent, key), metrics

        metrics: dict[str, jax.Array] = {}
        if num_updates:
            (agent, key), stacked = jax.lax.scan(body, (agent, key), None, length=num_updates)
            metrics = {name: values.astype(jnp.float32).mean() for name, values in stacked.items()}
        key, actions = choose_actions(algo, agent, key, next_obs, random_actions)
        return agent, key, actions, metrics

    return StepFunctions.around(learn, static_argnums=(4, 5))


def choose_actions(algo: Algorithm, agent: Any, key: jax.Array, obs: jax.Array, random_actions: bool):
    """Exploration actions in [-1, 1]: uniform random during warm-up, else sampled from the policy."""
    key, act_key = jax.random.split(key)
    if random_actions:
        return key, jax.random.uniform(act_key, (obs.shape[0], agent.spec.action_dim), minval=-1.0, maxval=1.0)
    return key, algo.act(agent, jnp.asarray(obs), act_key, False)


# ---------------------------------------------------------------------------------------------------------------
# Runs


def _run_dir(config: OnlineConfig, task: Task) -> Path:
    name = config.run_name or f"{config.algo}-{task.name}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    return run_directory(config.output_dir, name)


def train_online(
    config: OnlineConfig, algo_config: Any = None, *, loggers: list[Logger] | None = None, stop_after: int | None = None
) -> OnlineResult:
    """Start a new online run. ``stop_after`` ends it early at that step (for tests of resume), checkpointing there."""
    algo, algo_config = algorithm_and_config(config.algo, algo_config)
    if (
        getattr(algo_config, "normalize_observations", False)
        or getattr(algo_config, "reward_scaling", "none") != "none"
    ):
        raise ValueError(
            "online training uses raw observations and rewards: set normalize_observations=False and "
            "reward_scaling='none'"
        )
    task = get_task(config.task)
    run_dir = _run_dir(config, task)
    check_new_run_dir(run_dir, f"continue it with `offrl train-online --resume {run_dir}`")
    try:
        check_environment(task)  # its warnings are advice; its errors mean the environment is broken
    except Exception as e:
        raise ValueError(f"Gymnasium's environment checker rejects {task.env_id}: {e}") from e
    return _execute(
        config, algo, algo_config, task, run_dir, resume_checkpoint=None, loggers=loggers, stop_after=stop_after
    )


def resume_online(
    run_dir: str | Path,
    *,
    steps: int | None = None,
    loggers: list[Logger] | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
) -> OnlineResult:
    """Continue the online run in ``run_dir`` from its newest checkpoint (optionally to a new total of ``steps``)."""
    run_dir = Path(run_dir)
    saved = read_run_config(run_dir)
    if saved.get("kind") != "online":
        raise ValueError(f"{run_dir} is an offline run; continue it with `offrl train --resume`")
    config = _config_from_json(OnlineConfig, saved["train"])
    changes: dict[str, Any] = {}
    if steps is not None:
        changes["steps"] = steps
        if not config.buffer_size:
            changes["buffer_size"] = config.capacity  # the buffer keeps the size it was created with
    if progress is not None:
        changes["progress"] = progress
    config = dataclasses.replace(config, **changes)
    algo = get_algorithm(config.algo)
    algo_config = _config_from_json(algo.config_class, saved["algo_config"])
    checkpoint = newest_checkpoint(run_dir)
    check_resume_target(run_dir, checkpoint_step(checkpoint), config.steps)
    return _execute(
        config,
        algo,
        algo_config,
        get_task(config.task),
        run_dir,
        resume_checkpoint=checkpoint,
        loggers=loggers,
        stop_after=stop_after,
    )


def _execute(
    config: OnlineConfig,
    algo: Algorithm,
    algo_config: Any,
    task: Task,
    run_dir: Path,
    *,
    resume_checkpoint: Path | None,
    loggers: list[Logger] | None,
    stop_after: int | None,
) -> OnlineResult:
    spec, transforms = task_spec_and_transforms(task)
    replay.check_fits(config.capacity, spec.observation_shape, spec.action_dim)
    init_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
    state = {
        "agent": algo.init(init_key, spec, algo_config),
        "buffer": replay.create(config.capacity, spec.observation_shape, spec.action_dim),
        "key": run_key,
        "step": 0,
        "episodes_started": 0,
    }
    metadata = {
        "kind": "online",
        "offrl_version": offrl.__version__,
        "runtime": runtime_info(),
        "algo": algo.name,
        "train": dataclasses.asdict(config),
        "algo_config": dataclasses.asdict(algo_config),
        "spec": spec.to_json(),
        "transforms": transforms.to_json(),
        "task": task.name,
        "env_id": task.env_id,
        "buffer_bytes": replay.buffer_bytes(config.capacity, spec.observation_shape, spec.action_dim),
    }
    if resume_checkpoint is not None:
        state, saved = _load_online_checkpoint(resume_checkpoint, state)
        metadata = keep_first_runtime(metadata, run_dir)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", metadata)
    agent, buffer, key = state["agent"], state["buffer"], state["key"]
    step, episodes_started = int(state["step"]), int(state["episodes_started"])
    clock = RunClock.resumed(saved, step) if resume_checkpoint is not None else RunClock()
    first_step = step

    sinks = open_sinks(run_dir, step if resume_checkpoint is not None else None, loggers)
    bar = ProgressBar(config.steps, step, config.progress, f"{algo.name} {task.name}")
    step_fn = make_step_function(algo, config.batch_size)
    envs = Environments(task, config.num_envs, config.seed, episodes_started)
    envs.reset_all()
    n = config.num_envs
    checkpoint_interval = config.checkpoint_interval or config.eval_interval or config.steps
    cut_episodes = jax.jit(replay.cut_episodes, static_argnums=1, donate_argnums=0)
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    key, actions = choose_actions(algo, agent, key, envs.observations(), step < config.warmup_steps)

    def save(at: int) -> None:
        save_checkpoint(
            run_dir / "checkpoints",
            at,
            {"agent": agent, "buffer": buffer, "key": key, "step": at, "episodes_started": envs.episodes_started},
            {**metadata, "clock": clock.to_json()},
            keep_last=config.keep_checkpoints,
        )

    def run_evaluation(at: int) -> EvaluationResult:
        result = evaluate_agent(algo, agent, transforms, task, config.eval_episodes, seed=10_000 + config.seed * 1000)
        for sink in sinks:
            sink.log(at, result.summary(), "eval")
        bar.evaluation(result.normalized_mean)
        return result

    last_eval: EvaluationResult | None = None
    stopped = False
    window: dict[str, float] = {}
    window_calls, episodes = 0, []
    window_start = time.perf_counter()
    env_seconds = 0.0
    compiled: set[tuple[int, bool]] = set()  # the step function's variants called so far (each compiles once)
    compile_seconds = 0.0
    try:
        while step < end:
            t0 = time.perf_counter()
            rows, finished = envs.step(np.asarray(transforms.denormalize_actions(np.asarray(actions))))
            t1 = time.perf_counter()
            env_seconds += t1 - t0
            rows["actions"] = np.asarray(actions, np.float32)
            step += n
            episodes += finished
            learning = step >= config.warmup_steps
            num_updates = config.updates_per_step * n if learning else 0
            variant = (num_updates, step < config.warmup_steps)
            compiling = variant not in compiled
            compiled.add(variant)
            agent, buffer, key, actions, metrics = step_fn(
                agent, buffer, key, rows, jnp.asarray(envs.observations()), *variant
            )
            if metrics:
                values = jax.device_get(metrics)
                for name, value in values.items():
                    if not np.isfinite(value):
                        raise NonFiniteLossError(
                            f"non-finite {name} at environment step {step}; training stopped "
                            f"({last_good_checkpoint(run_dir)})"
                        )
                    window[name] = window.get(name, 0.0) + float(value)
                window_calls += 1
                seconds = time.perf_counter() - t1
                if compiling:  # the call that compiled this variant: its time is compilation, not updates
                    compile_seconds += seconds
                clock.add_updates(num_updates, 0.0 if compiling else seconds)
            else:
                jax.block_until_ready(actions)
                if compiling:
                    compile_seconds += time.perf_counter() - t1
            rate = clock.updates_per_second
            bar.advance(n, {k: v / window_calls for k, v in window.items()} if window_calls else {}, rate)
            if step % config.log_interval == 0 or step == end:
                elapsed = time.perf_counter() - window_start
                record = {name: total / window_calls for name, total in window.items()} if window_calls else {}
                if episodes:
                    record["train/episode_return"] = float(np.mean([r for r, _ in episodes]))
                    record["train/episode_length"] = float(np.mean([length for _, length in episodes]))
                    record["train/episodes"] = float(len(episodes))
                record["time/env_steps_per_second"] = config.log_interval / elapsed if elapsed > 0 else 0.0
                record["time/updates_per_second"] = clock.updates_per_second
                for sink in sinks:
                    sink.log(step, record, "train")
                window, window_calls, episodes = {}, 0, []
                window_start = time.perf_counter()
            if config.eval_interval and step % config.eval_interval == 0:
                last_eval = run_evaluation(step)
                if config.stop_return is not None and last_eval.summary()["eval/return_mean"] >= config.stop_return:
                    end, stopped = step, True
            if step % checkpoint_interval == 0 or step == end:
                buffer = cut_episodes(buffer, n)  # the running episodes end here (as timeouts)
                save(step)
                envs.reset_all()  # the checkpoint cuts the running episodes (see the module docstring)
                key, actions = choose_actions(algo, agent, key, envs.observations(), step < config.warmup_steps)
        if last_eval is None or not config.eval_interval or step % config.eval_interval:
            last_eval = run_evaluation(step)
    finally:
        envs.close()
        bar.close()
        for sink in sinks:
            sink.close()

    env_steps_per_second = (step - first_step) / env_seconds if env_seconds else 0.0  # this invocation's
    summary = {
        "step": step,
        "env_steps_per_second_env_only": env_steps_per_second,
        "compile_seconds": compile_seconds,  # of this invocation (the calls that compiled the step function)
        **last_eval.summary(),
        "task": task.name,
        "stopped_at_return": stopped,
        **clock.summary(),  # updates/s and wall time over all the run's invocations
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return OnlineResult(run_dir, step, agent, last_eval, clock.updates_per_second, env_steps_per_second)


def _load_online_checkpoint(path: Path, template: Any, part: str | None = None):
    try:
        return load_checkpoint(path, template, part=part)
    except CheckpointError as e:
        if "timeouts" in str(e):
            raise CheckpointError(
                f"{path} was written by an offrl version whose replay buffer did not record timeouts (episode "
                "boundaries); it cannot be resumed or exported: start a new run"
            ) from e
        raise


def replay_dataset(path: str | Path) -> Dataset:
    """The replay buffer of an online run (its newest checkpoint, or the checkpoint file given) as a dataset.

    Episodes come out contiguous (each environment's rows together, oldest first, see :func:`replay.export`),
    actions in the task's own bounds, ``terminals`` and ``timeouts`` as logged. This is how D4RL made its
    "medium-replay" datasets: the buffer of a SAC run stopped at the medium policy's return (``--stop-return``).
    """
    from offrl.data.dataset import ActionSpace
    from offrl.train.checkpoint import list_checkpoints, read_metadata

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give an online run directory or one of its checkpoints")
    if path.is_dir():
        candidates = list_checkpoints(path / "checkpoints")
        if not candidates:
            raise FileNotFoundError(f"no checkpoint found in {path / 'checkpoints'}")
        path = candidates[-1]
    meta = read_metadata(path)
    if meta.get("kind") != "online":
        raise ValueError(f"{path} is not a checkpoint of an online run: it has no replay buffer")
    config = _config_from_json(OnlineConfig, meta["train"])
    spec = Spec.from_json(meta["spec"])
    transforms = Transforms.from_json(meta["transforms"])
    template = replay.create(config.capacity, spec.observation_shape, spec.action_dim)
    buffer, _ = _load_online_checkpoint(path, template, part="buffer")
    env_steps = int(meta["step"])
    rows = replay.export(buffer, env_steps, config.num_envs)
    if not len(rows["rewards"]):
        raise ValueError(f"the replay buffer in {path} is empty")
    actions = np.asarray(transforms.denormalize_actions(rows["actions"]), np.float32)
    low, high = np.asarray(transforms.action_low), np.asarray(transforms.action_high)
    return Dataset(
        observations=rows["observations"].astype(np.float32),
        actions=actions,
        rewards=rows["rewards"].astype(np.float32),
        terminals=rows["terminals"] > 0,
        timeouts=rows["timeouts"] > 0,
        next_observations=rows["next_observations"].astype(np.float32),
        action_space=ActionSpace.box(low, high, (spec.action_dim,)),
        metadata={
            "env_id": meta["env_id"],
            "task": meta["task"],
            "source": f"replay buffer of the online {meta['algo']} run, checkpoint {path}",
            "env_steps": env_steps,
        },
    )
