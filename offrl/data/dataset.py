"""The one dataset type of offrl, and its validation.

A :class:`Dataset` is a flat table of transitions ``(s, a, r, s', terminal, timeout)`` in the order they were
logged. Episodes are contiguous runs of rows; an episode ends at a row whose ``terminals`` or ``timeouts`` flag is
set.

Terminal and timeout mean different things everywhere in offrl:

- ``terminals[t]``: the environment really ended (the robot fell). The value of ``s'`` is zero: TD targets stop here.
- ``timeouts[t]``: the episode was cut (time limit, end of logging). ``s'`` still has a value: TD targets bootstrap
  through it.

When both are set, terminal wins (the environment ended, whatever the clock said).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLOAT = np.float32


class DatasetError(ValueError):
    """A dataset failed validation. ``problems`` lists every problem found, each naming the field and the fix."""

    def __init__(self, problems: list[str] | str, source: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid dataset{where}:\n{lines}")


@dataclass(frozen=True)
class ActionSpace:
    """What the actions of a dataset are: ``discrete`` with ``n`` choices, or a continuous box ``[low, high]``."""

    discrete: bool
    shape: tuple[int, ...] = ()
    n: int = 0
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @staticmethod
    def box(low: np.ndarray | float, high: np.ndarray | float, shape: tuple[int, ...]) -> ActionSpace:
        low_a = np.broadcast_to(np.asarray(low, dtype=np.float64), shape).ravel()
        high_a = np.broadcast_to(np.asarray(high, dtype=np.float64), shape).ravel()
        return ActionSpace(False, tuple(shape), 0, tuple(map(float, low_a)), tuple(map(float, high_a)))

    @staticmethod
    def categorical(n: int) -> ActionSpace:
        return ActionSpace(True, (), int(n))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> ActionSpace:
        return ActionSpace(bool(d["discrete"]), tuple(d["shape"]), int(d["n"]), tuple(d["low"]), tuple(d["high"]))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Logged transitions, validated on construction.

    Attributes:
        observations: ``[N, *obs_shape]`` float32.
        actions: ``[N, action_dim]`` float32 (continuous) or ``[N]`` int64 (discrete).
        rewards: ``[N]`` float32.
        terminals: ``[N]`` bool, true termination (no bootstrap).
        timeouts: ``[N]`` bool, truncation (bootstrap through).
        next_observations: ``[N, *obs_shape]`` float32.
        action_space: the action space; inferred from the data when not given (a box from the min/max action).
        costs: optional ``[N]`` float32 safety costs.
        extras: optional extra per-transition columns, each of length N.
        metadata: free-form JSON-serialisable facts (env id, behaviour policy, source file, ...).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    next_observations: np.ndarray
    action_space: ActionSpace | None = None
    costs: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = structural_problems(self)
        if problems:
            raise DatasetError(problems, self.metadata.get("source"))
        if self.action_space is None:
            object.__setattr__(self, "action_space", _infer_action_space(self.actions))
        for name in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations"):
            getattr(self, name).setflags(write=False)
        problems = content_problems(self)
        if problems:
            raise DatasetError(problems, self.metadata.get("source"))

    # ----------------------------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return int(self.rewards.shape[0])

    def __len__(self) -> int:
        return self.size

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def discrete(self) -> bool:
        assert self.action_space is not None
        return self.action_space.discrete

    @property
    def episode_ends(self) -> np.ndarray:
        """Row indices where an episode ends (terminal or timeout). The last row always ends an episode."""
        ends = self.terminals | self.timeouts  # a new array: safe to set its last entry
        ends[-1] = True
        return np.flatnonzero(ends)

    @property
    def episode_starts(self) -> np.ndarray:
        ends = self.episode_ends
        return np.concatenate([[0], ends[:-1] + 1])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_ends.shape[0])

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, in order."""
        sums = np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts)
        return sums

    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts + 1

    def fingerprint(self) -> str:
        """sha256 of the array contents (independent of the file format the data came from)."""
        h = hashlib.sha256()
        for name in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations"):
            arr = np.ascontiguousarray(getattr(self, name))
            h.update(name.encode())
            h.update(str(arr.dtype).encode())
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        if self.costs is not None:
            h.update(b"costs")
            h.update(np.ascontiguousarray(self.costs).tobytes())
        return h.hexdigest()

    def replace(self, **changes: Any) -> Dataset:
        return dataclasses.replace(self, **changes)

    def first_episodes(self, n: int) -> Dataset:
        """The first ``n`` episodes (all of them if there are fewer), e.g. a few expert demonstrations."""
        if n < 1:
            raise ValueError(f"first_episodes needs n >= 1, got {n}")
        end = int(self.episode_ends[min(n, self.num_episodes) - 1]) + 1  # row end - 1 ends an episode already
        if end == self.size:
            return self
        return self.replace(
            observations=self.observations[:end],
            actions=self.actions[:end],
            rewards=self.rewards[:end],
            terminals=self.terminals[:end],
            timeouts=self.timeouts[:end],
            next_observations=self.next_observations[:end],
            costs=None if self.costs is None else self.costs[:end],
            extras={k: v[:end] for k, v in self.extras.items()},
        )


