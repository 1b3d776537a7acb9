"""Seeded evaluation of a policy over N episodes, all episodes stepped together so the (jitted) policy runs on one
batch per time step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from offrl.envs.registry import Task

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvaluationResult:
    returns: np.ndarray
    lengths: np.ndarray
    normalized: np.ndarray
    seeds: list[int] = field(default_factory=list)
    #: sum_t discount^t r_t per episode, when ``evaluate`` was given a discount (to compare with off-policy estimates)
    discounted_returns: np.ndarray | None = None

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    @property
    def normalized_mean(self) -> float:
        return float(self.normalized.mean())

    @property
    def normalized_std(self) -> float:
        return float(self.normalized.std())

    def summary(self) -> dict[str, float]:
        return {
            "eval/return_mean": self.mean,
            "eval/return_std": self.std,
            "eval/normalized_score": self.normalized_mean,
            "eval/normalized_std": self.normalized_std,
            "eval/length_mean": float(self.lengths.mean()),
        }


def evaluate(
    policy: Policy, task: Task, episodes: int = 10, seed: int = 0, discount: float | None = None
) -> EvaluationResult:
    """Run ``episodes`` episodes, the i-th reset with seed ``seed + i``; ``policy`` maps a ``[episodes, *obs]``
    batch of raw observations to a batch of actions in the task's own action space. With ``discount`` the result
    also holds each episode's discounted return."""
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    envs = [task.make() for _ in range(episodes)]
    seeds = [seed + i for i in range(episodes)]
    try:
        obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=False)]).astype(np.float32)
        active = np.ones(episodes, bool)
        returns = np.zeros(episodes)
        discounted = np.zeros(episodes)
        lengths = np.zeros(episodes, np.int64)
        while active.any():
            actions = np.asarray(policy(obs))
            for i in np.flatnonzero(active):
                next_obs, reward, terminated, truncated, _ = envs[i].step(actions[i])
                returns[i] += float(reward)
                if discount is not None:
                    discounted[i] += discount ** lengths[i] * float(reward)
                lengths[i] += 1
                obs[i] = next_obs
                if terminated or truncated:
                    active[i] = False
    finally:
        for env in envs:
            env.close()
    normalized = np.asarray(task.normalized_score(returns))
    return EvaluationResult(returns, lengths, normalized, seeds, discounted if discount is not None else None)
