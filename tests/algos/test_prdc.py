"""PRDC's dataset constraint: on a bandit with two logged action modes, PRDC settles on the better mode itself,
where TD3+BC's batch-action BC term pulls the policy towards the average of the modes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos import get_algorithm
from offrl.algos.base import Spec, training_update
from offrl.train.engine import UpdateLoop, metric_names


def two_mode_bandit(n=2048, seed=0):
    """One-step episodes; half the logged actions are -0.6 (reward 1), half +0.6 (reward 0)."""
    rng = np.random.default_rng(seed)
    observations = rng.standard_normal((n, 2)).astype(np.float32)
    good = rng.random(n) < 0.5
    actions = np.where(good, -0.6, 0.6).astype(np.float32)[:, None]
    return {
        "observations": observations,
        "actions": actions,
        "rewards": good.astype(np.float32),
        "terminals": np.ones(n, np.float32),
        "next_observations": observations,
    }


def trained_actions(name: str, arrays, alpha: float, updates=3000):
    algo = get_algorithm(name)
    config = algo.config_class(hidden_dims=(64, 64), alpha=alpha)
    state = algo.init(jax.random.PRNGKey(0), Spec((2,), 1), config)
    update = training_update(algo, config, arrays)
    data = jax.device_put(arrays)
    loop = UpdateLoop(update, 256)
    state, _, _ = loop.run(state, jax.random.PRNGKey(1), data, updates, metric_names(update, state, data, 256))
    return np.asarray(algo.act(state, jnp.asarray(arrays["observations"][:256]), jax.random.PRNGKey(2), True))


def test_prdc_takes_the_better_logged_mode_where_td3bc_averages():
    arrays = two_mode_bandit()
    # a weak Q term (alpha 0.1), so that the constraint decides: measured -0.65 (PRDC) and -0.09 (TD3+BC)
    prdc = trained_actions("prdc", arrays, alpha=0.1)
    td3bc = trained_actions("td3bc", arrays, alpha=0.1)
    assert np.abs(prdc - (-0.6)).mean() < 0.15, prdc.mean()
    assert np.abs(td3bc).mean() < 0.25 and np.abs(td3bc - (-0.6)).mean() > 0.35, td3bc.mean()


def test_prdc_update_alone_names_what_it_needs():
    algo = get_algorithm("prdc")
    with pytest.raises(TypeError, match="whole training set"):
        algo.update(None, {})
