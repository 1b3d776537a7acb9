"""ResFiT: the base is cloned offline and frozen online; the residual stays within its bound."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos.base import Spec, finetuning_configs
from offrl.algos.resfit import ALGORITHM, ResFiTConfig, init, networks
from tests.algos.test_contract import batch
from tests.conftest import leaves_equal

SPEC = Spec((5,), 2)


def configs(**changes):
    return finetuning_configs(ALGORITHM, ResFiTConfig(hidden_dims=(32, 32), base_hidden_dims=(32, 32), **changes), 1, 1)


def test_offline_updates_clone_the_base_only_and_online_updates_leave_it_frozen():
    offline, online = configs()
    assert not offline.residual and online.residual
    state = init(jax.random.PRNGKey(0), SPEC, offline)
    cloned, metrics = jax.jit(ALGORITHM.update)(state, batch(n=32))
    assert set(metrics) == {"base/loss", "base/grad_norm"}
    assert not leaves_equal(cloned.base_params, state.base_params)
    assert leaves_equal(cloned.residual_params, state.residual_params)
    assert leaves_equal(cloned.critic_params, state.critic_params)

    online_state = cloned.replace(config=online)
    update = jax.jit(ALGORITHM.update)
    for seed in range(4):  # the residual steps every policy_delay-th update
        online_state, metrics = update(online_state, batch(n=32, seed=seed))
    assert leaves_equal(online_state.base_params, cloned.base_params)
    assert not leaves_equal(online_state.residual_params, cloned.residual_params)
    assert not leaves_equal(online_state.critic_params, cloned.critic_params)
    assert float(metrics["residual/abs_mean"]) <= online.residual_scale


def test_actions_stay_within_the_residual_scale_of_the_base_action():
    _, online = configs(residual_scale=0.1, exploration_noise=5.0)
    state = init(jax.random.PRNGKey(0), SPEC, online)
    nets = networks(online, SPEC)
    # a residual pushed to its bound: large output weights
    state = state.replace(residual_params=jax.tree_util.tree_map(lambda p: p * 50.0, state.residual_params))
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 5))
    base = np.clip(np.asarray(nets.base.apply(state.base_params, obs)), -1, 1)
    for deterministic in (True, False):
        actions = np.asarray(ALGORITHM.act(state, obs, jax.random.PRNGKey(2), deterministic))
        assert np.abs(actions).max() <= 1.0
        assert np.abs(actions - base).max() <= 0.1 + 1e-6


def test_training_starts_at_the_base_policy():
    """The residual's last layer starts near zero, so the first online actions are the cloned policy's."""
    _, online = configs()
    state = init(jax.random.PRNGKey(0), SPEC, online)
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 5))
    base = networks(online, SPEC).base.apply(state.base_params, obs)
    actions = ALGORITHM.act(state, obs, jax.random.PRNGKey(2), True)
    assert float(jnp.abs(actions - base).max()) < 0.02
