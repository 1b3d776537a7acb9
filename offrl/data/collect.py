"""Making datasets: run a behaviour policy in a task and record what happened, D4RL-style.

A behaviour policy maps one raw observation to one action in the task's bounds. Three kinds are built in:

- :func:`uniform_policy`: uniform random actions (D4RL's "random");
- :func:`npz_actor`: an external tanh-Gaussian actor stored as plain arrays (``hidden0_w/_b, hidden1_w/_b, mean_w/_b,
  log_std_w/_b``, the layout of the actors in ``../shared/experts``), acting with its mean or sampling as D4RL did;
- :func:`checkpoint_policy`: a policy trained by offrl (offline or online run, or a checkpoint file).

:func:`with_noise` adds Gaussian action noise (in units of half the action range) and epsilon-random mixing.
:func:`collect` runs the policy for a number of transitions: episode ``k`` is reset with seed ``seed * 1_000_003 +
k``; ``terminated`` is recorded as a terminal, ``truncated`` and the end of the collection as a timeout; the next
observation is always the real successor. For MuJoCo tasks the simulator state before each step (``qpos``,
``qvel``) is kept as the extra columns ``infos/qpos`` and ``infos/qvel``, as D4RL does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from offrl.data.dataset import FLOAT, Dataset
from offrl.envs.registry import Task

Policy = Callable[[np.ndarray], np.ndarray]


def uniform_policy(task: Task, seed: int) -> Policy:
    low, high = _bounds(task)
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(low, high).astype(FLOAT)


def npz_actor(path: str | Path, task: Task, stochastic: bool, seed: int) -> Policy:
    """An actor stored as plain arrays (no pickle); its tanh output in [-1, 1] is mapped onto the task's bounds."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as f:
        w = {k: f[k].astype(np.float64) for k in f.files}
    needed = ["hidden0_w", "hidden0_b", "hidden1_w", "hidden1_b", "mean_w", "mean_b", "log_std_w", "log_std_b"]
    missing = [k for k in needed if k not in w]
    if missing:
        raise ValueError(f"{path} is not an actor npz: it lacks {missing} (found {sorted(w)})")
    broken = [k for k in needed if not np.all(np.isfinite(w[k]))]
    if broken:
        raise ValueError(f"{path}: the actor's weights {broken} hold NaN or inf values")
    obs_shape, _ = task.spaces()
    if w["hidden0_w"].shape[0] != int(np.prod(obs_shape)):
        raise ValueError(
            f"{path} expects observations of size {w['hidden0_w'].shape[0]}, but {task.name} has {obs_shape}"
        )
    low, high = _bounds(task)
    if w["mean_w"].shape[1] != low.shape[0]:
        raise ValueError(f"{path} outputs {w['mean_w'].shape[1]} actions, but {task.name} has {low.shape[0]}")
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        h = np.maximum(obs.astype(np.float64) @ w["hidden0_w"] + w["hidden0_b"], 0.0)
        h = np.maximum(h @ w["hidden1_w"] + w["hidden1_b"], 0.0)
        u = h @ w["mean_w"] + w["mean_b"]
        if stochastic:
            log_std = np.clip(h @ w["log_std_w"] + w["log_std_b"], -20.0, 2.0)
            u = u + np.exp(log_std) * rng.standard_normal(u.shape)
        return (low + (np.tanh(u) + 1.0) * 0.5 * (high - low)).astype(FLOAT)

    return act


def checkpoint_policy(path: str | Path, task: Task, stochastic: bool, seed: int) -> Policy:
    from offrl.train.offline import load_policy

    loaded = load_policy(path)
    loaded.check_fits(task)  # a policy from another task fails here, with both spaces named
    batch_policy = loaded.sampler(seed) if stochastic else loaded
    return lambda obs: np.asarray(batch_policy(obs[None]))[0]


