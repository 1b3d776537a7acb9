"""npz files: offrl's own format (``save_dataset``), D4RL-style keys, and the flat episode layout.

Always read with ``allow_pickle=False``: an object array is refused with an explanation, never unpickled.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from offrl.atomic import publish
from offrl.data.dataset import ActionSpace, Dataset, DatasetError
from offrl.data.formats.arrays import from_arrays, from_flat_episodes
from offrl.data.formats.common import SIGNATURES, check_destination, file_sha256, jsonable

FORMAT_NAME = "offrl-dataset"
FORMAT_VERSION = 1


def npz_destination(path: str | os.PathLike[str]) -> Path:
    """The file :func:`save_dataset` writes for ``path``: ``path`` itself if it ends in ``.npz``, else ``path``
    with ``.npz`` appended (as ``numpy.savez`` does)."""
    path = Path(path)
    return path if path.suffix.lower() == ".npz" else path.with_name(path.name + ".npz")


def save_dataset(dataset: Dataset, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Write ``dataset`` in offrl's own npz format (atomically) and return the file's sha256.

    The file is :func:`npz_destination` of ``path`` (``.npz`` appended when missing). Refuses to replace an existing
    file unless ``overwrite`` is set, and even then replaces only an npz file, never a directory or another kind of
    file (:func:`offrl.data.formats.common.check_destination`).
    """
    path = npz_destination(path)
    check_destination(path, "npz", overwrite)
    assert dataset.action_space is not None
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "action_space": dataset.action_space.to_json(),
        "metadata": jsonable(dataset.metadata),
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
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(path)


def _open_npz(path: Path) -> Any:
    """``np.load`` of an npz archive, after checking that the file is one: numpy would otherwise try other formats
    (a single ``.npy`` array, or pickle, which offrl never loads) and answer with their errors."""
    src = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DatasetError(f"cannot read {path} ({e.strerror or e})", src) from e
    if not head:
        raise DatasetError(f"{path} is empty (0 bytes), not an npz file", src)
    if not head.startswith(SIGNATURES["npz"]):
        what = (
            "a single .npy array (np.save); write datasets with np.savez"
            if head.startswith(b"\x93NUMPY")
            else "its first bytes are not a zip signature"
        )
        raise DatasetError(f"{path} is not an npz file (not a zip archive): {what}", src)
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DatasetError(f"cannot read {path} as npz ({e}); the zip archive is corrupt or truncated", src) from e
    except ValueError as e:  # numpy's text here may suggest allow_pickle, which offrl never uses: not repeated
        raise DatasetError(f"cannot read {path} as npz; the zip archive is corrupt or truncated", src) from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path} is not an npz archive", src)
    return z


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


def _read_header(z: Any, path: Path) -> dict[str, Any]:
    raw = _read_npz_array(z, "__header__", path)
    try:
        header = json.loads(bytes(raw).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        raise DatasetError(f"the `__header__` of {path} is not valid JSON ({e}); the file is corrupt", str(path)) from e
    if not isinstance(header, dict):
        raise DatasetError(f"the `__header__` of {path} is not a JSON object; the file is corrupt", str(path))
    return header


def _header_action_space(header: dict[str, Any], path: Path) -> ActionSpace:
    try:
        return ActionSpace.from_json(header["action_space"])
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(
            f"the `__header__` of {path} has no valid `action_space` ({type(e).__name__}: {e}); the file is corrupt",
            str(path),
        ) from e


def load_npz(path: str | os.PathLike[str], *, max_episode_steps: int | None = None, task: str | None = None) -> Dataset:
    """Load an npz file: offrl's own format, the flat episode layout, or plain D4RL-style column names."""
    path = Path(path)
    z = _open_npz(path)
    with z:
        keys = set(z.files)
        if "__header__" in keys:
            header = _read_header(z, path)
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
                action_space=_header_action_space(header, path),
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