# ----------------------------------------------------------------------------------------------------------------
# Validation. Structural problems (shapes, dtypes) make the other checks meaningless, so they are reported first.

_REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def structural_problems(ds: Dataset) -> list[str]:
    problems: list[str] = []
    for name in _REQUIRED:
        value = getattr(ds, name)
        if value is None:
            problems.append(f"`{name}` is missing; every dataset needs {', '.join(_REQUIRED)}")
        elif not isinstance(value, np.ndarray):
            problems.append(f"`{name}` must be a numpy array, got {type(value).__name__}")
        elif value.dtype == object:
            problems.append(
                f"`{name}` is an object array (ragged or mixed data); convert it to a numeric array of "
                "equal-length rows"
            )
    if problems:
        return problems
    n = ds.rewards.shape[0] if ds.rewards.ndim >= 1 else -1
    expectations = {
        "observations": (FLOAT, None),
        "next_observations": (FLOAT, None),
        "rewards": (FLOAT, 1),
        "terminals": (np.bool_, 1),
        "timeouts": (np.bool_, 1),
    }
    for name, (dtype, rank) in expectations.items():
        value = getattr(ds, name)
        if value.dtype != dtype:
            problems.append(f"`{name}` has dtype {value.dtype}, expected {np.dtype(dtype)}; cast it with .astype()")
        if rank is not None and value.ndim != rank:
            problems.append(f"`{name}` has shape {value.shape}, expected a vector [N]; flatten it")
    if ds.observations.ndim < 2:
        problems.append(f"`observations` has shape {ds.observations.shape}, expected [N, obs_dim]; add a feature axis")
    if ds.next_observations.shape[1:] != ds.observations.shape[1:]:
        problems.append(
            f"`next_observations` has shape {ds.next_observations.shape} but `observations` has "
            f"{ds.observations.shape}; they must match"
        )
    if ds.actions.dtype.kind in "iu":
        if ds.actions.ndim != 1:
            problems.append(
                f"`actions` are integers (discrete) with shape {ds.actions.shape}; expected a vector [N] of indices"
            )
    elif ds.actions.dtype == FLOAT:
        if ds.actions.ndim != 2:
            problems.append(f"`actions` has shape {ds.actions.shape}, expected [N, action_dim]")
    else:
        problems.append(f"`actions` has dtype {ds.actions.dtype}; use float32 (continuous) or int64 (discrete indices)")
    columns: dict[str, np.ndarray] = {name: getattr(ds, name) for name in _REQUIRED}
    if ds.costs is not None:
        columns["costs"] = ds.costs
    columns.update({f"extras[{k!r}]": v for k, v in ds.extras.items()})
    lengths = {name: (v.shape[0] if v.ndim else 0) for name, v in columns.items()}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in lengths.items())
        problems.append(f"columns have different lengths ({listing}); every column needs one row per transition")
    elif n == 0:
        problems.append("the dataset is empty (0 transitions)")
    if ds.costs is not None and (ds.costs.dtype != FLOAT or ds.costs.ndim != 1):
        problems.append(f"`costs` has dtype {ds.costs.dtype} and shape {ds.costs.shape}; expected float32 [N]")
    return problems