def with_noise(policy: Policy, task: Task, seed: int, action_noise: float = 0.0, epsilon: float = 0.0) -> Policy:
    """Gaussian noise of std ``action_noise`` * (half the action range), and with probability ``epsilon`` a uniform
    random action instead; the result is clipped to the bounds."""
    if action_noise < 0 or not 0 <= epsilon <= 1:
        raise ValueError(f"action_noise must be >= 0 and epsilon in [0, 1] (got {action_noise}, {epsilon})")
    if action_noise == 0 and epsilon == 0:
        return policy
    low, high = _bounds(task)
    rng = np.random.default_rng(seed + 7919)

    def act(obs: np.ndarray) -> np.ndarray:
        a = np.asarray(policy(obs), np.float64)
        if epsilon and rng.random() < epsilon:
            return rng.uniform(low, high).astype(FLOAT)
        if action_noise:
            a = a + action_noise * 0.5 * (high - low) * rng.standard_normal(a.shape)
        return np.clip(a, low, high).astype(FLOAT)

    return act


def collect(task: Task, policy: Policy, transitions: int, seed: int, progress: bool = False) -> Dataset:
    """Run ``policy`` in ``task`` for ``transitions`` steps and return them as a validated :class:`Dataset`."""
    if transitions < 1:
        raise ValueError(f"transitions must be >= 1, got {transitions}")
    env = task.make()
    obs_shape = env.observation_space.shape
    action_dim = int(np.prod(env.action_space.shape))
    observations = np.empty((transitions, *obs_shape), FLOAT)
    next_observations = np.empty_like(observations)
    actions = np.empty((transitions, action_dim), FLOAT)
    rewards = np.empty(transitions, FLOAT)
    terminals = np.zeros(transitions, bool)
    timeouts = np.zeros(transitions, bool)
    mujoco = hasattr(env.unwrapped, "data") and hasattr(env.unwrapped.data, "qpos")
    qpos = np.empty((transitions, env.unwrapped.data.qpos.size)) if mujoco else None
    qvel = np.empty((transitions, env.unwrapped.data.qvel.size)) if mujoco else None
    episode = 0
    obs, _ = env.reset(seed=seed * 1_000_003 + episode)
    start = time.perf_counter()
    try:
        for t in range(transitions):
            if mujoco:
                qpos[t] = env.unwrapped.data.qpos  # type: ignore[index]
                qvel[t] = env.unwrapped.data.qvel  # type: ignore[index]
            action = policy(np.asarray(obs, FLOAT))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            observations[t], actions[t], rewards[t], next_observations[t] = obs, action, reward, next_obs
            terminals[t], timeouts[t] = terminated, truncated and not terminated
            if terminated or truncated:
                episode += 1
                obs, _ = env.reset(seed=seed * 1_000_003 + episode)
            else:
                obs = next_obs
            if progress and (t + 1) % 10_000 == 0:
                rate = (t + 1) / (time.perf_counter() - start)
                print(f"  {t + 1:,} / {transitions:,} transitions ({rate:.0f}/s)", flush=True)
    finally:
        env.close()
    if not terminals[-1]:
        timeouts[-1] = True  # the collection ends here: a truncation, not a termination
    extras = {"infos/qpos": qpos.astype(FLOAT), "infos/qvel": qvel.astype(FLOAT)} if mujoco else {}
    return Dataset(
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminals=terminals,
        timeouts=timeouts,
        next_observations=next_observations,
        extras=extras,  # type: ignore[arg-type]
        metadata={"env_id": task.env_id, "task": task.name, "seed": seed},
    )


def _bounds(task: Task) -> tuple[np.ndarray, np.ndarray]:
    _, space = task.spaces()
    if space.discrete:
        raise ValueError(f"{task.name} has discrete actions; dataset making supports continuous tasks")
    return np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)


def describe(kind: str, **details: Any) -> dict[str, Any]:
    """Provenance attributes recorded in every file :func:`collect` output is written to."""
    import offrl

    return {"behavior": kind, "offrl_version": offrl.__version__, **{k: v for k, v in details.items() if v is not None}}
