"""Evaluation tasks: a name, a Gymnasium id, a time limit, and the reference returns of the normalised score.

``normalized_score = 100 * (R - R_random) / (R_expert - R_random)``: 0 is a uniformly random policy, 100 an expert.

Where the references come from:

- hopper, halfcheetah, walker2d, ant: D4RL's reference returns (random and expert SAC policies on the v2 tasks),
  applied unchanged to the v5 tasks, as is customary; the v5 observation and action spaces are the v2 ones.
- pendulum: measured by offrl on Pendulum-v1 (``benchmarks/reference_scores.py``): random = mean return of uniform
  random actions over 100 episodes (seeds 0-99); expert = mean return of the scripted energy-shaping swing-up
  controller in ``offrl.data.builtin`` over the same seeds.
- pendulum-sparse: Pendulum-v1 with the sparse ``upright`` reward of ``offrl.envs.rewards`` (1 per step spent
  within 0.3 rad of upright), its references measured the same way as pendulum's.
- cartpole: random measured the same way on CartPole-v1; expert = 500, the maximum return (the time limit).

A task with changed dynamics is named ``BASE:change=factor,...`` (``hopper:gravity=2``,
``hopper:friction=0.5,mass=1.5``, ``pendulum:gravity=1.5``): the base task with its gravity, friction or masses
multiplied by the factors (applied to the simulator after ``gym.make``). Its scores use the base task's references.
This is the "real system vs simulator" gap of hybrid methods such as H2O: log data on one variant, interact with
another.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from offrl.data.dataset import ActionSpace
from offrl.envs import rewards


@dataclass(frozen=True)
class Task:
    name: str
    env_id: str
    ref_random: float
    ref_expert: float
    max_episode_steps: int
    reference_source: str
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    dynamics: tuple[tuple[str, float], ...] = ()  # multipliers of gravity / friction / mass (see the module doc)
    reward: str = "dense"  # the environment's own reward, or a sparse one from offrl.envs.rewards

    def make(self) -> Any:
        """A fresh Gymnasium environment for this task (with its time limit and dynamics changes)."""
        import gymnasium as gym

        env = gym.make(self.env_id, max_episode_steps=self.max_episode_steps, **dict(self.env_kwargs))
        if self.dynamics:
            change_dynamics(env, dict(self.dynamics))
        return rewards.wrap(env, self.reward)

    def normalized_score(self, episode_return: float | np.ndarray) -> float | np.ndarray:
        return 100.0 * (np.asarray(episode_return) - self.ref_random) / (self.ref_expert - self.ref_random)

    def spaces(self) -> tuple[tuple[int, ...], ActionSpace]:
        """The observation shape and action space, read from the environment."""
        return _spaces(self)


_D4RL = "D4RL reference returns (v2 tasks), used unchanged on v5"
_MEASURED = "measured by benchmarks/reference_scores.py (100 episodes, seeds 0-99)"

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("hopper", "Hopper-v5", -20.272305, 3234.3, 1000, _D4RL),
        Task("halfcheetah", "HalfCheetah-v5", -280.178953, 12135.0, 1000, _D4RL),
        Task("walker2d", "Walker2d-v5", 1.629008, 4592.3, 1000, _D4RL),
        Task("ant", "Ant-v5", -325.6, 3879.7, 1000, _D4RL),
        Task("pendulum", "Pendulum-v1", -1197.18, -144.81, 200, _MEASURED),
        Task("pendulum-sparse", "Pendulum-v1", 8.29, 172.57, 200, _MEASURED, reward="upright"),
        Task("cartpole", "CartPole-v1", 24.96, 500.0, 500, _MEASURED + "; expert = the maximum return"),
    ]
}


DYNAMICS = ("gravity", "friction", "mass")


def change_dynamics(env: Any, factors: dict[str, float]) -> None:
    """Multiply the simulator's gravity, friction coefficients or body masses (MuJoCo tasks; Pendulum's g and m)."""
    base = env.unwrapped
    if hasattr(base, "model") and hasattr(base.model, "opt"):  # MuJoCo
        model = base.model
        if "gravity" in factors:
            model.opt.gravity[:] = model.opt.gravity * factors["gravity"]
        if "friction" in factors:
            model.geom_friction[:, 0] = model.geom_friction[:, 0] * factors["friction"]  # sliding friction
        if "mass" in factors:
            model.body_mass[:] = model.body_mass * factors["mass"]
    elif hasattr(base, "g") and hasattr(base, "m"):  # Pendulum
        if "friction" in factors:
            raise ValueError("Pendulum has no friction to change (gravity and mass only)")
        base.g = base.g * factors.get("gravity", 1.0)
        base.m = base.m * factors.get("mass", 1.0)
    else:
        raise ValueError(f"{type(base).__name__}: offrl can change the dynamics of MuJoCo tasks and Pendulum only")


def _variant(name: str) -> Task:
    """``BASE:change=factor,...`` -> the base task with those dynamics multipliers."""
    base_name, _, spec = name.partition(":")
    base = get_task(base_name)
    factors: dict[str, float] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in DYNAMICS:
            raise KeyError(f"bad dynamics change {item!r} in {name!r}: use {', '.join(DYNAMICS)} as NAME=FACTOR")
        try:
            factors[key] = float(value)
        except ValueError:
            raise KeyError(f"the factor of {key} in {name!r} is not a number: {value!r}") from None
        if not factors[key] > 0:
            raise KeyError(f"the factor of {key} in {name!r} must be > 0")
    label = ",".join(f"{k}={v:g}" for k, v in sorted(factors.items()))
    return dataclasses.replace(base, name=f"{base.name}:{label}", dynamics=tuple(sorted(factors.items())))


def get_task(name: str) -> Task:
    """Look a task up by its offrl name (``hopper``), its Gymnasium id (``Hopper-v5``), or a variant with changed
    dynamics (``hopper:gravity=2``)."""
    if ":" in name:
        return _variant(name)
    key = name.lower()
    if key in TASKS:
        return TASKS[key]
    for task in TASKS.values():
        if task.env_id.lower() == key:
            return task
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")


def find_task(name: str | None) -> Task | None:
    if not name:
        return None
    try:
        return get_task(name)
    except KeyError:
        return None


_SPACES: dict[str, tuple[tuple[int, ...], ActionSpace]] = {}


def _spaces(task: Task) -> tuple[tuple[int, ...], ActionSpace]:
    if task.name not in _SPACES:
        import gymnasium as gym

        env = task.make()
        try:
            obs_space, act_space = env.observation_space, env.action_space
        finally:
            env.close()
        if isinstance(act_space, gym.spaces.Discrete):
            action = ActionSpace.categorical(int(act_space.n))
        else:
            action = ActionSpace.box(act_space.low, act_space.high, tuple(act_space.shape))
        _SPACES[task.name] = (tuple(obs_space.shape), action)
    return _SPACES[task.name]
