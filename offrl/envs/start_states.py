"""Online episodes that start from states along successful logged trajectories: the transferable idea of PrefixRL
(Setlur et al. 2026, "Reuse your FLOPs: Scaling RL on Hard Problems by Conditioning on Very Off-Policy Prefixes").

PrefixRL conditions on-policy RL on prefixes of successful off-policy traces: the prefix is given, the policy
acts from its end, and only its own continuation is trained on. For a simulator that can be set to a recorded
state this is a reset distribution: a share of the online episodes begins at a state along one of the dataset's
most successful episodes (its simulator state, ``infos/qpos`` and ``infos/qvel`` as D4RL-layout files carry them),
the rest at the environment's own initial states. Evaluation episodes always start normally, so a score measures
the policy from the usual start (the paper's "back-generalisation").

Which episodes count as successful: the ``top_fraction`` with the highest returns. Which states along them:
uniformly over each episode's first ``max_prefix`` share of steps (late states of an episode that ends by falling
over are not worth starting from). The choice for an episode depends only on the seed and the episode's index, so
runs that use it resume exactly.

The paper is about language models (no code was published); this is the general mechanism its notes single out
as worth having, not a reproduction of its experiments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from offrl.data.dataset import Dataset

STATE_COLUMNS = ("infos/qpos", "infos/qvel")


@dataclass(frozen=True)
class PrefixStarts:
    qpos: np.ndarray  # [K, nq] candidate start states
    qvel: np.ndarray  # [K, nv]
    observations: np.ndarray  # [K, *obs] the logged observation at each (for checks)
    fraction: float  # share of online episodes started from one of them

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"the share of episodes started from logged states must be in (0, 1], got {self.fraction}")
        if len(self.qpos) == 0:
            raise ValueError("no logged start states to choose from")

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, fraction: float, top_fraction: float = 0.1, max_prefix: float = 0.9
    ) -> PrefixStarts:
        missing = [name for name in STATE_COLUMNS if name not in dataset.extras]
        if missing:
            raise ValueError(
                f"starting episodes from logged states needs the simulator state of every row ({', '.join(missing)} "
                "are missing); D4RL-layout files made by `offrl dataset make` for MuJoCo tasks carry them"
            )
        if not 0.0 < top_fraction <= 1.0 or not 0.0 < max_prefix <= 1.0:
            raise ValueError("top_fraction and max_prefix must be in (0, 1]")
        starts, ends = dataset.episode_starts, dataset.episode_ends
        returns = np.asarray([dataset.rewards[s : e + 1].sum() for s, e in zip(starts, ends, strict=True)])
        keep = max(1, int(round(top_fraction * len(returns))))
        best = np.argsort(-returns, kind="stable")[:keep]
        rows = np.concatenate(
            [np.arange(starts[i], starts[i] + max(1, int(max_prefix * (ends[i] - starts[i] + 1)))) for i in best]
        )
        return cls(
            qpos=np.asarray(dataset.extras["infos/qpos"][rows], np.float64),
            qvel=np.asarray(dataset.extras["infos/qvel"][rows], np.float64),
            observations=np.asarray(dataset.observations[rows]),
            fraction=float(fraction),
        )

    def choose(self, seed: int, episode_index: int) -> int | None:
        """The candidate state episode ``episode_index`` starts from, or ``None`` for a normal start."""
        rng = np.random.default_rng([seed, episode_index, 0x5EED])
        if rng.random() >= self.fraction:
            return None
        return int(rng.integers(len(self.qpos)))

    def apply(self, env: Any, index: int) -> np.ndarray:
        """Set a freshly reset MuJoCo environment to candidate ``index``; returns its observation there."""
        base = env.unwrapped
        if not hasattr(base, "set_state") or not hasattr(base, "_get_obs"):
            raise TypeError(f"{type(base).__name__} cannot be set to a recorded state (no set_state)")
        base.set_state(self.qpos[index], self.qvel[index])
        import mujoco

        mujoco.mj_rnePostConstraint(base.model, base.data)  # contact forces (Ant observes them) for the new state
        return np.asarray(base._get_obs(), np.float32)
