"""Task rewards that replace an environment's own (sparse success rewards for methods such as ResFiT).

- ``upright`` (Pendulum-v1): 1 when the pendulum, after the step, is within ``UPRIGHT_ANGLE`` radians of upright,
  else 0; so the return of an episode is the number of steps it spends balanced. The reward reads the observation
  after the step, so a dataset's rewards can be recomputed from its ``next_observations``
  (:func:`relabel`) exactly as the wrapped environment gives them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

UPRIGHT_ANGLE = 0.3  # radians
REWARDS = ("dense", "upright")


def upright(next_observations: np.ndarray) -> np.ndarray:
    """Pendulum-v1: 1.0 where ``cos(theta) > cos(UPRIGHT_ANGLE)`` (observations are [cos, sin, velocity])."""
    return (np.asarray(next_observations)[..., 0] > np.cos(UPRIGHT_ANGLE)).astype(np.float32)


def relabel(reward: str, next_observations: np.ndarray) -> np.ndarray:
    """The rewards a task with reward ``reward`` gives for these next observations."""
    if reward == "upright":
        return upright(next_observations)
    raise ValueError(f"no relabelling for reward {reward!r}; sparse rewards: upright")


def wrap(env: Any, reward: str) -> Any:
    """``env`` with its reward replaced (``dense`` leaves it as it is)."""
    if reward == "dense":
        return env
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; known: {', '.join(REWARDS)}")
    import gymnasium as gym

    class SparseReward(gym.Wrapper):
        def step(self, action):
            obs, _, terminated, truncated, info = self.env.step(action)
            return obs, float(relabel(reward, obs)), terminated, truncated, info

    return SparseReward(env)
