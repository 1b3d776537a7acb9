"""Loaders: numpy arrays, D4RL-layout HDF5, npz (offrl's own and the flat ``obs/episode_starts`` layout), Minari
dataset directories, and Parquet / CSV tables. Every loader opens files read-only and never writes to them.

``load_dataset(path)`` picks the loader from the file. Formats and their rules:

- **offrl npz** (``save_dataset``): the Dataset columns plus a JSON header; loaded with ``allow_pickle=False``.
- **D4RL HDF5**: ``observations, actions, rewards, terminals, timeouts`` and, when present, ``next_observations``.
  Without ``next_observations``, the successor of row t is row t+1; rows whose successor is unknown (a timeout, or
  the last row) are dropped, as D4RL's ``qlearning_dataset`` does.
- **flat npz** (``obs, actions, rewards, episode_starts``, optionally ``episode_returns``): see
  :func:`from_flat_episodes` for how next observations and end flags are derived.
- **Minari**: a dataset directory holding ``data/main_data.hdf5`` with one ``episode_{i}`` group per episode
  (``observations`` has one row more than ``actions``; ``terminations`` and ``truncations`` per step).
- **tables** (``.parquet``, ``.csv``): one row per transition; a :class:`ColumnMapping` says which columns hold
  what. Next observations come from the next row of the same episode (the last row of an episode is dropped unless
  the table has next-observation columns).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offrl.data.dataset import FLOAT, ActionSpace, Dataset, DatasetError

FORMAT_NAME = "offrl-dataset"
FORMAT_VERSION = 1


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, or of every file under a directory (sorted by relative path)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Arrays


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
    term = np.zeros(n, bool) if terminals is None else _as_flags(terminals, "terminals", source)
    tout = np.zeros(n, bool) if timeouts is None else _as_flags(timeouts, "timeouts", source)
    cost = None if costs is None else np.asarray(costs).astype(FLOAT, copy=False)
    extra = {k: np.asarray(v) for k, v in (extras or {}).items()}
    if next_observations is None:
        if not (obs.shape[0] == act.shape[0] == n == term.shape[0] == tout.shape[0]):
            raise DatasetError(
                f"columns have different lengths (observations={obs.shape[0]}, actions={act.shape[0]}, "
                f"rewards={n}, terminals={term.shape[0]}, timeouts={tout.shape[0]})",
                source,
            )
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


def _as_flags(value: Any, name: str, source: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise DatasetError(f"`{name}` has non-numeric dtype {arr.dtype}; use booleans or 0/1", source)
    arr = arr.reshape(-1) if arr.ndim == 2 and arr.shape[-1] == 1 else arr
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise DatasetError(f"`{name}` must hold only 0/1 or booleans", source)
        arr = arr.astype(bool)
    return arr


# ----------------------------------------------------------------------------------------------------------------
# offrl's own format


def save_dataset(dataset: Dataset, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Write ``dataset`` in offrl's own npz format (atomically) and return the file's sha256.

    Refuses to replace an existing file unless ``overwrite`` is set.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    assert dataset.action_space is not None
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "action_space": dataset.action_space.to_json(),
        "metadata": _jsonable(dataset.metadata),
        "extras": sorted(dataset.extras),
        "has_costs": dataset.costs is not None,
        "fingerprint": dataset.fingerprint(),
    }
    arrays: dict[str, np.ndarray] = {
        "observations": dataset.observations,
        "actions": dataset.actions,
        "rewards": dataset.rewards,
        "terminals": dataset.terminals,
        "timeouts": dataset.timeouts,
        "next_observations": dataset.next_observations,
        "__header__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
    }
    if dataset.costs is not None:
        arrays["costs"] = dataset.costs
    for k, v in dataset.extras.items():
        arrays[f"extras/{k}"] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, bytes):
        return obj.decode(errors="replace")
    return obj


def _open_npz(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DatasetError(f"cannot read {path} as npz ({e}); the file is corrupt or not an npz archive") from e


def _read_npz_array(z: Any, key: str, path: Path) -> np.ndarray:
    try:
        return z[key]
    except ValueError as e:  # object arrays need pickle, which offrl never enables
        raise DatasetError(
            f"`{key}` in {path} is an object array, which needs pickle to load; offrl does not load pickled "
            "data. Re-save it as a numeric array",
            str(path),
        ) from e
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DatasetError(f"`{key}` in {path} cannot be read ({e}); the file is corrupt", str(path)) from e


def load_npz(path: str | os.PathLike[str], *, max_episode_steps: int | None = None, task: str | None = None) -> Dataset:
    """Load an npz file: offrl's own format, the flat episode layout, or plain D4RL-style column names."""
    path = Path(path)
    z = _open_npz(path)
    with z:
        keys = set(z.files)
        if "__header__" in keys:
            header = json.loads(bytes(_read_npz_array(z, "__header__", path)).decode())
            if header.get("format") != FORMAT_NAME:
                raise DatasetError(f"{path} has an unknown header format {header.get('format')!r}", str(path))
            if int(header.get("version", 0)) > FORMAT_VERSION:
                raise DatasetError(
                    f"{path} was written by a newer offrl (format version {header['version']}); upgrade offrl",
                    str(path),
                )
            cols = {k: _read_npz_array(z, k, path) for k in keys if k != "__header__" and "/" not in k}
            missing = [
                k
                for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
                if k not in cols
            ]
            if missing:
                raise DatasetError(f"missing keys {missing} in {path}", str(path))
            extras = {k.split("/", 1)[1]: _read_npz_array(z, k, path) for k in keys if k.startswith("extras/")}
            meta = dict(header.get("metadata", {}))
            meta["source"] = str(path)
            return Dataset(
                observations=cols["observations"],
                actions=cols["actions"],
                rewards=cols["rewards"],
                terminals=cols["terminals"],
                timeouts=cols["timeouts"],
                next_observations=cols["next_observations"],
                action_space=ActionSpace.from_json(header["action_space"]),
                costs=cols.get("costs"),
                extras=extras,
                metadata=meta,
            )
        if {"obs", "actions", "rewards", "episode_starts"} <= keys:
            arrays = {k: _read_npz_array(z, k, path) for k in keys}
            return from_flat_episodes(
                arrays["obs"],
                arrays["actions"],
                arrays["rewards"],
                arrays["episode_starts"],
                episode_returns=arrays.get("episode_returns"),
                max_episode_steps=_time_limit(max_episode_steps, task),
                source=str(path),
            )
        if {"observations", "actions", "rewards"} <= keys:
            arrays = {k: _read_npz_array(z, k, path) for k in keys}
            return from_arrays(
                arrays["observations"],
                arrays["actions"],
                arrays["rewards"],
                arrays.get("terminals"),
                arrays.get("timeouts"),
                arrays.get("next_observations"),
                costs=arrays.get("costs"),
                source=str(path),
            )
        raise DatasetError(
            f"{path} holds keys {sorted(keys)}; expected offrl's format, D4RL-style keys "
            "(observations, actions, rewards, terminals, timeouts) or the flat layout (obs, actions, rewards, "
            "episode_starts)",
            str(path),
        )


