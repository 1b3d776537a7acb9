"""RO2O: the perturbations, the symmetric KL, the decaying uncertainty weight, and what the online phase drops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos.base import Spec, finetuning_configs
from offrl.algos.ro2o import ALGORITHM, RO2OConfig, init, perturbed, symmetric_gaussian_kl
from tests.algos.test_contract import batch

SPEC = Spec((5,), 2)


def small(**changes):
    return RO2OConfig(hidden_dims=(32, 32), num_critics=3, num_perturbations=4, **changes)


def test_perturbations_are_shared_by_the_batch_and_within_the_radius():
    obs = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    noisy = perturbed(obs, jax.random.PRNGKey(1), 0.01, 7)
    offsets = np.asarray(noisy - obs[:, None])
    assert noisy.shape == (6, 7, 5) and np.abs(offsets).max() <= 0.01
    np.testing.assert_allclose(offsets, np.broadcast_to(offsets[:1], offsets.shape), atol=1e-6)


def test_the_symmetric_kl_is_zero_for_equal_gaussians_and_matches_the_closed_form():
    mean, log_std = jnp.array([[0.3, -1.0]]), jnp.array([[0.1, -0.5]])
    assert float(symmetric_gaussian_kl(mean, log_std, mean, log_std)[0]) == pytest.approx(0.0, abs=1e-6)
    # 1-d: N(0, 1) vs N(1, 2^2): KL12 = log 2 + (1 + 1) / 8 - 1/2, KL21 = -log 2 + (4 + 1) / 2 - 1/2
    kl = symmetric_gaussian_kl(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.ones((1, 1)), jnp.log(2.0) * jnp.ones((1, 1)))
    assert float(kl[0]) == pytest.approx(np.log(2) + 0.25 - 0.5 - np.log(2) + 2.5 - 0.5, rel=1e-5)


@pytest.mark.parametrize("variant", ["mujoco", "lcb"])
def test_the_online_phase_drops_the_smoothness_terms_and_keeps_the_uncertainty_weight(variant):
    offline, online = finetuning_configs(ALGORITHM, small(online_variant=variant, uncertainty_decay=0.1), 1, 1)
    assert not offline.online and online.online
    update = jax.jit(ALGORITHM.update)
    state = init(jax.random.PRNGKey(0), SPEC, offline)
    state, metrics = update(state, batch(n=32))
    assert {"critic/q_smoothness", "critic/ood_loss", "actor/smoothness"} <= set(metrics)
    assert float(state.uncertainty_weight) == pytest.approx(0.9)  # 1.0 - 0.1
    for _ in range(10):
        state, _ = update(state, batch(n=32))
    assert float(state.uncertainty_weight) == pytest.approx(0.1)  # its floor
    online_state, metrics = jax.jit(ALGORITHM.update)(state.replace(config=online), batch(n=32, seed=1))
    assert not {"critic/q_smoothness", "critic/ood_loss", "actor/smoothness"} & set(metrics)
    assert ("actor/bc_loss" in metrics) == (variant == "lcb")
    assert float(online_state.uncertainty_weight) == pytest.approx(0.1)
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_the_ood_term_pushes_q_down_where_the_ensemble_disagrees():
    """Everything else equal, training with the OOD term leaves Q lower at the policy's actions than without it
    (zero rewards and gamma 0, so the TD term only pulls Q towards 0 at the data's actions)."""
    from offrl.algos.ro2o import networks

    rows = {**batch(n=64), "rewards": jnp.zeros(64), "actions": jnp.zeros((64, 2))}
    values = []
    for beta_ood in (0.0, 1.0):
        config = small(discount=0.0, q_smooth_weight=0.0, beta_ood=beta_ood, beta_policy=0.0, uncertainty_decay=0.0)
        state = init(jax.random.PRNGKey(0), SPEC, config)
        update = jax.jit(ALGORITHM.update)
        for _ in range(30):
            state, _ = update(state, rows)
        obs = rows["observations"]
        actions = ALGORITHM.act(state, obs, jax.random.PRNGKey(3), True)
        values.append(float(networks(config, SPEC).critic.apply(state.critic_params, obs, actions).mean()))
    assert values[1] < values[0]
