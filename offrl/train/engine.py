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


def _chunk(update: UpdateFn, batch_size: int, agent: Any, key: jax.Array, data: Batch, num_updates: int):
    def body(carry, _):
        agent, key = carry
        key, batch_key = jax.random.split(key)
        agent, metrics = update(agent, sample_batch(data, batch_key, batch_size), data)
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
        metrics = {name: float(v) for name, v in zip(metric_names, np.asarray(means_host), strict=False)}
        problem = (int(step_host), metric_names[int(metric_host)]) if bool(any_bad_host) else None
        return agent, key, ChunkResult(metrics, problem, seconds)

    @property
    def updates_per_second(self) -> float:
        return self.updates_done / self.update_seconds if self.update_seconds > 0 else 0.0


def metric_names(update: UpdateFn, agent: Any, data: Batch, batch_size: int) -> list[str]:
    """The sorted metric names an update produces (traced abstractly; nothing runs)."""
    batch = jax.eval_shape(lambda d: sample_batch(d, jax.random.PRNGKey(0), batch_size), data)
    _, metrics = jax.eval_shape(update, agent, batch, data)
    return sorted(metrics)
