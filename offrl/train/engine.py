"""The jitted core of offline training: K updates per host call with ``lax.scan``.

The dataset lives on the device. Inside the scan, every step draws its batch indices with ``jax.random`` from the
sampling key it carries, gathers the batch, and calls the algorithm's pure ``update(state, batch, data)`` (see
``offrl.algos.base.training_update``; most updates ignore ``data``). Metrics are averaged over
the K steps on the device; a first non-finite metric is located (step and name) on the device too, so the host
reads a handful of scalars per call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos.base import Batch, DataUpdate

UpdateFn = DataUpdate


@dataclass
class ChunkResult:
    metrics: dict[str, float]
    #: ``None`` when every metric was finite, else ``(offset within the chunk, metric name)`` of the first problem.
    non_finite: tuple[int, str] | None
    seconds: float


def sample_batch(data: Batch, key: jax.Array, batch_size: int) -> Batch:
    """Uniformly sample ``batch_size`` rows (with replacement) of every column."""
    n = next(iter(data.values())).shape[0]
    idx = jax.random.randint(key, (batch_size,), 0, n)
    return {name: column[idx] for name, column in data.items()}


def _scan_updates(update: UpdateFn, draw: Any, agent: Any, key: jax.Array, data: Batch, num_updates: int):
    """``num_updates`` updates, each on the batch ``draw(key)`` gives; the metrics' means and the first non-finite
    (any, step, metric index), all on the device."""

    def body(carry, _):
        agent, key = carry
        key, batch_key = jax.random.split(key)
        agent, metrics = update(agent, draw(batch_key), data)
        return (agent, key), metrics

    (agent, key), metrics = jax.lax.scan(body, (agent, key), None, length=num_updates)
    names = sorted(metrics)
    stacked = jnp.stack([metrics[name].astype(jnp.float32) for name in names])  # [M, K]
    bad = ~jnp.isfinite(stacked)
    any_bad = bad.any()
    bad_step = jnp.argmax(bad.any(axis=0))
    bad_metric = jnp.argmax(bad[:, bad_step])
    means = stacked.mean(axis=1)
    return agent, key, means, (any_bad, bad_step, bad_metric)


def _chunk(update: UpdateFn, batch_size: int, agent: Any, key: jax.Array, data: Batch, num_updates: int):
    return _scan_updates(update, lambda k: sample_batch(data, k, batch_size), agent, key, data, num_updates)


def _chunk_result(
    names: list[str], means: np.ndarray, any_bad: Any, bad_step: Any, bad_metric: Any, seconds: float
) -> ChunkResult:
    """One run's chunk read back on the host: its metric means and the first non-finite (step, metric), if any."""
    metrics = {name: float(v) for name, v in zip(names, np.asarray(means), strict=False)}
    problem = (int(bad_step), names[int(bad_metric)]) if bool(any_bad) else None
    return ChunkResult(metrics, problem, seconds)


class UpdateLoop:
    """Compiles and runs chunks of updates; compile time is measured apart from update time."""

    def __init__(self, update: UpdateFn, batch_size: int):
        self._jitted = jax.jit(
            lambda agent, key, data, k: _chunk(update, batch_size, agent, key, data, k),
            static_argnums=(3,),
            donate_argnums=(0, 1),
        )
        self._compiled: dict[int, Any] = {}
        self.compile_seconds = 0.0
        self.update_seconds = 0.0
        self.updates_done = 0

    def compile(self, agent: Any, key: jax.Array, data: Batch, num_updates: int) -> None:
        if num_updates in self._compiled:
            return
        start = time.perf_counter()
        lowered = self._jitted.lower(agent, key, data, num_updates)
        self._compiled[num_updates] = lowered.compile()
        self.compile_seconds += time.perf_counter() - start

    def run(
        self, agent: Any, key: jax.Array, data: Batch, num_updates: int, metric_names: list[str]
    ) -> tuple[Any, jax.Array, ChunkResult]:
        self.compile(agent, key, data, num_updates)
        start = time.perf_counter()
        agent, key, means, (any_bad, bad_step, bad_metric) = self._compiled[num_updates](agent, key, data)
        means_host, any_bad_host, step_host, metric_host = jax.device_get((means, any_bad, bad_step, bad_metric))
        seconds = time.perf_counter() - start
        self.update_seconds += seconds
        self.updates_done += num_updates
        return agent, key, _chunk_result(metric_names, means_host, any_bad_host, step_host, metric_host, seconds)

    @property
    def updates_per_second(self) -> float:
        return self.updates_done / self.update_seconds if self.update_seconds > 0 else 0.0


