"""The contract every algorithm keeps: shapes, learning signal, deterministic acting, save/load, exact resume."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos import ALGORITHMS
from offrl.algos.base import Spec, training_update
from offrl.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from offrl.train.engine import UpdateLoop, metric_names
from tests.conftest import leaves_equal

SMALL = {
    "hidden_dims": (32, 32),
    "base_hidden_dims": (32, 32),
    # PA-RL's action optimisation
    "num_base_actions": 4,
    "num_keep": 2,
    "opt_steps": 2,
    "n_cql_actions": 2,
    # RO2O's perturbations
    "num_perturbations": 3,
}


def spec_of(algo, observation_shape=(5,)):
    """Continuous actions unless the algorithm only takes discrete ones."""
    return Spec(observation_shape, 2, discrete=not algo.supports_continuous)


def small_config(algo):
    config = algo.config_class(
        **{k: v for k, v in SMALL.items() if k in {f.name for f in dataclasses.fields(algo.config_class)}}
    )
    return algo.configure_for_training(config, 1000)


def batch_for(algo, **kwargs):
    return batch(discrete=not algo.supports_continuous, **kwargs)


def batch(n=16, seed=0, discrete=False):
    rng = np.random.default_rng(seed)
    return {
        "observations": jnp.asarray(rng.standard_normal((n, 5)), jnp.float32),
        "actions": (
            jnp.asarray(rng.integers(0, 2, n), jnp.int32)
            if discrete
            else jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32)
        ),
        "rewards": jnp.asarray(rng.standard_normal(n), jnp.float32),
        "terminals": jnp.asarray(rng.integers(0, 2, n), jnp.float32),
        "next_observations": jnp.asarray(rng.standard_normal((n, 5)), jnp.float32),
        # derived columns some algorithms read (offrl.data.columns); the others ignore them
        "mc_returns": jnp.asarray(rng.standard_normal(n), jnp.float32),
        "next_actions": jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32),
        "is_expert": jnp.asarray((rng.random(n) < 0.3) | (np.arange(n) == 0), jnp.float32),
        "from_data": jnp.asarray((rng.random(n) < 0.5) | (np.arange(n) == 0), jnp.float32),
    }


@pytest.fixture(params=sorted(ALGORITHMS))
def algo(request):
    return ALGORITHMS[request.param]


def jitted_update(algo, data=None):
    """``update(state, batch)`` as the trainer runs it, with ``data`` (default: a 64-row batch) as the training set
    of algorithms whose update reads it (PRDC). The default one is compiled once per algorithm for all tests."""
    if data is None:
        return _default_update(algo.name)
    update = training_update(algo, small_config(algo), jax.tree_util.tree_map(np.asarray, data))
    return jax.jit(lambda state, b: update(state, b, data))


@functools.cache
def _default_update(name):
    algo = ALGORITHMS[name]
    data = batch_for(algo, n=64, seed=99)
    update = training_update(algo, small_config(algo), jax.tree_util.tree_map(np.asarray, data))
    return jax.jit(lambda state, b: update(state, b, data))


def test_update_changes_parameters_and_reports_finite_metrics(algo):
    state = algo.init(jax.random.PRNGKey(0), spec_of(algo), small_config(algo))
    update = jitted_update(algo)
    new_state, metrics = update(state, batch_for(algo))
    new_state, metrics = update(new_state, batch_for(algo, seed=1))  # delayed actors update on step 2
    assert metrics and all(np.isfinite(float(v)) for v in metrics.values())
    assert all("/" in name for name in metrics), "metric names are namespaced"
    before = jax.tree_util.tree_leaves(state)
    after = jax.tree_util.tree_leaves(new_state)
    assert len(before) == len(after)
    assert not leaves_equal(state, new_state)


def test_act_shapes_bounds_and_determinism(algo):
    state = algo.init(jax.random.PRNGKey(0), spec_of(algo), small_config(algo))
    obs = jnp.ones((7, 5))
    a1 = algo.act(state, obs, jax.random.PRNGKey(1), True)
    a2 = algo.act(state, obs, jax.random.PRNGKey(2), True)
    noisy = algo.act(state, obs, jax.random.PRNGKey(3), False)
    np.testing.assert_array_equal(a1, a2)
    if not algo.supports_continuous:  # action indices
        assert a1.shape == noisy.shape == (7,) and set(np.asarray(a1)) | set(np.asarray(noisy)) <= {0, 1}
        return
    assert a1.shape == (7, 2)
    assert float(jnp.abs(a1).max()) <= 1.0
    assert noisy.shape == (7, 2) and float(jnp.abs(noisy).max()) <= 1.0


def test_save_load_round_trip(algo, tmp_path):
    state = algo.init(jax.random.PRNGKey(0), spec_of(algo), small_config(algo))
    update = jitted_update(algo)
    state, _ = update(state, batch_for(algo))
    save_checkpoint(tmp_path, 1, {"agent": state}, {"algo": algo.name})
    template = algo.init(jax.random.PRNGKey(42), spec_of(algo), small_config(algo))
    restored, meta = load_checkpoint(tmp_path / "step_000000001.msgpack", {"agent": template})
    assert meta["algo"] == algo.name and meta["step"] == 1
    assert leaves_equal(restored["agent"], state)
    obs = jnp.ones((3, 5))
    np.testing.assert_array_equal(
        algo.act(restored["agent"], obs, jax.random.PRNGKey(0), True), algo.act(state, obs, jax.random.PRNGKey(0), True)
    )
    continued, _ = update(restored["agent"], batch_for(algo, seed=3))
    reference, _ = update(state, batch_for(algo, seed=3))
    assert leaves_equal(continued, reference)


def test_loading_into_a_different_architecture_names_the_problem(algo, tmp_path):
    state = algo.init(jax.random.PRNGKey(0), spec_of(algo), small_config(algo))
    save_checkpoint(tmp_path, 1, {"agent": state}, {})
    bigger = algo.init(jax.random.PRNGKey(0), spec_of(algo, (6,)), small_config(algo))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "step_000000001.msgpack", {"agent": bigger})
    with pytest.raises(CheckpointError, match="missing key|unknown key"):
        load_checkpoint(tmp_path / "step_000000001.msgpack", {"agent": state, "extra": jnp.zeros(1)})


def test_chunks_resume_exactly_and_compile_once(algo):
    """K updates in one call == K/2 + K/2 in two calls, bitwise; repeated calls reuse one compilation."""
    data = {k: v for k, v in batch_for(algo, n=64).items()}
    state = algo.init(jax.random.PRNGKey(0), spec_of(algo), small_config(algo))
    update = training_update(algo, small_config(algo), jax.tree_util.tree_map(np.asarray, data))
    names = metric_names(update, state, data, 8)
    copy = jax.tree_util.tree_map(jnp.array, state)

    whole = UpdateLoop(update, 8)
    s1, k1, _ = whole.run(state, jax.random.PRNGKey(7), data, 20, names)
    parts = UpdateLoop(update, 8)
    s2, k2, _ = parts.run(copy, jax.random.PRNGKey(7), data, 10, names)
    s2, k2, _ = parts.run(s2, k2, data, 10, names)
    assert leaves_equal(s1, s2) and np.array_equal(k1, k2)
    assert len(parts._compiled) == 1
    traces = []
    counted = UpdateLoop(lambda s, b, d: (traces.append(1), update(s, b, d))[1], 8)
    s3, k3 = jax.tree_util.tree_map(jnp.array, s1), jnp.array(k1)
    for _ in range(3):
        s3, k3, _ = counted.run(s3, k3, data, 5, names)
    assert len(traces) == 1, "the update was traced more than once"
