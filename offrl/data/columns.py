"""Per-transition columns derived from a dataset's episodes, for algorithms that need more than ``(s, a, r, s', d)``.

An algorithm asks for them by name (``Algorithm.extra_columns``); the offline trainer adds them to the training
arrays, computed on the rewards the algorithm sees (after reward scaling):

- ``mc_returns``: the discounted Monte-Carlo return-to-go ``sum_k gamma^k r_{t+k}`` from each row to the end of
  its episode (Cal-QL's lower bound). An episode that ends in a timeout is cut, not finished: its tail is unknown
  and counts as zero, so the value is a lower bound of the true return-to-go when rewards are non-negative,
  as Cal-QL uses it (the official code does the same on D4RL's truncated locomotion episodes).
- ``next_actions``: the dataset's action at the next row of the same episode (ReBRAC's critic penalty); at an
  episode's last row, where the next action was never logged, the row's own action.
- ``from_data``: 1.0 on every row of the dataset. Online rows get 0.0 (``offrl.train.online_columns``), so in a
  batch mixing logged data and online interaction an update can tell them apart (H2O treats real data and
  simulator transitions differently).
- ``is_expert``: 1.0 on the rows of expert demonstrations, 0.0 elsewhere (imitation from mixed data, ReCOIL). The
  offline trainer marks them when it adds ``--expert-dataset`` to the dataset (``extras["is_expert"]``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from offrl.data.dataset import Dataset


def mc_returns(dataset: Dataset, rewards: np.ndarray, discount: float) -> np.ndarray:
    out = np.empty(len(rewards), np.float64)
    for start, end in zip(dataset.episode_starts, dataset.episode_ends, strict=True):
        running = 0.0
        for t in range(end, start - 1, -1):
            running = float(rewards[t]) + discount * running
            out[t] = running
    return out.astype(np.float32)


def next_actions(dataset: Dataset, actions: np.ndarray) -> np.ndarray:
    shifted = np.concatenate([actions[1:], actions[-1:]])
    ends = dataset.episode_ends
    shifted[ends] = actions[ends]
    return shifted


def is_expert(dataset: Dataset) -> np.ndarray:
    if "is_expert" not in dataset.extras:
        raise ValueError(
            "this algorithm imitates expert demonstrations: give them with --expert-dataset "
            "(TrainConfig.expert_dataset); they are added to the dataset and marked as expert"
        )
    flags = np.asarray(dataset.extras["is_expert"], np.float32)
    if not flags.any():
        raise ValueError("the dataset marks no row as expert (extras['is_expert'] is all zero)")
    return flags


DERIVED: dict[str, Callable[[Dataset, dict[str, np.ndarray], float], np.ndarray]] = {
    "mc_returns": lambda ds, arrays, discount: mc_returns(ds, arrays["rewards"], discount),
    "next_actions": lambda ds, arrays, discount: next_actions(ds, arrays["actions"]),
    "is_expert": lambda ds, arrays, discount: is_expert(ds),
    "from_data": lambda ds, arrays, discount: np.ones(ds.size, np.float32),
}


def derived_column(name: str, dataset: Dataset, arrays: dict[str, np.ndarray], discount: float) -> np.ndarray:
    if name not in DERIVED:
        raise KeyError(f"unknown derived column {name!r}; known: {', '.join(sorted(DERIVED))}")
    return DERIVED[name](dataset, arrays, discount)