def _time_limit(max_episode_steps: int | None, task: str | None) -> int | None:
    if max_episode_steps is not None:
        return max_episode_steps
    if task is not None:
        from offrl.envs.registry import get_task

        return get_task(task).max_episode_steps
    return None


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
    starts_flag = _as_flags(episode_starts, "episode_starts", source)
    n = starts_flag.shape[0]
    if not (np.shape(obs)[0] == np.shape(actions)[0] == np.shape(rewards)[0] == n):
        raise DatasetError(
            f"columns have different lengths (obs={np.shape(obs)[0]}, actions={np.shape(actions)[0]}, "
            f"rewards={np.shape(rewards)[0]}, episode_starts={n})",
            source,
        )
    if n == 0 or not starts_flag[0]:
        raise DatasetError("`episode_starts` must be True at row 0 (the first step of the first episode)", source)
    starts = np.flatnonzero(starts_flag)
    ends = np.concatenate([starts[1:] - 1, [n - 1]])
    lengths = ends - starts + 1
    truncated = lengths >= max_episode_steps
    if episode_returns is not None and len(episode_returns) < len(starts):
        truncated[-1] = True
    obs = np.asarray(obs)
    next_obs = np.concatenate([obs[1:], obs[-1:]], axis=0).copy()
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    keep = np.ones(n, bool)
    for start, end, cut in zip(starts, ends, truncated, strict=False):
        if cut:
            keep[end] = False
            if end > start:
                timeouts[end - 1] = True
        else:
            terminals[end] = True
            next_obs[end] = obs[end]
    meta = {
        "source": source,
        "derived": "flat episodes: next_observations from the next row; episodes shorter than "
        f"max_episode_steps={max_episode_steps} end in a terminal, truncated ones lose their last row",
    }
    return from_arrays(
        obs[keep],
        np.asarray(actions)[keep],
        np.asarray(rewards)[keep],
        terminals[keep],
        timeouts[keep],
        next_obs[keep],
        metadata=meta,
        source=source,
    )


