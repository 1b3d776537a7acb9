"""SERL's asynchronous actor/learner split (Luo et al. 2024, ``serl_launcher/utils/launcher.py`` and
``examples/async_drq_sim``): acting and learning in two processes on one machine, so acting never waits on learning.

- The **actor** process steps the environment with its copy of the policy, sends its transitions to the learner
  every ``send_every`` environment steps, and takes the newest policy parameters whenever the learner has
  published some (it never blocks on them).
- The **learner** process (the caller's) adds the transitions it receives to its device replay buffer and runs
  updates continuously, ``updates_per_call`` per jitted call, on batches that mix the offline data and the online
  buffer (``offrl.train.mixing``); every ``publish_every`` updates it publishes the actor's parameters.

Messages go through two ``multiprocessing`` queues (spawned processes: JAX must not be forked), as msgpack bytes
(``flax.serialization``), not pickled objects. The update-to-data ratio is not fixed: it is whatever the learner
achieves while the actor steps at its own pace (both are reported); ``max_updates_per_step`` caps it so that a
fast learner does not run far ahead of the data.

What is not here: exact reproducibility (the interleaving of the two processes depends on timing, so two runs with
the same seed differ) and resume (an asynchronous run starts from its configuration; its result can be saved with
the usual checkpoints by the caller).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from offrl.algos import get_algorithm
from offrl.algos.base import Spec, training_update
from offrl.data.transforms import Transforms
from offrl.envs.evaluation import EvaluationResult
from offrl.envs.registry import get_task
from offrl.train import replay
from offrl.train.finetune import normalised_rows
from offrl.train.mixing import MIXED_COLUMNS, mixed_updates
from offrl.train.offline import (
    _config_from_json,
    algorithm_and_config,
    dataset_task,
    evaluate_agent,
    resolve_dataset,
    spec_for,
)
from offrl.train.online import Environments, choose_actions


@dataclass(frozen=True)
class AsyncConfig:
    """An asynchronous online run with prior data (RLPD/SERL style: no offline pre-training)."""

    algo: str = "rlpd"
    dataset: str = "pendulum-expert"
    task: str = ""
    online_steps: int = 5_000
    seed: int = 0
    batch_size: int = 256
    offline_fraction: float = 0.5
    warmup_steps: int = 1_000  # the actor's first steps are uniform random; the learner starts after them
    send_every: int = 50  # environment steps per message of transitions
    updates_per_call: int = 20
    publish_every: int = 100  # learner updates between two publications of the actor's parameters
    max_updates_per_step: float = 0.0  # cap on updates per received environment step; 0 = none
    actor_hz: float = 0.0  # the actor's control rate (a real-time system, e.g. SERL's robots at 10 Hz); 0 = free
    eval_episodes: int = 10

    def __post_init__(self) -> None:
        for name in ("online_steps", "batch_size", "send_every", "updates_per_call", "publish_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.max_updates_per_step < 0 or self.actor_hz < 0:
            raise ValueError("warmup_steps, max_updates_per_step and actor_hz must be >= 0")
        if not 0.0 <= self.offline_fraction <= 1.0:
            raise ValueError(f"offline_fraction must be in [0, 1], got {self.offline_fraction}")


@dataclass
class AsyncResult:
    agent: Any
    final_evaluation: EvaluationResult
    env_steps_received: int
    actor_steps_per_second: float  # environment steps per second of the actor, from its first step to its last
    learner_updates: int
    learner_updates_per_second: float
    updates_per_env_step: float  # the update-to-data ratio the learner achieved
    parameter_versions: int  # how many times the actor took new parameters
    train_returns: list[float]
    wall_seconds: float


# ---------------------------------------------------------------------------------------------------------------
# The actor process


def _actor_main(setup: dict, params_queue: mp.Queue, transitions_queue: mp.Queue) -> None:
    """Step the environment; send transitions; take the newest parameters without waiting for them."""
    algo = get_algorithm(setup["algo"])
    config = _config_from_json(algo.config_class, setup["algo_config"])
    spec = Spec.from_json(setup["spec"])
    transforms = Transforms.from_json(setup["transforms"])
    task = get_task(setup["task"])
    agent = algo.init(jax.random.PRNGKey(setup["seed"]), spec, config)
    agent = agent.replace(actor_params=serialization.msgpack_restore(params_queue.get()))  # the learner's start
    act = jax.jit(lambda agent, key, obs, uniform: choose_actions(algo, agent, key, obs, uniform), static_argnums=3)
    key = jax.random.PRNGKey(setup["seed"] + 1)
    envs = Environments(task, 1, setup["seed"], 0)
    envs.reset_all()
    versions, returns, chunk = 0, [], []
    period = 1.0 / setup["actor_hz"] if setup["actor_hz"] else 0.0
    start = None
    try:
        for step in range(setup["online_steps"]):
            if start is not None and period:  # hold the control rate
                time.sleep(max(0.0, start + step * period - time.perf_counter()))
            newest = None
            try:  # the newest parameters, if any were published
                while True:
                    newest = params_queue.get_nowait()
            except queue.Empty:
                pass
            if newest is not None:
                agent = agent.replace(actor_params=serialization.msgpack_restore(newest))
                versions += 1
            obs = jnp.asarray(transforms.normalize_observations(envs.observations()))
            key, actions = act(agent, key, obs, step < setup["warmup_steps"])
            actions = np.asarray(actions)
            if start is None:
                start = time.perf_counter()  # after the first call's compilation
            raw, finished = envs.step(transforms.denormalize_actions(actions))
            returns += [r for r, _ in finished]
            raw["actions"] = actions.astype(np.float32)
            chunk.append(raw)
            if len(chunk) == setup["send_every"] or step == setup["online_steps"] - 1:
                rows = {name: np.concatenate([c[name] for c in chunk]) for name in chunk[0]}
                transitions_queue.put(serialization.msgpack_serialize(rows))
                chunk = []
        seconds = time.perf_counter() - (start or time.perf_counter())
    finally:
        envs.close()
    summary = {"steps_per_second": (setup["online_steps"] - 1) / max(seconds, 1e-9), "versions": versions}
    transitions_queue.put(serialization.msgpack_serialize({"done": summary, "returns": np.asarray(returns)}))


# ---------------------------------------------------------------------------------------------------------------
# The learner (this process)


def run_async(config: AsyncConfig, algo_config: Any = None) -> AsyncResult:
    """Run the actor in a spawned process and learn here until the actor has sent all its steps."""
    began = time.perf_counter()
    algo, algo_config = algorithm_and_config(config.algo, algo_config)
    if algo.extra_columns:
        raise ValueError(f"{algo.name} reads {', '.join(algo.extra_columns)}; the asynchronous loop does not add them")
    algo_config = algo.configure_for_training(algo_config, config.online_steps)
    source = resolve_dataset(config.dataset, config.task)
    dataset = source.dataset
    task = dataset_task(dataset, config.task)
    if task is None:
        raise ValueError(f"{source.name} names no environment: give a task")
    transforms = Transforms.fit(
        dataset, normalize_observations=algo_config.normalize_observations, reward_scaling=algo_config.reward_scaling
    )
    spec = spec_for(dataset)
    arrays = transforms.apply(dataset)
    data = jax.device_put({name: arrays[name] for name in MIXED_COLUMNS})
    buffer = replay.create(config.online_steps, spec.observation_shape, spec.action_dim)
    agent = algo.init(jax.random.PRNGKey(config.seed), spec, algo_config)
    update = training_update(algo, algo_config, arrays)
    key = jax.random.PRNGKey(config.seed + 2)
    learn, add = _learner_functions(update, config, agent, buffer, key, data)  # compiled before the actor starts

    context = mp.get_context("spawn")
    params_queue, transitions_queue = context.Queue(), context.Queue()
    setup = {
        "algo": algo.name,
        "algo_config": dataclasses.asdict(algo_config),
        "spec": spec.to_json(),
        "transforms": transforms.to_json(),
        "task": task.name,
        "seed": config.seed,
        "online_steps": config.online_steps,
        "warmup_steps": config.warmup_steps,
        "send_every": config.send_every,
        "actor_hz": config.actor_hz,
    }
    actor = context.Process(target=_actor_main, args=(setup, params_queue, transitions_queue), daemon=True)
    saved_platforms = os.environ.get("JAX_PLATFORMS")
    os.environ["JAX_PLATFORMS"] = "cpu"  # the actor acts on the CPU; it must not take the learner's GPU memory
    try:
        actor.start()
    finally:
        if saved_platforms is None:
            del os.environ["JAX_PLATFORMS"]
        else:
            os.environ["JAX_PLATFORMS"] = saved_platforms
    # a message's worth of steps at the actor's rate, plus its start (imports, compilation)
    wait = 120.0 + (config.send_every / config.actor_hz if config.actor_hz else 0.0)
    failed = True
    params_queue.put(serialization.msgpack_serialize(jax.device_get(agent.actor_params)))
    received, updates, update_seconds, done = 0, 0, 0.0, None
    since_publish = 0
    try:
        while done is None:
            # 1. Take every message waiting; before the warm-up is complete, wait for them.
            learning = received > config.warmup_steps
            while True:
                try:
                    message = transitions_queue.get(block=not learning, timeout=None if learning else wait)
                except queue.Empty:
                    if actor.exitcode is not None:
                        raise RuntimeError(f"the actor process ended (exit code {actor.exitcode})") from None
                    if not learning:
                        raise RuntimeError(f"the actor process sent nothing for {wait:.0f} s") from None
                    break
                rows = serialization.msgpack_restore(message)
                if "done" in rows:
                    done = rows
                    break
                buffer = add(buffer, normalised_rows(rows, transforms))
                received += len(rows["rewards"])
                learning = received > config.warmup_steps
            if done is not None or not learning:
                continue
            if config.max_updates_per_step and updates >= config.max_updates_per_step * received:
                time.sleep(0.001)  # ahead of the data: wait for more
                continue
            # 2. Learn.
            t = time.perf_counter()
            agent, key, metrics = learn(agent, buffer, key, data)
            jax.block_until_ready(metrics)
            update_seconds += time.perf_counter() - t
            updates += config.updates_per_call
            since_publish += config.updates_per_call
            for name, value in jax.device_get(metrics).items():
                if not np.isfinite(value):
                    raise FloatingPointError(f"non-finite {name} after {updates} asynchronous updates")
            # 3. Publish the actor's parameters.
            if since_publish >= config.publish_every:
                params_queue.put(serialization.msgpack_serialize(jax.device_get(agent.actor_params)))
                since_publish = 0
        failed = False
    finally:
        actor.join(timeout=0.0 if failed else 60.0)
        if actor.is_alive():
            actor.terminate()
        for q in (params_queue, transitions_queue):  # parameters published after the actor's last read would
            q.cancel_join_thread()  # otherwise keep this process from exiting (the pipe has no reader left)
            q.close()
    if actor.exitcode not in (0, None):
        raise RuntimeError(f"the actor process failed (exit code {actor.exitcode})")
    final = evaluate_agent(algo, agent, transforms, task, config.eval_episodes, seed=10_000 + config.seed * 1000)
    return AsyncResult(
        agent=agent,
        final_evaluation=final,
        env_steps_received=received,
        actor_steps_per_second=float(done["done"]["steps_per_second"]),
        learner_updates=updates,
        learner_updates_per_second=updates / update_seconds if update_seconds else 0.0,
        updates_per_env_step=updates / max(received, 1),
        parameter_versions=int(done["done"]["versions"]),
        train_returns=[float(r) for r in np.atleast_1d(done["returns"])],
        wall_seconds=time.perf_counter() - began,
    )


def _learner_functions(update, config: AsyncConfig, agent, buffer, key, data):
    """The learner's jitted update block and buffer add, compiled ahead (so the actor does not run ahead of a
    learner that is still compiling); ``add`` for messages of ``send_every`` rows (a shorter last one compiles
    on its own)."""

    def learn(agent, buffer, key, data):
        return mixed_updates(
            update, agent, key, data, buffer, config.batch_size, config.offline_fraction, config.updates_per_call
        )

    learn = jax.jit(learn, donate_argnums=(0,))
    add = jax.jit(replay.add, donate_argnums=(0,))
    learn.lower(agent, buffer, key, data).compile()
    rows = {name: jnp.zeros((config.send_every, *column.shape[1:])) for name, column in buffer.data.items()}
    add.lower(buffer, rows).compile()
    return learn, add
