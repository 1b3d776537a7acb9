"""A replay buffer that lives on the device: fixed-size arrays, a write position and a fill count, all in one pytree.

Adding and sampling are pure functions, so they run inside jitted code (the online trainer adds a step's
transitions and runs its updates in one call). The buffer is a ring: once full, the oldest rows are overwritten.
Checkpoints store it like any other pytree, so a resumed online run continues with exactly the same data.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl.algos.base import Batch

#: The columns a transition has, as the algorithms' ``update`` expects them (terminals as float 0/1).
COLUMNS = ("observations", "actions", "rewards", "terminals", "next_observations")


class ReplayBuffer(struct.PyTreeNode):
    data: dict[str, jax.Array]
    position: jax.Array  # next row to write
    size: jax.Array  # rows filled so far (<= capacity)

    @property
    def capacity(self) -> int:
        return int(self.data["rewards"].shape[0])


def column_shapes(observation_shape: tuple[int, ...], action_dim: int) -> dict[str, tuple[int, ...]]:
    return {
        "observations": tuple(observation_shape),
        "actions": (action_dim,),
        "rewards": (),
        "terminals": (),
        "next_observations": tuple(observation_shape),
    }


def buffer_bytes(capacity: int, observation_shape: tuple[int, ...], action_dim: int) -> int:
    """Memory the buffer's arrays take (float32 everywhere)."""
    per_row = sum(
        int(np.prod(shape, dtype=np.int64)) for shape in column_shapes(observation_shape, action_dim).values()
    )
    return 4 * per_row * int(capacity)


def available_memory_bytes() -> int | None:
    """Memory the system can still give this process (Linux ``MemAvailable``); ``None`` when unknown."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class BufferTooLargeError(MemoryError):
    """The requested replay buffer would not fit in memory."""


def check_fits(capacity: int, observation_shape: tuple[int, ...], action_dim: int, headroom: float = 0.8) -> int:
    """Estimate the buffer's size before allocating it; refuse, with the numbers, when it cannot fit."""
    needed = buffer_bytes(capacity, observation_shape, action_dim)
    available = available_memory_bytes()
    if available is not None and needed > headroom * available:
        raise BufferTooLargeError(
            f"a replay buffer of {capacity:,} transitions (observations {tuple(observation_shape)}, actions "
            f"{action_dim}) needs {needed / 2**30:.2f} GiB, but only {available / 2**30:.2f} GiB of memory is "
            f"available; lower --buffer-size (at most about {int(headroom * available / (needed / capacity)):,})"
        )
    return needed


def create(capacity: int, observation_shape: tuple[int, ...], action_dim: int) -> ReplayBuffer:
    if capacity < 1:
        raise ValueError(f"the replay buffer needs a capacity >= 1, got {capacity}")
    data = {
        name: jnp.zeros((capacity, *shape), jnp.float32)
        for name, shape in column_shapes(observation_shape, action_dim).items()
    }
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, rows: Batch) -> ReplayBuffer:
    """Write a batch of transitions (leading axis = number of rows, at most the capacity) at the write position."""
    n = rows["rewards"].shape[0]
    capacity = buffer.data["rewards"].shape[0]
    index = (buffer.position + jnp.arange(n)) % capacity
    data = {name: column.at[index].set(rows[name].astype(column.dtype)) for name, column in buffer.data.items()}
    return ReplayBuffer(data, (buffer.position + n) % capacity, jnp.minimum(buffer.size + n, capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Batch:
    """Uniformly sample ``batch_size`` filled rows (with replacement)."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return {name: column[index] for name, column in buffer.data.items()}
