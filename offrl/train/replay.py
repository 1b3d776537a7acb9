"""A replay buffer that lives on the device: fixed-size arrays, a write position and a fill count, all in one pytree.

Adding and sampling are pure functions, so they run inside jitted code (the online trainer adds a step's
transitions and runs its updates in one call). The buffer is a ring: once full, the oldest rows are overwritten.
Checkpoints store it like any other pytree, so a resumed online run continues with exactly the same data.

Rows keep the episode structure: ``terminals`` (the environment ended: no bootstrap) and ``timeouts`` (the episode
was cut: time limit, a checkpoint, the end of the run), so :func:`export` can turn a buffer back into logged
episodes (D4RL's "medium-replay" datasets are exactly that: the replay buffer of a SAC run).

A buffer can hold **extra columns** besides those (``extra={"mc_returns": (), "next_actions": (action_dim,)}``):
the derived columns some algorithms read (``offrl.data.columns``). Sampling returns them too; :func:`write` sets
them for given rows after the fact (a return known only when the episode ends).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from offrl.algos.base import Batch

#: The columns a transition has, as the algorithms' ``update`` expects them (terminals and timeouts as float 0/1).
COLUMNS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


class ReplayBuffer(struct.PyTreeNode):
    data: dict[str, jax.Array]
    position: jax.Array  # next row to write
    size: jax.Array  # rows filled so far (<= capacity)

    @property
    def capacity(self) -> int:
        return int(self.data["rewards"].shape[0])


Shapes = dict[str, tuple[int, ...]]


def column_shapes(observation_shape: tuple[int, ...], action_dim: int, extra: Shapes | None = None) -> Shapes:
    shapes = {
        "observations": tuple(observation_shape),
        "actions": (action_dim,),
        "rewards": (),
        "terminals": (),
        "timeouts": (),
        "next_observations": tuple(observation_shape),
    }
    for name, shape in (extra or {}).items():
        if name in shapes:
            raise ValueError(f"{name!r} is a standard replay column, not an extra one")
        shapes[name] = tuple(shape)
    return shapes


def buffer_bytes(
    capacity: int, observation_shape: tuple[int, ...], action_dim: int, extra: Shapes | None = None
) -> int:
    """Memory the buffer's arrays take (float32 everywhere)."""
    per_row = sum(
        int(np.prod(shape, dtype=np.int64)) for shape in column_shapes(observation_shape, action_dim, extra).values()
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


def check_fits(
    capacity: int,
    observation_shape: tuple[int, ...],
    action_dim: int,
    headroom: float = 0.8,
    extra: Shapes | None = None,
) -> int:
    """Estimate the buffer's size before allocating it; refuse, with the numbers, when it cannot fit."""
    needed = buffer_bytes(capacity, observation_shape, action_dim, extra)
    available = available_memory_bytes()
    if available is not None and needed > headroom * available:
        raise BufferTooLargeError(
            f"a replay buffer of {capacity:,} transitions (observations {tuple(observation_shape)}, actions "
            f"{action_dim}) needs {needed / 2**30:.2f} GiB, but only {available / 2**30:.2f} GiB of memory is "
            f"available; lower --buffer-size (at most about {int(headroom * available / (needed / capacity)):,})"
        )
    return needed


def create(
    capacity: int, observation_shape: tuple[int, ...], action_dim: int, extra: Shapes | None = None
) -> ReplayBuffer:
    if capacity < 1:
        raise ValueError(f"the replay buffer needs a capacity >= 1, got {capacity}")
    data = {
        name: jnp.zeros((capacity, *shape), jnp.float32)
        for name, shape in column_shapes(observation_shape, action_dim, extra).items()
    }
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, rows: Batch) -> ReplayBuffer:
    """Write a batch of transitions (leading axis = number of rows, at most the capacity) at the write position;
    ``rows`` holds every column of the buffer, extra ones included."""
    missing = sorted(set(buffer.data) - set(rows))
    if missing:
        raise KeyError(f"rows to add lack the buffer's columns {missing}")
    n = rows["rewards"].shape[0]
    capacity = buffer.data["rewards"].shape[0]
    index = (buffer.position + jnp.arange(n)) % capacity
    data = {name: column.at[index].set(rows[name].astype(column.dtype)) for name, column in buffer.data.items()}
    return ReplayBuffer(data, (buffer.position + n) % capacity, jnp.minimum(buffer.size + n, capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Batch:
    """Uniformly sample ``batch_size`` filled rows (with replacement), with the columns an update reads (timeouts
    only delimit episodes; they never reach an algorithm)."""
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return {name: column[index] for name, column in buffer.data.items() if name != "timeouts"}


def write(buffer: ReplayBuffer, name: str, index: jax.Array, values: jax.Array) -> ReplayBuffer:
    """Set column ``name`` at rows ``index``; indices outside the buffer (e.g. ``capacity``, used as padding so
    that calls of different lengths share one compiled shape) are ignored."""
    column = buffer.data[name]
    return buffer.replace(data={**buffer.data, name: column.at[index].set(values.astype(column.dtype), mode="drop")})


def cut_episodes(buffer: ReplayBuffer, rows: int) -> ReplayBuffer:
    """Mark the newest ``rows`` rows as timeouts unless they are terminal: their episodes end there (a checkpoint
    or the end of a run cuts the running episodes)."""
    capacity = buffer.data["rewards"].shape[0]
    index = (buffer.position - 1 - jnp.arange(min(rows, capacity))) % capacity
    filled = jnp.arange(min(rows, capacity)) < buffer.size
    timeouts = buffer.data["timeouts"]
    cut = jnp.where(filled & (buffer.data["terminals"][index] == 0), 1.0, timeouts[index])
    return buffer.replace(data={**buffer.data, "timeouts": timeouts.at[index].set(cut)})


def export(buffer: ReplayBuffer, rows_added: int, num_streams: int = 1) -> dict[str, np.ndarray]:
    """The buffer's rows as host arrays in logging order, so that every episode is a contiguous run of rows.

    ``rows_added`` is how many rows were ever added (the online run's environment step), ``num_streams`` how many
    environments were stepped together: their rows are interleaved in the buffer (one row per environment per
    step) and come out one environment after another, each oldest first. Once the ring has wrapped, the oldest
    episode of each environment starts in its middle. The last row of each environment ends an episode
    (a timeout, unless terminal).
    """
    size, capacity = int(buffer.size), buffer.capacity
    if rows_added < size:
        raise ValueError(f"rows_added ({rows_added}) is smaller than the buffer's fill ({size})")
    data = {name: np.asarray(column) for name, column in jax.device_get(buffer.data).items()}
    oldest_first = np.arange(size) if size < capacity else (int(buffer.position) + np.arange(capacity)) % capacity
    stream = (rows_added - size + np.arange(size)) % num_streams
    order = np.concatenate([oldest_first[stream == k] for k in range(num_streams)])
    out = {name: column[order] for name, column in data.items()}
    ends = np.cumsum([int(np.sum(stream == k)) for k in range(num_streams)]) - 1
    ends = ends[ends >= 0]
    out["timeouts"][ends] = np.where(out["terminals"][ends] > 0, out["timeouts"][ends], 1.0)
    return out
