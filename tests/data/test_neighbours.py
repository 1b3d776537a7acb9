"""Nearest-neighbour search over dataset rows (PRDC's constraint): KD-tree and exact search agree with brute force,
inside jit and scan, and name bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.data.neighbours import build_nearest, resolve_search


def brute_force(keys, observations, actions, weight):
    points = np.concatenate([weight * observations, actions], axis=1)
    distances = ((keys[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return distances.argmin(axis=1)


@pytest.mark.parametrize("search, block", [("kdtree", 0), ("exact", 64), ("exact", 1000), ("exact", 333)])
def test_the_nearest_row_is_the_brute_force_one(search, block):
    rng = np.random.default_rng(0)
    observations = rng.standard_normal((1000, 4)).astype(np.float32)
    actions = rng.uniform(-1, 1, (1000, 2)).astype(np.float32)
    keys = np.concatenate([2.0 * rng.standard_normal((50, 4)), rng.uniform(-1, 1, (50, 2))], axis=1)
    keys = keys.astype(np.float32)
    keys[:10] = np.concatenate([2.0 * observations[:10], actions[:10]], axis=1)  # exact hits find themselves
    nearest = build_nearest(observations, actions, 2.0, search, **({"block": block} if block else {}))
    found = jax.jit(nearest)(jnp.asarray(keys), jnp.asarray(observations), jnp.asarray(actions))
    assert found.dtype == jnp.int32 and found.shape == (50,)
    np.testing.assert_array_equal(np.asarray(found), brute_force(keys, observations, actions, 2.0))
    np.testing.assert_array_equal(np.asarray(found)[:10], np.arange(10))


def test_the_search_runs_inside_a_scan_and_under_a_cond():
    rng = np.random.default_rng(1)
    observations = rng.standard_normal((200, 3)).astype(np.float32)
    actions = rng.uniform(-1, 1, (200, 1)).astype(np.float32)
    nearest = build_nearest(observations, actions, 1.0, "kdtree")
    keys = jnp.asarray(rng.standard_normal((5, 4, 4)), jnp.float32)

    def body(count, k):
        index = jax.lax.cond(count % 2 == 0, lambda: nearest(k, observations, actions), lambda: -jnp.ones(4, jnp.int32))
        return count + 1, index

    _, found = jax.jit(lambda ks: jax.lax.scan(body, 0, ks))(keys)
    for i in range(5):
        expected = brute_force(np.asarray(keys[i]), observations, actions, 1.0) if i % 2 == 0 else -np.ones(4)
        np.testing.assert_array_equal(np.asarray(found[i]), expected)


def test_bad_searches_and_data_are_named():
    with pytest.raises(ValueError, match="unknown neighbour search 'ball'"):
        resolve_search("ball")
    assert resolve_search("auto") in ("kdtree", "exact")
    with pytest.raises(ValueError, match="as many observations as actions"):
        build_nearest(np.zeros((3, 2)), np.zeros((2, 1)), 1.0)


@pytest.mark.parametrize("search", ["kdtree", "exact"])
def test_a_non_finite_key_gets_row_zero_and_the_others_their_neighbours(search):
    """A diverged policy gives NaN keys: the search must not fail inside the jitted update (the trainer then
    reports the non-finite metric)."""
    rng = np.random.default_rng(2)
    observations = rng.standard_normal((300, 3)).astype(np.float32)
    actions = rng.uniform(-1, 1, (300, 1)).astype(np.float32)
    keys = rng.standard_normal((6, 4)).astype(np.float32)
    keys[1, 2], keys[4, 0] = np.nan, np.inf
    nearest = build_nearest(observations, actions, 1.0, search)
    found = np.asarray(jax.jit(nearest)(jnp.asarray(keys), jnp.asarray(observations), jnp.asarray(actions)))
    expected = brute_force(keys, observations, actions, 1.0)
    for row in (0, 2, 3, 5):
        assert found[row] == expected[row]
    assert found[1] == 0 and found[4] == 0
