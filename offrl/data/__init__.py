"""The data layer: one Dataset type, loaders for common formats, validation, and recorded transforms."""

from offrl.data.dataset import ActionSpace, Dataset, DatasetError, check_against_spaces, concatenate
from offrl.data.loaders import (
    ColumnMapping,
    file_sha256,
    from_arrays,
    from_flat_episodes,
    load_d4rl_hdf5,
    load_dataset,
    load_minari,
    load_npz,
    load_table,
    save_dataset,
)
from offrl.data.transforms import Transforms

__all__ = [
    "ActionSpace",
    "ColumnMapping",
    "Dataset",
    "DatasetError",
    "Transforms",
    "check_against_spaces",
    "concatenate",
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
