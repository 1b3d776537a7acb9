"""Batches drawn from offline data and an online replay buffer together (offline-to-online and hybrid RL).

Three ways to use logged data once an agent interacts, all pure and jit-able:

- a **fixed ratio**: every batch holds ``round(fraction * batch_size)`` offline rows and the rest online (RLPD's
  symmetric sampling is ``fraction = 0.5``);
- an **annealed ratio**: the fraction moves linearly from ``start`` to ``end`` over ``anneal_steps`` online updates
  (:class:`MixSchedule`), e.g. from all-offline towards mostly-online;
- **offline data copied into the online buffer** (:func:`seed_buffer`), after which plain replay sampling mixes
  them in proportion to their counts, as several fine-tuning recipes do.

Batch shapes stay static while the fraction changes: :func:`sample_mixed` draws a full batch from each source and
keeps, row by row, the offline draw for the first ``n_offline`` rows and the online one for the rest. While the
online buffer is still empty every row is offline. Both sources must hold the training columns in the same space
(the trainer normalises online transitions with the offline run's transforms before adding them), and the buffer's
extra columns (an algorithm's derived columns, e.g. Cal-QL's ``mc_returns``) are mixed like the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from offrl.algos.base import Batch
from offrl.train import replay
from offrl.train.replay import ReplayBuffer

#: The columns an update reads from a mixed batch (both sources have them), besides the buffer's extra columns.
MIXED_COLUMNS = ("observations", "actions", "rewards", "terminals", "next_observations")


def mixed_columns(buffer: ReplayBuffer) -> tuple[str, ...]:
    """The standard columns plus the buffer's extra ones (all but ``timeouts``, which only delimit episodes)."""
    extra = tuple(name for name in buffer.data if name not in replay.COLUMNS)
    return MIXED_COLUMNS + extra


@dataclass(frozen=True)
class MixSchedule:
    """The offline share of each batch: ``start`` at online update 0, moving linearly to ``end`` at
    ``anneal_steps`` (and staying there). ``anneal_steps = 0`` keeps ``start`` (a fixed ratio)."""

    start: float = 0.5
    end: float = 0.5
    anneal_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"the offline fraction {name} must be in [0, 1], got {value}")
        if self.anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {self.anneal_steps}")

    def fraction(self, step: jax.Array | int) -> jax.Array:
        if self.anneal_steps == 0:
            return jnp.asarray(self.start, jnp.float32)
        progress = jnp.clip(jnp.asarray(step, jnp.float32) / self.anneal_steps, 0.0, 1.0)
        return jnp.asarray(self.start + (self.end - self.start) * progress, jnp.float32)


def offline_rows(fraction: jax.Array, batch_size: int, online_size: jax.Array) -> jax.Array:
    """How many rows of a batch come from the offline data: ``round(fraction * batch_size)``, or all of them while
    the online buffer is empty."""
    n = jnp.round(jnp.asarray(fraction, jnp.float32) * batch_size).astype(jnp.int32)
    return jnp.where(online_size > 0, n, batch_size)


def sample_mixed(
    offline: Batch, buffer: ReplayBuffer, key: jax.Array, batch_size: int, fraction: jax.Array | float
) -> Batch:
    """A batch whose first ``offline_rows(...)`` rows are uniform draws from ``offline`` (device arrays, one row
    per transition) and whose other rows are uniform draws from the online ``buffer``."""
    offline_key, online_key = jax.random.split(key)
    n_data = next(iter(offline.values())).shape[0]
    offline_index = jax.random.randint(offline_key, (batch_size,), 0, n_data)
    online = replay.sample(buffer, online_key, batch_size)
    take_offline = jnp.arange(batch_size) < offline_rows(fraction, batch_size, buffer.size)
    missing = [name for name in mixed_columns(buffer) if name not in offline]
    if missing:
        raise KeyError(f"the offline data lacks the buffer's columns {missing}")
    mixed = {}
    for name in mixed_columns(buffer):
        a, b = offline[name][offline_index], online[name].astype(offline[name].dtype)
        mask = take_offline.reshape((batch_size,) + (1,) * (a.ndim - 1))
        mixed[name] = jnp.where(mask, a, b)
    return mixed


def mixed_updates(
    update,
    agent,
    key: jax.Array,
    data: Batch,
    buffer: ReplayBuffer,
    batch_size: int,
    fraction,
    num_updates: int,
    buffer_only: bool = False,
):
    """``num_updates`` updates as one scan, each on a batch mixing ``data`` and ``buffer`` at ``fraction`` (or drawn
    from the buffer alone); returns the agent, the key and the metrics' means."""

    def body(carry, _):
        agent, key = carry
        key, batch_key = jax.random.split(key)
        if buffer_only:
            batch = replay.sample(buffer, batch_key, batch_size)
        else:
            batch = sample_mixed(data, buffer, batch_key, batch_size, fraction)
        agent, metrics = update(agent, batch, data)
        return (agent, key), metrics

    (agent, key), stacked = jax.lax.scan(body, (agent, key), None, length=num_updates)
    return agent, key, {name: values.astype(jnp.float32).mean() for name, values in stacked.items()}


def seed_buffer(buffer: ReplayBuffer, offline: dict[str, jax.Array]) -> ReplayBuffer:
    """The buffer with the offline transitions written into it first (``timeouts`` as given, or none), so that
    replay sampling mixes them with what the agent collects. Refuses data larger than the buffer."""
    n = int(offline["rewards"].shape[0])
    if n > buffer.capacity:
        raise ValueError(
            f"the offline data has {n} transitions but the replay buffer holds {buffer.capacity}: "
            "make the buffer larger or sample the two with a mixing ratio instead"
        )
    rows = {name: offline[name] for name in mixed_columns(buffer)}
    rows["timeouts"] = offline.get("timeouts", jnp.zeros(n, jnp.float32))
    return replay.add(buffer, rows)
