"""Data transforms that are fitted on a dataset, recorded in the run, and re-applied at evaluation.

A :class:`Transforms` holds everything between raw data and what an algorithm sees:

- observations: ``(s - mean) / std`` (CORL / TD3+BC convention, ``std + eps`` with eps 1e-3), or identity;
- actions: the box ``[low, high]`` mapped affinely onto ``[-1, 1]`` (algorithms always act in [-1, 1]);
- rewards: ``r * reward_scale + reward_shift``. IQL's locomotion convention is
  ``r * 1000 / (max episode return - min episode return)``.

It is plain data (arrays and floats), saved in every checkpoint and its JSON sidecar, so evaluation and deployment
apply exactly what training saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from offrl.data.dataset import FLOAT, Dataset, DatasetError

RewardScaling = Literal["none", "locomotion", "antmaze"]


@dataclass(frozen=True, eq=False)
class Transforms:
    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_low: np.ndarray
    action_high: np.ndarray
    reward_scale: float = 1.0
    reward_shift: float = 0.0

    # -- fitting ----------------------------------------------------------------------------------------------
    @staticmethod
    def fit(
        dataset: Dataset,
        *,
        normalize_observations: bool,
        reward_scaling: RewardScaling = "none",
        eps: float = 1e-3,
    ) -> Transforms:
        obs = dataset.observations.astype(np.float64)
        if normalize_observations:
            mean = obs.mean(axis=0)
            std = obs.std(axis=0) + eps
        else:
            mean = np.zeros(obs.shape[1:])
            std = np.ones(obs.shape[1:])
        space = dataset.action_space
        assert space is not None
        if space.discrete:
            low = high = np.zeros(0)
        else:
            low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise DatasetError("the action space is unbounded; offrl's policies need finite action bounds")
        scale, shift = 1.0, 0.0
        if reward_scaling == "locomotion":
            returns = dataset.episode_returns()
            spread = float(returns.max() - returns.min())
            if spread <= 0:
                raise DatasetError(
                    "locomotion reward scaling divides by (max - min episode return), which is 0 here: every "
                    "episode has the same return. Use reward_scaling='none'"
                )
            scale = 1000.0 / spread
        elif reward_scaling == "antmaze":
            shift = -1.0
        elif reward_scaling != "none":
            raise ValueError(f"unknown reward_scaling {reward_scaling!r}; use none, locomotion or antmaze")
        return Transforms(mean.astype(FLOAT), std.astype(FLOAT), low.astype(FLOAT), high.astype(FLOAT), scale, shift)

    # -- applying ---------------------------------------------------------------------------------------------
    def normalize_observations(self, obs: Any) -> Any:
        """``(obs - mean) / std`` for numpy or jax arrays of shape ``[..., *obs_shape]``."""
        return (obs - self.obs_mean) / self.obs_std

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        if self.action_low.size == 0:
            return actions
        scaled = 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0
        return np.clip(scaled, -1.0, 1.0).astype(FLOAT)

    def denormalize_actions(self, actions: Any) -> Any:
        """Map policy actions in [-1, 1] back to the task's bounds (numpy or jax)."""
        if self.action_low.size == 0:
            return actions
        return self.action_low + (actions + 1.0) * 0.5 * (self.action_high - self.action_low)

    def apply(self, dataset: Dataset) -> dict[str, np.ndarray]:
        """The training arrays of ``dataset`` as the algorithm sees them."""
        return {
            "observations": self.normalize_observations(dataset.observations).astype(FLOAT),
            "actions": self.normalize_actions(dataset.actions),
            "rewards": (dataset.rewards * self.reward_scale + self.reward_shift).astype(FLOAT),
            "terminals": dataset.terminals.astype(FLOAT),
            "next_observations": self.normalize_observations(dataset.next_observations).astype(FLOAT),
        }

    # -- serialisation ----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "obs_mean": self.obs_mean.tolist(),
            "obs_std": self.obs_std.tolist(),
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "reward_scale": self.reward_scale,
            "reward_shift": self.reward_shift,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Transforms:
        return Transforms(
            np.asarray(d["obs_mean"], FLOAT),
            np.asarray(d["obs_std"], FLOAT),
            np.asarray(d["action_low"], FLOAT),
            np.asarray(d["action_high"], FLOAT),
            float(d["reward_scale"]),
            float(d["reward_shift"]),
        )
