"""Nearest-neighbour search over a dataset's rows, callable from inside a jitted update.

PRDC's actor is pulled towards the dataset action whose ``(beta * s, a)`` is nearest to ``(beta * s, pi(s))``. A
search is built once from the training arrays and then queried inside the update (under ``jit`` and ``lax.scan``):

- ``kdtree``: a ``scipy.spatial.cKDTree`` on the host, queried through ``jax.pure_callback`` (the official PRDC code
  uses scipy's KD-tree too). Milliseconds for 256 queries on a million rows; the best choice on a CPU.
- ``exact``: brute force on the device, a scan over blocks of rows keeping the running minimum; memory
  ``queries x block``. Cheap on an accelerator, slow on a CPU for large datasets.
- ``auto``: ``exact`` when JAX's default backend is a GPU or TPU, else ``kdtree``.

Both return the index of the nearest row by Euclidean distance; they agree except on (measure-zero) ties and on
distances equal to within float32 rounding (the exact search asks for full float32 matrix products, which GPUs
otherwise replace by TF32). A key with a NaN or infinite entry (a diverged policy) gets row 0 from both, so the
update finishes and the trainer's non-finite check reports the problem. Keys and points are
``concat(weight * observations, actions)``; the exact search reads the device copies of those two columns that the
trainer already holds, so it needs no extra memory.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

SEARCHES = ("auto", "kdtree", "exact")
HIGHEST = jax.lax.Precision.HIGHEST

#: ``nearest(keys [B, D_obs + D_act], observations [N, D_obs], actions [N, D_act]) -> indices [B] (int32)``
Nearest = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def resolve_search(search: str) -> str:
    if search not in SEARCHES:
        raise ValueError(f"unknown neighbour search {search!r}; choose one of {', '.join(SEARCHES)}")
    if search == "auto":
        return "exact" if jax.default_backend() in ("gpu", "cuda", "rocm", "tpu") else "kdtree"
    return search


def build_nearest(
    observations: np.ndarray, actions: np.ndarray, weight: float, search: str = "auto", block: int = 16384
) -> Nearest:
    """The nearest-row search over ``concat(weight * observations, actions)`` (host arrays, as trained on)."""
    observations = np.asarray(observations, np.float32).reshape(len(observations), -1)
    actions = np.asarray(actions, np.float32).reshape(len(actions), -1)
    if len(observations) != len(actions) or len(observations) == 0:
        raise ValueError(f"need as many observations as actions (>0), got {len(observations)} and {len(actions)}")
    if resolve_search(search) == "kdtree":
        return _kdtree(np.concatenate([weight * observations, actions], axis=1))
    return _exact(weight, block)


def _kdtree(points: np.ndarray) -> Nearest:
    from scipy.spatial import cKDTree

    tree = cKDTree(points)

    def query(keys: np.ndarray) -> np.ndarray:
        flat = np.asarray(keys).reshape(-1, keys.shape[-1])
        finite = np.isfinite(flat).all(axis=-1)
        index = np.zeros(len(flat), np.int32)  # a non-finite key (a diverged policy) gets row 0: the update then
        if finite.any():  # finishes and the trainer's non-finite check names the metric, instead of a callback error
            index[finite] = tree.query(flat[finite], k=1)[1]
        return index.reshape(keys.shape[:-1])

    def nearest(keys: jax.Array, observations: jax.Array, actions: jax.Array) -> jax.Array:
        out = jax.ShapeDtypeStruct(keys.shape[:-1], jnp.int32)
        return jax.pure_callback(query, out, jax.lax.stop_gradient(keys), vmap_method="expand_dims")

    return nearest


def _exact(weight: float, block: int) -> Nearest:
    def nearest(keys: jax.Array, observations: jax.Array, actions: jax.Array) -> jax.Array:
        keys = jax.lax.stop_gradient(keys)
        n, obs_dim = observations.shape[0], observations.shape[1]
        size = min(block, n)
        blocks = -(-n // size)
        key_obs, key_act = keys[:, :obs_dim], keys[:, obs_dim:]
        key_norm = jnp.sum(jnp.square(keys), axis=-1)

        def scan_block(carry, start):
            best_d, best_i = carry
            obs = jax.lax.dynamic_slice_in_dim(observations, start, size) * weight
            act = jax.lax.dynamic_slice_in_dim(actions, start, size)
            rows = start + jnp.arange(size)
            # full float32 products: GPUs default to TF32 for float32 matmuls, which picks wrong neighbours
            cross = jnp.matmul(key_obs, obs.T, precision=HIGHEST) + jnp.matmul(key_act, act.T, precision=HIGHEST)
            d = key_norm[:, None] - 2.0 * cross + (jnp.sum(jnp.square(obs), -1) + jnp.sum(jnp.square(act), -1))[None, :]
            i = jnp.argmin(d, axis=1)
            d_min = jnp.take_along_axis(d, i[:, None], axis=1)[:, 0]
            better = d_min < best_d
            return (jnp.where(better, d_min, best_d), jnp.where(better, rows[i], best_i)), None

        # the last block starts at n - size so that it fits; the rows it shares with the block before are compared
        # twice, which cannot change the minimum.
        starts = jnp.minimum(jnp.arange(blocks) * size, n - size)
        init = (jnp.full(keys.shape[0], jnp.inf, keys.dtype), jnp.zeros(keys.shape[0], jnp.int32))
        (_, index), _ = jax.lax.scan(scan_block, init, starts)
        return index.astype(jnp.int32)

    return nearest
