"""CQL's conservative term on a critic whose value is known, and the direction of its Lagrange weight."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos import cql
from offrl.algos.base import Spec

SPEC = Spec((3,), 2)


def constant_critic(state: cql.CQLState, value: float) -> dict:
    """Critic parameters with every kernel zero and the output bias ``value``: Q(s, a) = value everywhere."""

    def set_leaf(path, leaf):
        names = [getattr(k, "key", "") for k in path]
        last_dense = any(n.startswith("Dense_") for n in names) and names[-2] == max(
            n for n in names if n.startswith("Dense_")
        )
        if names[-1] == "bias" and "MLP_0" in names and last_dense and leaf.shape[-1] == 1:
            return jnp.full_like(leaf, value)
        return jnp.zeros_like(leaf)

    return jax.tree_util.tree_map_with_path(set_leaf, state.critic_params)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observations": jnp.asarray(rng.standard_normal((n, 3)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32),
        "rewards": jnp.ones(n),
        "terminals": jnp.zeros(n),
        "next_observations": jnp.asarray(rng.standard_normal((n, 3)), jnp.float32),
    }


def proposals(state, data, n):
    nets = cql.networks(state.config, SPEC)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    random_actions = jax.random.uniform(keys[0], (8, n, 2), minval=-1.0, maxval=1.0)
    policy, policy_lp = cql.sample_actions(nets, state.actor_params, data["observations"], keys[1], n)
    nxt, nxt_lp = cql.sample_actions(nets, state.actor_params, data["next_observations"], keys[2], n)
    return nets, (random_actions, policy, policy_lp, nxt, nxt_lp)


def test_gap_of_a_constant_critic_is_the_log_of_the_number_of_actions_without_importance_weights():
    config = cql.CQLConfig(hidden_dims=(16, 16), importance_sample=False, n_actions=10)
    state = cql.init(jax.random.PRNGKey(0), SPEC, config)
    params = constant_critic(state, 3.0)
    data = batch()
    nets, props = proposals(state, data, 10)
    q_data = nets.critic.apply(params, data["observations"], data["actions"])
    np.testing.assert_allclose(np.asarray(q_data), 3.0)
    gap, _ = cql.conservative_gap(params, nets, data, q_data, props, config)
    np.testing.assert_allclose(np.asarray(gap), [math.log(31)] * 2, rtol=1e-5)  # 30 sampled + the data action


def test_importance_weights_subtract_each_proposals_log_density():
    config = cql.CQLConfig(hidden_dims=(16, 16), importance_sample=True, n_actions=4)
    state = cql.init(jax.random.PRNGKey(0), SPEC, config)
    params = constant_critic(state, 0.0)
    data = batch()
    nets, props = proposals(state, data, 4)
    q_data = nets.critic.apply(params, data["observations"], data["actions"])
    gap, _ = cql.conservative_gap(params, nets, data, q_data, props, config)
    _, _, policy_lp, _, next_lp = props
    uniform = 4 * 2**2  # exp(-log 0.5^2) = 4 per uniform action
    expected = np.log(uniform + np.exp(-np.asarray(policy_lp)).sum(1) + np.exp(-np.asarray(next_lp)).sum(1))
    np.testing.assert_allclose(np.asarray(gap), [expected.mean()] * 2, rtol=1e-4)


def test_lagrange_weight_grows_when_the_weighted_gap_exceeds_the_target_and_shrinks_otherwise():
    data = batch()
    for target, direction in ((0.0, 1), (1e6, -1)):
        config = cql.CQLConfig(hidden_dims=(16, 16), lagrange=True, target_action_gap=target)
        state = cql.init(jax.random.PRNGKey(0), SPEC, config)
        new_state, metrics = jax.jit(cql.update)(state, data)
        assert float(metrics["cql/gap"]) > 0
        assert np.sign(float(new_state.log_alpha_prime - state.log_alpha_prime)) == direction


def test_max_target_backup_and_bc_warm_start_run():
    config = cql.CQLConfig(hidden_dims=(16, 16), max_target_backup=True, backup_entropy=True, bc_steps=2)
    state = cql.init(jax.random.PRNGKey(0), SPEC, config)
    update = jax.jit(cql.update)
    for seed in range(3):  # two cloning steps, then Q steps
        state, metrics = update(state, batch(seed=seed))
        assert all(np.isfinite(float(v)) for v in metrics.values())
    assert int(state.step) == 3


def test_cal_ql_floors_the_policy_values_at_the_monte_carlo_return():
    config = cql.CalQLConfig(hidden_dims=(16, 16), importance_sample=False, n_actions=10)
    state = cql.init(jax.random.PRNGKey(0), SPEC, config)
    params = constant_critic(state, 0.0)
    data = {**batch(), "mc_returns": jnp.full(8, 5.0)}
    nets, props = proposals(state, data, 10)
    q_data = nets.critic.apply(params, data["observations"], data["actions"])
    gap, info = cql.conservative_gap(params, nets, data, q_data, props, config)
    # uniform actions and the data action stay at 0; the 20 policy actions are lifted to the return, 5
    np.testing.assert_allclose(np.asarray(gap), [math.log(11 + 20 * math.exp(5.0))] * 2, rtol=1e-5)
    assert float(info["cql/bound_active"]) == 1.0
    plain, _ = cql.conservative_gap(params, nets, data, q_data, props, cql.CQLConfig(importance_sample=False))
    np.testing.assert_allclose(np.asarray(plain), [math.log(31)] * 2, rtol=1e-5)


def test_cql_and_cal_ql_take_another_conservative_weight_online():
    from offrl.algos import get_algorithm
    from offrl.algos.base import finetuning_configs
    from offrl.algos.cql import CalQLConfig, CQLConfig

    for name, config in (("cql", CQLConfig(cql_alpha_online=1.0)), ("cal-ql", CalQLConfig(cql_alpha_online=1.0))):
        offline, online = finetuning_configs(get_algorithm(name), config, 100, 100)
        assert (offline.cql_alpha, online.cql_alpha) == (5.0, 1.0), name