def content_problems(ds: Dataset) -> list[str]:
    problems: list[str] = []
    for name in ("observations", "next_observations", "rewards") + (("actions",) if not ds.discrete else ()):
        value = getattr(ds, name)
        bad = ~np.isfinite(value)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(value.shape[0], -1).any(axis=1))
            problems.append(
                f"`{name}` has {int(bad.sum())} non-finite values (NaN or inf), first at row {int(rows[0])}; "
                "remove or repair those transitions"
            )
    if ds.costs is not None and not np.isfinite(ds.costs).all():
        problems.append("`costs` has non-finite values (NaN or inf); remove or repair those transitions")
    if not (ds.terminals.any() or ds.timeouts.any()):
        problems.append(
            "no episode end: neither `terminals` nor `timeouts` is set anywhere; mark where episodes end "
            "(timeouts for time limits, terminals for true termination)"
        )
    space = ds.action_space
    assert space is not None
    if space.discrete:
        if ds.actions.size and (ds.actions.min() < 0 or ds.actions.max() >= space.n):
            problems.append(
                f"`actions` hold indices in [{ds.actions.min()}, {ds.actions.max()}] outside the {space.n} "
                "discrete choices of the action space"
            )
    else:
        if tuple(ds.actions.shape[1:]) != space.shape:
            problems.append(
                f"`actions` have shape {ds.actions.shape[1:]} per row but the action space has shape {space.shape}"
            )
        elif np.isfinite(ds.actions).all():
            low = np.asarray(space.low, dtype=np.float64)
            high = np.asarray(space.high, dtype=np.float64)
            tol = 1e-5 * np.maximum(1.0, np.abs(high - low))
            outside = (ds.actions < low - tol) | (ds.actions > high + tol)
            if outside.any():
                row = int(np.flatnonzero(outside.any(axis=1))[0])
                problems.append(
                    f"`actions` has {int(outside.any(axis=1).sum())} rows outside the action bounds "
                    f"[{list(space.low)}, {list(space.high)}], first at row {row} ({ds.actions[row].tolist()}); "
                    "clip them or pass the right action space"
                )
    return problems


def _infer_action_space(actions: np.ndarray) -> ActionSpace:
    if actions.dtype.kind in "iu":
        return ActionSpace.categorical(int(actions.max()) + 1 if actions.size else 1)
    low = actions.min(axis=0) if actions.size else np.zeros(actions.shape[1:])
    high = actions.max(axis=0) if actions.size else np.zeros(actions.shape[1:])
    # Data gathered with a tanh policy lives in [-1, 1]; the common case is recognised, anything else is taken as is.
    if np.all(low >= -1.0) and np.all(high <= 1.0):
        low, high = -np.ones_like(low), np.ones_like(high)
    return ActionSpace.box(low, high, tuple(actions.shape[1:]))


