"""Datasets from in-memory arrays: row tables with end flags, and flat logs with episode starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from offrl.data.dataset import FLOAT, ActionSpace, Dataset, DatasetError


def from_arrays(
    observations: Any,
    actions: Any,
    rewards: Any,
    terminals: Any = None,
    timeouts: Any = None,
    next_observations: Any = None,
    *,
    action_space: ActionSpace | None = None,
    costs: Any = None,
    extras: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    source: str = "arrays",
) -> Dataset:
    """Build a Dataset from array-likes, casting numeric data to offrl's dtypes.

    Missing ``terminals`` or ``timeouts`` are all-False. Missing ``next_observations`` are derived as
    ``observations[t + 1]``; rows whose successor is unknown (a timeout or the final row) are then dropped. Object
    and string arrays are rejected, never coerced.
    """
    meta = {"source": source, **(metadata or {})}
    arrays = {"observations": observations, "actions": actions, "rewards": rewards}
    problems = []
    converted: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if value is None:
            problems.append(f"`{name}` is missing")
            continue
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind in "USV":
            problems.append(f"`{name}` has non-numeric dtype {arr.dtype}; store numbers only")
            continue
        converted[name] = arr
    if problems:
        raise DatasetError(problems, source)
    obs = converted["observations"].astype(FLOAT, copy=False)
    if obs.ndim == 1:
        obs = obs[:, None]
    act = converted["actions"]
    if act.dtype.kind in "iu" and act.ndim == 2 and act.shape[1] == 1:
        act = act[:, 0]  # discrete indices stored as a column
    act = act.astype(np.int64, copy=False) if act.dtype.kind in "iu" and act.ndim == 1 else act.astype(FLOAT)
    if act.dtype == FLOAT and act.ndim == 1:
        act = act[:, None]
    rew = converted["rewards"].astype(FLOAT, copy=False)
    if rew.ndim == 2 and rew.shape[1] == 1:
        rew = rew[:, 0]  # rewards stored as a column
    n = rew.shape[0] if rew.ndim else 0
    term = np.zeros(n, bool) if terminals is None else as_flags(terminals, "terminals", source)
    tout = np.zeros(n, bool) if timeouts is None else as_flags(timeouts, "timeouts", source)
    cost = None if costs is None else np.asarray(costs).astype(FLOAT, copy=False)
    extra = {k: np.asarray(v) for k, v in (extras or {}).items()}
    if next_observations is None:
        if not (obs.shape[0] == act.shape[0] == n == term.shape[0] == tout.shape[0]):
            raise DatasetError(
                f"columns have different lengths (observations={obs.shape[0]}, actions={act.shape[0]}, "
                f"rewards={n}, terminals={term.shape[0]}, timeouts={tout.shape[0]})",
                source,
            )
        if n == 0:
            raise DatasetError("the dataset is empty (0 transitions)", source)
        # The successor of row t is row t + 1, except where an episode ends. At a terminal the successor is never
        # used (filled with the row's own observation); after a timeout or the final row it is unknown, so that row
        # is dropped and the row before it becomes the cut (timeout) end of its episode.
        next_obs = np.concatenate([obs[1:], obs[-1:]], axis=0)
        next_obs[term] = obs[term]
        unknown = tout & ~term
        unknown[-1] = unknown[-1] or not term[-1]
        before = np.flatnonzero(unknown) - 1
        before = before[(before >= 0) & ~term[np.maximum(before, 0)]]
        tout = tout.copy()
        tout[before] = True
        keep = ~unknown
        if not keep.any():
            raise DatasetError(
                f"the dataset is empty after deriving next observations: none of its {n} rows has a known successor "
                "(each is a timeout or the last row; a row's successor is the next row of the same episode). Mark "
                "true episode ends as terminals, or supply next_observations",
                source,
            )
        obs, next_obs, act, rew, term, tout = obs[keep], next_obs[keep], act[keep], rew[keep], term[keep], tout[keep]
        cost = None if cost is None else cost[keep]
        extra = {k: v[keep] for k, v in extra.items()}
    else:
        next_obs = np.asarray(next_observations).astype(FLOAT, copy=False)
        if next_obs.ndim == 1:
            next_obs = next_obs[:, None]
    return Dataset(
        observations=obs,
        actions=act,
        rewards=rew,
        terminals=term,
        timeouts=tout,
        next_observations=next_obs,
        action_space=action_space,
        costs=cost,
        extras=extra,
        metadata=meta,
    )


def as_flags(value: Any, name: str, source: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise DatasetError(f"`{name}` has non-numeric dtype {arr.dtype}; use booleans or 0/1", source)
    arr = arr.reshape(-1) if arr.ndim == 2 and arr.shape[-1] == 1 else arr
    if arr.dtype != np.bool_:
        bad = ~np.isin(arr, (0, 1))
        if bad.any():
            first = np.argwhere(bad)[0]
            where = f"row {int(first[0])}" if arr.ndim == 1 else f"index {tuple(int(i) for i in first)}"
            raise DatasetError(
                f"`{name}` must hold only 0/1 or booleans; {int(bad.sum())} entries do not, first at {where} "
                f"({arr[tuple(first)].item()!r})",
                source,
            )
        arr = arr.astype(bool)
    return arr


def from_flat_episodes(
    obs: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    episode_starts: np.ndarray,
    *,
    episode_returns: np.ndarray | None = None,
    max_episode_steps: int | None,
    source: str = "flat episodes",
) -> Dataset:
    """Turn a flat log (one row per step, ``episode_starts`` true at each episode's first step) into a Dataset.

    The rule, since such logs record neither successor observations nor why an episode ended:

    1. Episode k is the rows ``[start_k, start_{k+1})``. ``next_observations[t] = obs[t + 1]`` inside an episode.
    2. An episode shorter than ``max_episode_steps`` ended by **termination**: its last row is kept with
       ``terminals = True`` (its successor is never used, since TD targets stop there; it is filled with the row's
       own observation).
    3. An episode that reached ``max_episode_steps`` was **truncated** by the time limit. So was the file's last
       episode when ``episode_returns`` lists fewer episodes than the file starts (logging stopped mid-episode). A
       truncated episode's last row would need the unseen successor to bootstrap, so that row is dropped and the row
       before it is marked ``timeouts = True``.

    Args:
        max_episode_steps: the task's time limit. Required: without it, the reason of an episode end is unknown.
    """
    if max_episode_steps is None:
        raise DatasetError(
            "the flat episode layout does not say whether an episode ended by termination or by the time limit; "
            "pass max_episode_steps (or a known task, e.g. --task pendulum)",
            source,
        )
    starts_flag = as_flags(episode_starts, "episode_starts", source)
    n = starts_flag.shape[0]
    if not (np.shape(obs)[0] == np.shape(actions)[0] == np.shape(rewards)[0] == n):
        raise DatasetError(
            f"columns have different lengths (obs={np.shape(obs)[0]}, actions={np.shape(actions)[0]}, "
            f"rewards={np.shape(rewards)[0]}, episode_starts={n})",
            source,
        )
    if n == 0:
        raise DatasetError("the dataset is empty (0 transitions)", source)
    if not starts_flag[0]:
        raise DatasetError("`episode_starts` must be True at row 0 (the first step of the first episode)", source)
    starts = np.flatnonzero(starts_flag)
    ends = np.concatenate([starts[1:] - 1, [n - 1]])
    lengths = ends - starts + 1
    truncated = lengths >= max_episode_steps
    if episode_returns is not None and len(episode_returns) < len(starts):
        truncated[-1] = True
    # Mark each episode's last row by how it ended; from_arrays then applies the same successor rule as for any
    # row table: next row inside an episode, own observation at a terminal, cut rows dropped before a timeout.
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[ends[~truncated]] = True
    timeouts[ends[truncated]] = True
    meta = {
        "source": source,
        "derived": "flat episodes: next_observations from the next row; episodes shorter than "
        f"max_episode_steps={max_episode_steps} end in a terminal, truncated ones lose their last row",
    }
    return from_arrays(obs, actions, rewards, terminals, timeouts, metadata=meta, source=source)
