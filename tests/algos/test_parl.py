"""PA-RL: action optimisation (global then local step), distillation targets, and the switch to distilling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos.base import Spec, finetuning_configs
from offrl.algos.parl import (
    ALGORITHM,
    PARLConfig,
    base_samples,
    critic_value,
    distillation_targets,
    init,
    networks,
    optimise_actions,
)
from offrl.train.checkpoint import load_checkpoint, save_checkpoint
from tests.algos.test_contract import batch
from tests.conftest import leaves_equal

SPEC = Spec((5,), 2)


def small(**changes):
    return PARLConfig(hidden_dims=(32, 32), base_hidden_dims=(32, 32), num_critics=3, **changes)


def setup(config, n=16):
    state = init(jax.random.PRNGKey(0), SPEC, config)
    obs = jax.random.normal(jax.random.PRNGKey(1), (n, 5))
    candidates = base_samples(networks(config, SPEC), config, state.base_params, obs, jax.random.PRNGKey(2))
    return state, obs, candidates


def test_the_global_step_keeps_the_k_candidates_of_largest_mean_value():
    config = small(num_base_actions=8, num_keep=3, opt_steps=0)
    state, obs, candidates = setup(config)
    nets = networks(config, SPEC)
    actions, values, _ = optimise_actions(nets, config, state.critic_params, obs, candidates)
    all_values = np.asarray(critic_value(nets, config, state.critic_params, obs, candidates))
    expected = np.sort(all_values, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(np.sort(np.asarray(values), axis=1)[:, ::-1], expected, rtol=1e-5, atol=1e-6)
    for row in range(len(obs)):  # each kept action is one of the row's candidates
        for action in np.asarray(actions[row]):
            assert np.isclose(np.asarray(candidates[row]), action, atol=1e-6).all(axis=1).any()


@pytest.mark.parametrize("ensemble_min", [False, True])
def test_the_local_step_never_loses_value_and_stays_in_bounds(ensemble_min):
    """Gradient ascent keeps each particle's best iterate: the values only go up, and with a large step they do."""
    base = dict(num_base_actions=8, num_keep=4, opt_ensemble_min=ensemble_min)
    state, obs, candidates = setup(small(opt_steps=0, **base))
    nets = networks(small(**base), SPEC)
    _, start, _ = optimise_actions(nets, small(opt_steps=0, **base), state.critic_params, obs, candidates)
    config = small(opt_steps=5, opt_step_size=0.05, **base)
    actions, values, info = optimise_actions(nets, config, state.critic_params, obs, candidates)
    assert float(jnp.abs(actions).max()) <= 1.0
    np.testing.assert_array_less(np.asarray(start) - 1e-6, np.asarray(values))  # never worse
    assert float(info["opt/q_gain"]) > 0  # and better on average
    recomputed = critic_value(nets, config, state.critic_params, obs, actions)
    np.testing.assert_allclose(recomputed, values, rtol=1e-5, atol=1e-6)  # the values are those of the actions


def test_a_deterministic_base_policys_own_action_is_always_a_candidate():
    config = small(base_policy="deterministic", deterministic_noise=0.3)
    state, obs, candidates = setup(config)
    own = networks(config, SPEC).base.apply(state.base_params, obs)
    np.testing.assert_allclose(candidates[:, 0], own, rtol=1e-6)
    assert float(jnp.abs(candidates[:, 1:] - own[:, None]).mean()) > 0.05
    exact = small(base_policy="deterministic", deterministic_noise=0.0)
    _, _, copies = setup(exact)
    np.testing.assert_allclose(copies, jnp.broadcast_to(copies[:, :1], copies.shape))


def test_argmax_distillation_targets_the_best_candidate_the_dataset_action_included():
    config = small(num_base_actions=6, num_keep=3, opt_steps=2, distill=True, distill_argmax=True)
    state = init(jax.random.PRNGKey(0), SPEC, config)
    rows = batch(n=32)
    nets = networks(config, SPEC)
    targets, info = distillation_targets(nets, config, state, rows, jax.random.PRNGKey(5))
    assert targets.shape == (32, 2) and 0.0 <= float(info["distill/data_chosen"]) <= 1.0
    target_values = critic_value(nets, config, state.critic_params, rows["observations"], targets[:, None])[:, 0]
    data_values = critic_value(nets, config, state.critic_params, rows["observations"], rows["actions"][:, None])
    assert bool((target_values >= data_values[:, 0] - 1e-5).all())


@pytest.mark.parametrize("base_policy", ["gaussian", pytest.param("deterministic", marks=pytest.mark.slow)])
def test_the_online_phase_distils_with_the_same_state_layout(tmp_path, base_policy):
    """The switch turns distillation on (and its learning rate); an offline checkpoint loads into the online state,
    and the online update moves the base policy towards optimised actions rather than the data's."""
    offline, online = finetuning_configs(ALGORITHM, small(base_policy=base_policy, cql_alpha_online=0.5), 10, 10)
    assert not offline.distill and online.distill and online.cql_alpha == 0.5
    state = init(jax.random.PRNGKey(0), SPEC, offline)
    state, _ = jax.jit(ALGORITHM.update)(state, batch(n=32))
    save_checkpoint(tmp_path, 1, {"agent": state}, {})
    template = init(jax.random.PRNGKey(1), SPEC, online)
    restored, _ = load_checkpoint(tmp_path / "step_000000001.msgpack", {"agent": template})
    assert leaves_equal(jax.tree_util.tree_leaves(restored["agent"]), jax.tree_util.tree_leaves(state))
    _, metrics = jax.jit(ALGORITHM.update)(restored["agent"], batch(n=32, seed=1))
    assert "distill/data_chosen" in metrics and np.isfinite(float(metrics["base/loss"]))