def metric_names(update: UpdateFn, agent: Any, data: Batch, batch_size: int) -> list[str]:
    """The sorted metric names an update produces (traced abstractly; nothing runs)."""
    batch = jax.eval_shape(lambda d: sample_batch(d, jax.random.PRNGKey(0), batch_size), data)
    _, metrics = jax.eval_shape(update, agent, batch, data)
    return sorted(metrics)


def _group_chunk(
    update: UpdateFn,
    batch_size: int,
    agents: Any,
    keys: jax.Array,
    slots: jax.Array,
    data: Batch,
    sizes: jax.Array,
    num_updates: int,
):
    """The chunk of every member of a group at once (``vmap``). With one dataset (``sizes`` of length 1) the data
    is the plain ``[N, ...]`` columns, shared, and batches are drawn exactly as in ``_chunk``; with several, every
    column is ``[D, N_max, ...]`` (zero padded), member ``i`` draws rows ``< sizes[slots[i]]`` of dataset
    ``slots[i]``, and the update gets no ``data`` (updates that read the whole training set need one dataset)."""
    shared = sizes.shape[0] == 1

    def member(agent: Any, key: jax.Array, slot: jax.Array):
        if shared:
            return _chunk(update, batch_size, agent, key, data, num_updates)

        def draw(batch_key: jax.Array) -> Batch:
            idx = jax.random.randint(batch_key, (batch_size,), 0, sizes[slot])
            return {name: column[slot, idx] for name, column in data.items()}

        return _scan_updates(update, draw, agent, key, {}, num_updates)

    return jax.vmap(member)(agents, keys, slots)


class GroupUpdateLoop:
    """``UpdateLoop`` for a group of runs of one algorithm trained together: the agents (and sampling keys) are
    stacked on a leading member axis and every jitted call runs ``num_updates`` updates of every member. A group
    fills a GPU that one run of small networks leaves mostly idle; on a CPU it saves nothing."""

    def __init__(self, update: UpdateFn, batch_size: int):
        self._jitted = jax.jit(
            lambda agents, keys, slots, data, sizes, k: _group_chunk(
                update, batch_size, agents, keys, slots, data, sizes, k
            ),
            static_argnums=(5,),
            donate_argnums=(0, 1),
        )
        self._compiled: dict[tuple[int, int], Any] = {}
        self.compile_seconds = 0.0
        self.update_seconds = 0.0
        self.updates_done = 0  # per member

    def run(
        self,
        agents: Any,
        keys: jax.Array,
        slots: jax.Array,
        data: Batch,
        sizes: jax.Array,
        num_updates: int,
        metric_names: list[str],
    ) -> tuple[Any, jax.Array, list[ChunkResult]]:
        """One call; a new shape (another chunk length or number of members) compiles first, timed apart."""
        shape = (num_updates, int(slots.shape[0]))
        if shape not in self._compiled:
            start = time.perf_counter()
            self._compiled[shape] = self._jitted.lower(agents, keys, slots, data, sizes, num_updates).compile()
            self.compile_seconds += time.perf_counter() - start
        compiled = self._compiled[shape]
        start = time.perf_counter()
        agents, keys, means, (any_bad, bad_step, bad_metric) = compiled(agents, keys, slots, data, sizes)
        means_host, any_bad_host, step_host, metric_host = jax.device_get((means, any_bad, bad_step, bad_metric))
        seconds = time.perf_counter() - start
        self.update_seconds += seconds
        self.updates_done += num_updates
        results = [
            _chunk_result(metric_names, means_host[i], any_bad_host[i], step_host[i], metric_host[i], seconds)
            for i in range(len(means_host))
        ]
        return agents, keys, results

    @property
    def updates_per_second(self) -> float:
        """Updates per second of each member (the group's total is this times the number of members)."""
        return self.updates_done / self.update_seconds if self.update_seconds > 0 else 0.0