def concatenate(datasets: list[Dataset]) -> Dataset:
    """One dataset holding the rows of several, in order (D4RL's medium-expert is medium + expert).

    Every part's last row ends an episode: a row that is neither terminal nor timeout becomes a timeout (the log was
    cut there), so no episode runs across two parts. Observation shapes and action kinds must agree; continuous
    action boxes are joined (lowest low, highest high), discrete ones take the larger ``n``. Costs are kept when every
    part has them, extra columns when every part has the column.
    """
    if not datasets:
        raise DatasetError("concatenate needs at least one dataset")
    first = datasets[0]
    problems = []
    for i, ds in enumerate(datasets[1:], start=1):
        if ds.observation_shape != first.observation_shape:
            problems.append(
                f"observations: part {i} has shape {ds.observation_shape}, part 0 {first.observation_shape}"
            )
        if ds.discrete != first.discrete or ds.actions.shape[1:] != first.actions.shape[1:]:
            problems.append(
                f"actions: part {i} ({ds.actions.dtype}, {ds.actions.shape[1:]}) does not match part 0 "
                f"({first.actions.dtype}, {first.actions.shape[1:]})"
            )
    if problems:
        raise DatasetError(problems, "concatenate")
    sources = [str(ds.metadata.get("source", f"part {i}")) for i, ds in enumerate(datasets)]
    timeouts = []
    for ds in datasets:
        t = np.array(ds.timeouts)
        t[-1] = t[-1] or not ds.terminals[-1]
        timeouts.append(t)
    spaces = [ds.action_space for ds in datasets]
    assert all(s is not None for s in spaces)
    if first.discrete:
        space = ActionSpace.categorical(max(s.n for s in spaces))  # type: ignore[union-attr]
    else:
        low = np.min([s.low for s in spaces], axis=0)  # type: ignore[union-attr]
        high = np.max([s.high for s in spaces], axis=0)  # type: ignore[union-attr]
        space = ActionSpace.box(low, high, first.actions.shape[1:])
    extras = {
        k: np.concatenate([ds.extras[k] for ds in datasets])
        for k in first.extras
        if all(k in ds.extras and ds.extras[k].shape[1:] == first.extras[k].shape[1:] for ds in datasets)
    }
    costs = None
    if all(ds.costs is not None for ds in datasets):
        costs = np.concatenate([ds.costs for ds in datasets])  # type: ignore[misc]
    return Dataset(
        observations=np.concatenate([ds.observations for ds in datasets]),
        actions=np.concatenate([ds.actions for ds in datasets]),
        rewards=np.concatenate([ds.rewards for ds in datasets]),
        terminals=np.concatenate([ds.terminals for ds in datasets]),
        timeouts=np.concatenate(timeouts),
        next_observations=np.concatenate([ds.next_observations for ds in datasets]),
        action_space=space,
        costs=costs,
        extras=extras,
        metadata={**first.metadata, "source": " + ".join(sources), "concatenated_from": sources},
    )


def check_against_spaces(ds: Dataset, observation_shape: tuple[int, ...], action_space: ActionSpace) -> None:
    """Raise :class:`DatasetError` when the dataset does not fit an evaluation task's spaces."""
    problems: list[str] = []
    if ds.observation_shape != tuple(observation_shape):
        problems.append(
            f"observations have shape {ds.observation_shape} per row but the task's observation space has shape "
            f"{tuple(observation_shape)}; use the dataset's own task or a matching one"
        )
    assert ds.action_space is not None
    if action_space.discrete != ds.action_space.discrete:
        kind = "discrete" if ds.action_space.discrete else "continuous"
        problems.append(f"the dataset's actions are {kind} but the task's are not")
    elif action_space.discrete:
        if ds.action_space.n > action_space.n:
            problems.append(f"the dataset uses {ds.action_space.n} discrete actions but the task has {action_space.n}")
    else:
        if ds.action_space.shape != action_space.shape:
            problems.append(
                f"actions have shape {ds.action_space.shape} but the task's action space has shape "
                f"{action_space.shape}; use the dataset's own task or a matching one"
            )
        else:
            low = np.asarray(action_space.low)
            high = np.asarray(action_space.high)
            tol = 1e-5 * np.maximum(1.0, np.abs(high - low))
            outside = (ds.actions < low - tol) | (ds.actions > high + tol)
            if outside.any():
                problems.append(
                    f"`actions` has {int(outside.any(axis=1).sum())} rows outside the task's action bounds "
                    f"[{action_space.low}, {action_space.high}]; the dataset was logged on another task or scale"
                )
    if problems:
        raise DatasetError(problems, ds.metadata.get("source"))


def next_observation_mismatches(ds: Dataset, atol: float = 1e-5) -> int:
    """Rows inside an episode whose ``next_observations`` differ from the following row's ``observations``."""
    if ds.size < 2:
        return 0
    ends = ds.terminals | ds.timeouts
    inside = ~ends[:-1]
    diff = np.abs(ds.next_observations[:-1] - ds.observations[1:]).reshape(ds.size - 1, -1).max(axis=1)
    return int(((diff > atol) & inside).sum())


def as_float32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=FLOAT)
