"""Checkpoints are data: a msgpack file of arrays (flax serialisation, no pickle) and a JSON sidecar.

``step_000010000.msgpack`` holds the whole training state as nested dicts of arrays: parameters, target
parameters, optimiser states, RNG keys and step counters. ``step_000010000.json`` holds the schema version, the
library version, the resolved configs, the dataset fingerprint, the data transforms and the sha256 of the msgpack
file. Both are written to a temporary file and renamed, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from offrl.atomic import publish

SCHEMA_VERSION = 1
_NAME = re.compile(r"step_(\d+)\.msgpack$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the state it is loaded into."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_checkpoint(
    directory: str | os.PathLike[str], step: int, state: Any, metadata: dict[str, Any], keep_last: int = 2
) -> Path:
    """Write ``state`` (any pytree of arrays) at ``step``; keep the newest ``keep_last`` checkpoints."""
    directory = Path(directory)
    state_dict = serialization.to_state_dict(jax.device_get(state))
    data = serialization.msgpack_serialize(state_dict)
    path = directory / f"step_{step:09d}.msgpack"
    atomic_write_bytes(path, data)
    sidecar = {
        **metadata,
        "schema_version": SCHEMA_VERSION,
        "step": int(step),
        "state_sha256": hashlib.sha256(data).hexdigest(),
    }
    atomic_write_json(path.with_suffix(".json"), sidecar)
    if keep_last > 0:
        for old in list_checkpoints(directory)[:-keep_last]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
    return path


def list_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files in a directory, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_step(path: str | os.PathLike[str]) -> int:
    """The step a checkpoint file was written at (from its name, ``step_000001000.msgpack``)."""
    found = _NAME.search(Path(path).name)
    if found is None:
        raise CheckpointError(f"{path} is not named like a checkpoint (step_NNNNNNNNN.msgpack)")
    return int(found.group(1))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not sidecar.exists():
        raise CheckpointError(f"{sidecar} is missing; a checkpoint needs its JSON sidecar")
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{sidecar} is not valid JSON ({e}); the sidecar is corrupt") from e
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{sidecar} has schema version {version!r}; this offrl reads versions up to {SCHEMA_VERSION}"
        )
    return meta


def load_checkpoint(path: str | os.PathLike[str], template: Any, part: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Restore a state shaped like ``template`` from ``path``; returns ``(state, metadata)``. With ``part``, only
    that top-level entry of the saved state is restored (e.g. the agent of an online run, without its buffer)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    meta = read_metadata(path)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("state_sha256"):
        raise CheckpointError(f"{path} does not match the sha256 in its sidecar; the file is corrupt or was changed")
    try:
        restored = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several types
        raise CheckpointError(f"{path} cannot be decoded ({e}); the file is corrupt") from e
    if part is not None:
        if not isinstance(restored, dict) or part not in restored:
            raise CheckpointError(f"{path} has no entry {part!r}")
        restored = restored[part]
    expected = serialization.to_state_dict(template)
    problems = _compare_trees(expected, restored)
    if problems:
        raise CheckpointError(f"{path} does not fit this state:\n" + "\n".join(f"  - {p}" for p in problems))
    return serialization.from_state_dict(template, restored), meta


def _compare_trees(expected: Any, found: Any, prefix: str = "") -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(found, dict):
            return [f"{prefix or 'state'}: expected a mapping, found {type(found).__name__}"]
        problems = []
        for key in expected.keys() - found.keys():
            problems.append(f"missing key {prefix}{key}")
        for key in found.keys() - expected.keys():
            problems.append(f"unknown key {prefix}{key}")
        for key in expected.keys() & found.keys():
            problems += _compare_trees(expected[key], found[key], f"{prefix}{key}/")
        return problems
    exp_shape, found_shape = np.shape(expected), np.shape(found)
    if exp_shape != found_shape:
        return [f"{prefix.rstrip('/')}: shape {found_shape} in the file, {exp_shape} expected"]
    return []
