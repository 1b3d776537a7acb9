"""Minari dataset directories (HDF5 storage) read from local disk, without the ``minari`` package."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from offrl.data.dataset import Dataset, DatasetError
from offrl.data.formats.arrays import from_arrays


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
