"""Minari dataset directories (HDF5 storage) read from local disk, without the ``minari`` package."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from offrl.atomic import publish
from offrl.data.dataset import Dataset, DatasetError
from offrl.data.formats.arrays import from_arrays
from offrl.data.formats.common import check_destination


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
            fmt = _read_metadata(data_dir / "metadata.json", path).get("data_format", "?")
            raise DatasetError(
                f"{path} is a Minari dataset in the {fmt!r} storage format; offrl reads the hdf5 format. "
                "Convert it with minari, or export it to Parquet and use the table loader",
                str(path),
            )
        raise DatasetError(f"{path} is not a Minari dataset directory (no data/main_data.hdf5)", str(path))
    meta: dict[str, Any] = {"source": str(path)}
    if (data_dir / "metadata.json").exists():
        info = _read_metadata(data_dir / "metadata.json", path)
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


def _read_metadata(file: Path, path: Path) -> dict[str, Any]:
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{file} is not valid JSON ({e}); the Minari metadata is corrupt", str(path)) from e
    if not isinstance(info, dict):
        raise DatasetError(f"{file} is not a JSON object; the Minari metadata is corrupt", str(path))
    return info


def _space_json(low: np.ndarray, high: np.ndarray) -> str:
    return json.dumps(
        {
            "type": "Box",
            "dtype": "float32",
            "shape": list(low.shape),
            "low": low.astype(float).tolist(),
            "high": high.astype(float).tolist(),
        }
    )


def save_minari(
    dataset: Dataset,
    directory: str | os.PathLike[str],
    dataset_id: str,
    attrs: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``dataset`` as a Minari dataset directory (HDF5 storage), without needing the ``minari`` package.

    ``directory/data/main_data.hdf5`` holds one ``episode_k`` group per episode (``observations`` with T+1 rows,
    ``actions, rewards, terminations, truncations`` with T rows); ``directory/data/metadata.json`` the dataset id,
    counts, spaces, the environment id and ``attrs`` (provenance). Written into a temporary folder and renamed. With
    ``overwrite``, an existing destination is replaced only when it is a Minari directory written by offrl (or
    empty): ``check_destination``.
    """
    import shutil
    import tempfile

    import h5py

    directory = Path(directory)
    check_destination(directory, "minari", overwrite)
    if dataset.discrete:
        raise DatasetError("writing Minari directories supports continuous actions only", str(directory))
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=directory.name, suffix=".tmp", dir=directory.parent))
    try:
        (tmp / "data").mkdir()
        starts, ends = dataset.episode_starts, dataset.episode_ends
        with h5py.File(tmp / "data" / "main_data.hdf5", "w") as f:
            for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
                ep = f.create_group(f"episode_{k}")
                ep.attrs["id"] = k
                ep.attrs["total_steps"] = int(e - s + 1)
                obs = np.concatenate([dataset.observations[s : e + 1], dataset.next_observations[e : e + 1]])
                ep.create_dataset("observations", data=obs)
                ep.create_dataset("actions", data=dataset.actions[s : e + 1])
                ep.create_dataset("rewards", data=dataset.rewards[s : e + 1])
                ep.create_dataset("terminations", data=dataset.terminals[s : e + 1])
                truncations = dataset.timeouts[s : e + 1] & ~dataset.terminals[s : e + 1]
                if not dataset.terminals[e]:
                    truncations = truncations.copy()
                    truncations[-1] = True
                ep.create_dataset("truncations", data=truncations)
                ep.create_group("infos")
        space = dataset.action_space
        assert space is not None
        obs_low = np.full(dataset.observation_shape, -np.inf)
        meta = {
            "dataset_id": dataset_id,
            "total_episodes": int(len(starts)),
            "total_steps": int(dataset.size),
            "data_format": "hdf5",
            "env_spec": json.dumps({"id": dataset.metadata.get("env_id")}) if dataset.metadata.get("env_id") else None,
            "observation_space": _space_json(obs_low, -obs_low),
            "action_space": _space_json(np.asarray(space.low), np.asarray(space.high)),
            "minari_version": "0.5",
            **{k: v for k, v in (attrs or {}).items()},
        }
        (tmp / "data" / "metadata.json").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))
        _replace_directory(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _replace_directory(tmp: Path, directory: Path) -> None:
    """Publish the finished folder ``tmp`` as ``directory``. An existing ``directory`` (already checked by
    ``check_destination``) is first moved aside and deleted only once the new one is in place; on failure it is
    moved back."""
    import shutil
    import tempfile

    if not directory.exists():
        publish(tmp, directory)
        return
    mode = directory.stat().st_mode & 0o7777
    aside = Path(tempfile.mkdtemp(prefix=directory.name, suffix=".old", dir=directory.parent))
    old = aside / directory.name
    os.replace(directory, old)
    try:
        publish(tmp, directory)
    except BaseException:
        os.replace(old, directory)
        aside.rmdir()
        raise
    os.chmod(directory, mode)  # keep what the user had, as publish does for a replaced file
    shutil.rmtree(aside)
