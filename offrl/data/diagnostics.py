"""Dataset measures before any training (Schweighofer et al., "A Dataset Perspective on Offline Reinforcement
Learning", CoLLAs 2022, arXiv:2111.04714; official code github.com/kschweig/OfflineRL,
``source/offline_ds_evaluation/evaluator.py``).

- **TQ**, trajectory quality: the mean episode return, normalised between a random policy's return (0) and the
  best return (1). The paper's best return is the best one its behavioural agent reached while training online;
  offrl uses the task's expert reference return (``offrl.envs.registry``), so TQ is the dataset's mean normalised
  score / 100.
- **SACo**, state-action coverage: the number of unique (state, action) pairs in the dataset over the number in a
  reference dataset (the paper's reference is the full replay buffer of an online run; pass ``reference``).
  Continuous values are made discrete as in the official code: every dimension of the state and of the action is cut
  into ``bins`` (100) equal bins between the reference data's minimum and maximum (values outside fall into the
  outer bins); a discrete action is its own bin. offrl counts the unique bin tuples exactly (the paper uses a
  HyperLogLog sketch with 1% error). Without a reference, the dataset is its own (SACo = 1) and only the count is
  informative. ``log_saco`` is the paper's log variant, log(u) / log(u_ref).
- Also: episode returns and lengths, and per-dimension coverage of states and actions (the share of the bins a
  dimension's values occupy).

The paper's findings: BC is competitive with the best offline RL methods when TQ is high; off-policy Q-learning
methods need high SACo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offrl.data.dataset import Dataset

BINS = 100


@dataclass(frozen=True)
class Bounds:
    """Per-dimension ranges the bins span (from the reference data)."""

    observation_low: np.ndarray
    observation_high: np.ndarray
    action_low: np.ndarray | None  # None: discrete actions
    action_high: np.ndarray | None

    @staticmethod
    def of(dataset: Dataset) -> Bounds:
        obs = dataset.observations.reshape(dataset.size, -1)
        if dataset.discrete:
            return Bounds(obs.min(0), obs.max(0), None, None)
        actions = dataset.actions.reshape(dataset.size, -1)
        return Bounds(obs.min(0), obs.max(0), actions.min(0), actions.max(0))


@dataclass(frozen=True)
class DatasetMeasures:
    transitions: int
    episodes: int
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    tq: float | None  # None without reference returns
    unique_state_actions: int
    reference_unique_state_actions: int
    saco: float
    log_saco: float
    state_coverage: np.ndarray  # per observation dimension: the share of its bins that hold data
    action_coverage: np.ndarray  # per action dimension (discrete: the share of actions taken)
    bins: int

    def summary(self) -> dict[str, float | int | None]:
        return {
            "transitions": self.transitions,
            "episodes": self.episodes,
            "return_mean": float(self.episode_returns.mean()),
            "return_std": float(self.episode_returns.std()),
            "length_mean": float(self.episode_lengths.mean()),
            "tq": self.tq,
            "saco": self.saco,
            "log_saco": self.log_saco,
            "unique_state_actions": self.unique_state_actions,
            "reference_unique_state_actions": self.reference_unique_state_actions,
            "state_coverage_mean": float(self.state_coverage.mean()),
            "action_coverage_mean": float(self.action_coverage.mean()),
            "bins": self.bins,
        }


def digitise(values: np.ndarray, low: np.ndarray, high: np.ndarray, bins: int) -> np.ndarray:
    """Bin indices in [0, bins) per dimension, equal bins between ``low`` and ``high`` (a constant dimension is one
    bin; values outside the range go to the outer bins)."""
    span = np.where(high > low, high - low, 1.0)
    index = np.floor((values - low) / span * bins).astype(np.int64)
    return np.clip(index, 0, bins - 1)


def state_action_bins(dataset: Dataset, bounds: Bounds, bins: int) -> np.ndarray:
    """``[N, d_obs + d_act]`` integer bin tuples of the rows (a discrete action keeps its index)."""
    obs = digitise(
        dataset.observations.reshape(dataset.size, -1), bounds.observation_low, bounds.observation_high, bins
    )
    if bounds.action_low is None:
        actions = dataset.actions.reshape(dataset.size, 1).astype(np.int64)
    else:
        flat = dataset.actions.reshape(dataset.size, -1)
        actions = digitise(flat, bounds.action_low, bounds.action_high, bins)
    return np.concatenate([obs, actions], axis=1)


def count_unique_rows(rows: np.ndarray) -> int:
    if len(rows) == 0:
        return 0
    contiguous = np.ascontiguousarray(rows.astype(np.int32))
    return int(np.unique(contiguous.view(np.dtype((np.void, contiguous.dtype.itemsize * contiguous.shape[1])))).size)


def coverage(indices: np.ndarray, bins: int) -> np.ndarray:
    """Per column: the share of its ``bins`` bins that hold at least one row."""
    return np.array([np.unique(indices[:, j]).size / bins for j in range(indices.shape[1])])


def measure(
    dataset: Dataset,
    *,
    reference: Dataset | None = None,
    random_return: float | None = None,
    best_return: float | None = None,
    bins: int = BINS,
) -> DatasetMeasures:
    """TQ, SACo and the episode statistics of ``dataset``. TQ needs ``random_return`` and ``best_return`` (e.g. the
    task's reference returns); SACo counts relative to ``reference`` (default: the dataset itself), binned over the
    reference's ranges."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    reference = dataset if reference is None else reference
    if (
        reference.observation_shape != dataset.observation_shape
        or reference.discrete != dataset.discrete
        or reference.actions.shape[1:] != dataset.actions.shape[1:]
    ):
        raise ValueError(
            f"the reference dataset's spaces differ from the dataset's: observations {reference.observation_shape} vs "
            f"{dataset.observation_shape}, discrete actions {reference.discrete} vs {dataset.discrete}, actions "
            f"{reference.actions.shape[1:]} vs {dataset.actions.shape[1:]} per row"
        )
    bounds = Bounds.of(reference)
    rows = state_action_bins(dataset, bounds, bins)
    unique = count_unique_rows(rows)
    reference_unique = unique if reference is dataset else count_unique_rows(state_action_bins(reference, bounds, bins))
    returns = dataset.episode_returns()
    starts, ends = dataset.episode_starts, dataset.episode_ends
    tq = None
    if random_return is not None and best_return is not None:
        if best_return == random_return:
            raise ValueError("best_return equals random_return: TQ is undefined")
        tq = float((returns.mean() - random_return) / (best_return - random_return))
    obs_dims = int(np.prod(dataset.observation_shape))
    if dataset.discrete:
        action_coverage = np.array([np.unique(dataset.actions).size / dataset.action_space.n])
    else:
        action_coverage = coverage(rows[:, obs_dims:], bins)
    return DatasetMeasures(
        transitions=dataset.size,
        episodes=dataset.num_episodes,
        episode_returns=returns,
        episode_lengths=ends - starts + 1,
        tq=tq,
        unique_state_actions=unique,
        reference_unique_state_actions=reference_unique,
        saco=unique / max(reference_unique, 1),
        log_saco=float(np.log(max(unique, 1)) / np.log(reference_unique)) if reference_unique > 1 else 1.0,
        state_coverage=coverage(rows[:, :obs_dims], bins),
        action_coverage=action_coverage,
        bins=bins,
    )