# ----------------------------------------------------------------------------------------------------------------
# D4RL HDF5


def load_d4rl_hdf5(path: str | os.PathLike[str]) -> Dataset:
    """Load a D4RL-layout HDF5 file (read-only)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"cannot open {path} as HDF5 ({e}); the file is corrupt or not HDF5", str(path)) from e
    with f:
        required = ["observations", "actions", "rewards", "terminals"]
        missing = [k for k in required if k not in f]
        if missing:
            raise DatasetError(
                f"missing keys {missing} in {path} (found {sorted(f.keys())}); a D4RL file needs "
                "observations, actions, rewards, terminals and usually timeouts",
                str(path),
            )
        try:
            cols = {
                k: f[k][()]
                for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations", "costs")
                if k in f
            }
        except OSError as e:
            raise DatasetError(f"cannot read {path} ({e}); the file is corrupt", str(path)) from e
        meta: dict[str, Any] = {k: _jsonable(v) for k, v in f.attrs.items()}
    meta["source"] = str(path)
    if "timeouts" not in cols:
        timeouts = np.zeros(np.shape(cols["rewards"])[0], bool)
        if timeouts.size:
            timeouts[-1] = not bool(np.asarray(cols["terminals"]).reshape(-1)[-1])
        cols["timeouts"] = timeouts
    return from_arrays(
        cols["observations"],
        cols["actions"],
        cols["rewards"],
        cols["terminals"],
        cols["timeouts"],
        cols.get("next_observations"),
        costs=cols.get("costs"),
        metadata=meta,
        source=str(path),
    )


# ----------------------------------------------------------------------------------------------------------------
# Minari


def load_minari(path: str | os.PathLike[str]) -> Dataset:
    """Load a Minari dataset directory from local disk (HDF5 storage), without needing the ``minari`` package.

    ``path`` is the dataset's directory (holding ``data/``) or its ``data`` folder. Each episode group has
    ``observations`` with T+1 rows and ``actions, rewards, terminations, truncations`` with T rows, so successor
    observations are exact and nothing is dropped.
    """
    import h5py

    path = Path(path)
    data_dir = path if (path / "main_data.hdf5").exists() else path / "data"
    main = data_dir / "main_data.hdf5"
    if not main.exists():
        if (data_dir / "metadata.json").exists():
            fmt = json.loads((data_dir / "metadata.json").read_text()).get("data_format", "?")
            raise DatasetError(
                f"{path} is a Minari dataset in the {fmt!r} storage format; offrl reads the hdf5 format. "
                "Convert it with minari, or export it to Parquet and use the table loader",
                str(path),
            )
        raise DatasetError(f"{path} is not a Minari dataset directory (no data/main_data.hdf5)", str(path))
    meta: dict[str, Any] = {"source": str(path)}
    if (data_dir / "metadata.json").exists():
        info = json.loads((data_dir / "metadata.json").read_text())
        for key in ("dataset_id", "total_episodes", "total_steps", "algorithm_name"):
            if key in info:
                meta[f"minari_{key}"] = info[key]
        env_spec = info.get("env_spec")
        if isinstance(env_spec, str):
            try:
                env_spec = json.loads(env_spec)
            except json.JSONDecodeError:
                env_spec = None
        if isinstance(env_spec, dict) and isinstance(env_spec.get("id"), str):
            meta["env_id"] = env_spec["id"]
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next_obs", "act", "rew", "term", "trunc")}
    try:
        f = h5py.File(main, "r")
    except OSError as e:
        raise DatasetError(f"cannot open {main} as HDF5 ({e}); the file is corrupt", str(path)) from e
    with f:
        names = sorted((k for k in f if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not names:
            raise DatasetError(f"{main} has no episode_* groups", str(path))
        for name in names:
            ep = f[name]
            missing = [k for k in ("observations", "actions", "rewards", "terminations", "truncations") if k not in ep]
            if missing:
                raise DatasetError(f"episode group {name} of {main} lacks {missing}", str(path))
            if not isinstance(ep["observations"], h5py.Dataset):
                raise DatasetError(
                    f"{name}/observations is a nested (Dict or Tuple) space; flatten observations to an array "
                    "before loading",
                    str(path),
                )
            o = ep["observations"][()]
            a = ep["actions"][()]
            t = len(ep["rewards"])
            if o.shape[0] != t + 1:
                raise DatasetError(
                    f"{name}: observations have {o.shape[0]} rows but there are {t} steps; Minari stores T+1",
                    str(path),
                )
            columns["obs"].append(o[:-1])
            columns["next_obs"].append(o[1:])
            columns["act"].append(a)
            columns["rew"].append(ep["rewards"][()])
            term = ep["terminations"][()].astype(bool)
            trunc = ep["truncations"][()].astype(bool)
            if t and not (term[-1] or trunc[-1]):
                trunc = trunc.copy()
                trunc[-1] = True  # an episode cut short by the end of logging
            columns["term"].append(term)
            columns["trunc"].append(trunc)
    cat = {k: np.concatenate(v, axis=0) for k, v in columns.items()}
    return from_arrays(
        cat["obs"],
        cat["act"],
        cat["rew"],
        cat["term"],
        cat["trunc"],
        cat["next_obs"],
        metadata=meta,
        source=str(path),
    )


# ----------------------------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class ColumnMapping:
    """Which table columns hold which part of a transition.

    ``observations`` / ``actions`` / ``next_observations`` take a list of column names or a single prefix
    (``"obs_"`` selects ``obs_0, obs_1, ...`` in numeric order). ``episode`` names an episode-id column; without it,
    episodes are delimited by the terminal and timeout columns only.
    """

    observations: str | Sequence[str] = "obs_"
    actions: str | Sequence[str] = "action_"
    reward: str = "reward"
    terminal: str | None = "terminal"
    timeout: str | None = "timeout"
    episode: str | None = "episode"
    next_observations: str | Sequence[str] | None = None
    cost: str | None = None
    discrete_actions: bool = False


def _select_columns(spec: str | Sequence[str], header: Sequence[str], what: str, source: str) -> list[str]:
    if isinstance(spec, str):
        if spec in header:
            return [spec]
        chosen = [h for h in header if h.startswith(spec) and h[len(spec) :].isdigit()]
        chosen.sort(key=lambda h: int(h[len(spec) :]))
        if not chosen:
            raise DatasetError(
                f"no column for {what}: expected a column named {spec!r} or columns {spec}0, {spec}1, ...; "
                f"the table has {list(header)}. Pass a ColumnMapping",
                source,
            )
        return chosen
    missing = [c for c in spec if c not in header]
    if missing:
        raise DatasetError(f"{what} columns {missing} are missing; the table has {list(header)}", source)
    return list(spec)


def _read_table(path: Path) -> dict[str, np.ndarray]:
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ImportError("reading Parquet needs pyarrow: pip install 'offrl[parquet]'") from e
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises its own error types
            raise DatasetError(f"cannot read {path} as Parquet ({e})", str(path)) from e
        return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration as e:
            raise DatasetError(f"{path} is empty", str(path)) from e
        rows = list(reader)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        values = [r[j] if j < len(r) else "" for r in rows]
        try:
            out[name] = np.array([_parse_cell(v) for v in values], dtype=np.float64)
        except ValueError:
            out[name] = np.array(values, dtype=object)
    return out


def _parse_cell(v: str) -> float:
    s = v.strip().lower()
    if s in ("true", "yes"):
        return 1.0
    if s in ("false", "no", ""):
        return 0.0 if s != "" else float("nan")
    return float(s)


def load_table(path: str | os.PathLike[str], columns: ColumnMapping | None = None) -> Dataset:
    """Load a Parquet or CSV table with one transition per row."""
    path = Path(path)
    m = columns or ColumnMapping()
    src = str(path)
    table = _read_table(path)
    header = list(table)

    def numeric(names: list[str], what: str) -> np.ndarray:
        cols = []
        for name in names:
            col = table[name]
            if col.dtype == object:
                raise DatasetError(f"{what} column {name!r} holds non-numeric values", src)
            cols.append(col.astype(np.float64))
        return np.stack(cols, axis=1)

    obs = numeric(_select_columns(m.observations, header, "observations", src), "observation")
    act = numeric(_select_columns(m.actions, header, "actions", src), "action")
    if m.discrete_actions:
        if act.shape[1] != 1:
            raise DatasetError("discrete actions need exactly one action column", src)
        if not np.all(act == np.round(act)):
            raise DatasetError("discrete action column holds non-integer values", src)
        act = act[:, 0].astype(np.int64)
    if m.reward not in table:
        raise DatasetError(f"reward column {m.reward!r} is missing; the table has {header}", src)
    rew = numeric([m.reward], "reward")[:, 0]
    n = rew.shape[0]
    term = numeric([m.terminal], "terminal")[:, 0] if m.terminal and m.terminal in table else np.zeros(n)
    tout = numeric([m.timeout], "timeout")[:, 0] if m.timeout and m.timeout in table else np.zeros(n)
    term_b = _as_flags(term, "terminal", src)
    tout_b = _as_flags(tout, "timeout", src)
    if m.episode and m.episode in table:
        episode = table[m.episode]
        change = np.zeros(n, bool)
        change[:-1] = episode[1:] != episode[:-1]
        tout_b = tout_b | (change & ~term_b)
    cost = numeric([m.cost], "cost")[:, 0] if m.cost else None
    next_obs = None
    if m.next_observations is not None:
        next_obs = numeric(_select_columns(m.next_observations, header, "next observations", src), "next obs")
    return from_arrays(obs, act, rew, term_b, tout_b, next_obs, costs=cost, source=src)


# ----------------------------------------------------------------------------------------------------------------


def load_dataset(
    path: str | os.PathLike[str],
    *,
    max_episode_steps: int | None = None,
    task: str | None = None,
    columns: ColumnMapping | None = None,
) -> Dataset:
    """Load a dataset file or directory, choosing the loader from its format."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset {p} does not exist")
    if p.is_dir():
        return load_minari(p)
    suffix = p.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return load_d4rl_hdf5(p)
    if suffix == ".npz":
        return load_npz(p, max_episode_steps=max_episode_steps, task=task)
    if suffix in (".parquet", ".csv"):
        return load_table(p, columns)
    with open(p, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"\x89HDF"):
        return load_d4rl_hdf5(p)
    if magic.startswith(b"PK"):
        return load_npz(p, max_episode_steps=max_episode_steps, task=task)
    raise DatasetError(
        f"unknown dataset format for {p}; use .hdf5 (D4RL), .npz, .parquet, .csv or a Minari directory", str(p)
    )


__all__ = [
    "ColumnMapping",
    "file_sha256",
    "from_arrays",
    "from_flat_episodes",
    "load_d4rl_hdf5",
    "load_dataset",
    "load_minari",
    "load_npz",
    "load_table",
    "save_dataset",
]
