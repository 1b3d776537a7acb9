"""D4RL-layout HDF5 files (read-only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from offrl.data.dataset import Dataset, DatasetError
from offrl.data.formats.arrays import from_arrays
from offrl.data.formats.common import jsonable


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
