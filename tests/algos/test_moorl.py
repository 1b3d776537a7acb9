"""MOORL: each meta-epoch trains on one source, and the Reptile step moves the meta-parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos import sac
from offrl.algos.base import Spec
from offrl.algos.moorl import ALGORITHM, MOORLConfig, init, reptile, source_rows
from tests.algos.test_contract import batch
from tests.conftest import leaves_equal

SPEC = Spec((5,), 2)


def test_a_meta_epoch_trains_on_the_rows_of_its_source_only():
    rows = batch(n=32)
    rows["from_data"] = jnp.asarray(np.arange(32) % 2, jnp.float32)  # a 50/50 mixture
    for offline in (1.0, 0.0):
        half = source_rows(rows, jnp.asarray(offline), jax.random.PRNGKey(0))
        assert half["rewards"].shape == (16,)
        np.testing.assert_array_equal(half["from_data"], np.full(16, offline))
        assert len(set(np.asarray(half["rewards"]).tolist())) == 16  # no row twice


def test_the_reptile_step_moves_the_meta_parameters_and_resets_the_adapted_ones():
    config = MOORLConfig(hidden_dims=(16, 16), inner_steps=3, meta_lr=0.25)
    start = init(jax.random.PRNGKey(0), SPEC, config)
    update = jax.jit(ALGORITHM.update)
    state = start
    for _ in range(2):  # within the meta-epoch: SAC steps, the meta-parameters untouched
        state, _ = update(state, batch(n=32))
    assert leaves_equal(state.meta_actor_params, start.meta_actor_params)
    assert not leaves_equal(state.inner.actor_params, start.inner.actor_params)
    before = state
    state, _ = update(state, batch(n=32))  # the K-th update ends the meta-epoch
    inner_after_k, _ = jax.jit(sac.update)(
        before.inner, source_rows(batch(n=32), before.offline_source, jax.random.split(before.rng, 3)[1])
    )
    expected = reptile(before.meta_actor_params, inner_after_k.actor_params, 0.25)
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(lambda a, b: bool(jnp.allclose(a, b, atol=1e-6)), state.meta_actor_params, expected)
    )
    assert leaves_equal(state.inner.actor_params, state.meta_actor_params)  # the next epoch starts from them
    assert leaves_equal(state.inner.critic_params, state.meta_critic_params)


def test_reptile_is_a_partial_step_towards_the_adapted_parameters():
    meta, adapted = {"w": jnp.zeros(3)}, {"w": jnp.array([4.0, -8.0, 2.0])}
    np.testing.assert_allclose(reptile(meta, adapted, 0.25)["w"], [1.0, -2.0, 0.5])


def test_the_inner_learner_is_sac_on_the_source_half():
    config = MOORLConfig(hidden_dims=(16, 16), inner_steps=5)
    state = init(jax.random.PRNGKey(0), SPEC, config)
    rows = batch(n=32)
    new_state, _ = ALGORITHM.update(state, rows)
    rng, rows_key, _ = jax.random.split(state.rng, 3)
    expected, _ = sac.update(state.inner, source_rows(rows, state.offline_source, rows_key))
    assert leaves_equal(new_state.inner, expected)
