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

import os
from pathlib import Path

from offrl.data.dataset import Dataset, DatasetError
from offrl.data.formats.arrays import from_arrays, from_flat_episodes
from offrl.data.formats.common import file_sha256
from offrl.data.formats.d4rl import load_d4rl_hdf5
from offrl.data.formats.minari import load_minari
from offrl.data.formats.npz import load_npz, save_dataset
from offrl.data.formats.tables import ColumnMapping, load_table


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
