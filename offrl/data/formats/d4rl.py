"""D4RL-layout HDF5 files (read-only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from offrl.atomic import publish
from offrl.data.dataset import Dataset, DatasetError
from offrl.data.formats.arrays import from_arrays
from offrl.data.formats.common import check_destination, jsonable


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
        meta: dict[str, Any] = {k: jsonable(v) for k, v in f.attrs.items()}
        extras = _infos(f, np.shape(cols["rewards"])[0])
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
        extras=extras,
        metadata=meta,
        source=str(path),
    )


def _infos(f: Any, n: int) -> dict[str, np.ndarray]:
    """The ``infos/*`` columns with one numeric row per transition (D4RL's ``infos/qpos``, ``infos/qvel``: the
    simulator state, which lets a run restart the simulator from a logged state), as extras named ``infos/NAME``."""
    import h5py

    group = f.get("infos")
    if not isinstance(group, h5py.Group):
        return {}
    out = {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset) and item.shape[:1] == (n,) and np.issubdtype(item.dtype, np.number):
            out[f"infos/{name}"] = item[()]
    return out


def save_d4rl_hdf5(
    dataset: Dataset, path: str | os.PathLike[str], attrs: dict[str, Any] | None = None, *, overwrite: bool = False
) -> Path:
    """Write ``dataset`` as a D4RL-layout HDF5 file (atomically; refuses to replace a file unless ``overwrite``, and
    then replaces only an HDF5 file: ``check_destination``).

    Keys: ``observations, actions, rewards, terminals, timeouts, next_observations`` (+ ``costs``) and every extra
    column under its own name (``infos/qpos`` ...); ``attrs`` (provenance, reference scores) become file attributes.
    """
    import tempfile

    import h5py

    path = Path(path)
    check_destination(path, "hdf5", overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for name in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations"):
                f.create_dataset(name, data=np.asarray(getattr(dataset, name)), compression="gzip")
            if dataset.costs is not None:
                f.create_dataset("costs", data=dataset.costs, compression="gzip")
            for name, column in dataset.extras.items():
                f.create_dataset(name, data=column, compression="gzip")
            for key, value in {**dataset.metadata, **(attrs or {})}.items():
                if key == "source":
                    continue
                f.attrs[key] = value if isinstance(value, (int, float, str, bool, np.number)) else str(value)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
