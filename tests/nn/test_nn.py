"""Loss helpers, distributions, ensembles and target updates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from offrl.nn import Ensemble, QNetwork, expectile_loss, polyak_update, td_target
from offrl.nn.policies import gaussian_log_prob, tanh_gaussian_log_prob, tanh_gaussian_sample
from offrl.nn.updates import copy_tree


def fit_constant(samples: np.ndarray, expectile: float) -> float:
    """Minimise the mean expectile loss of (samples - c) over a constant c by gradient descent (2000 Adam steps)."""
    x = jnp.asarray(samples)
    opt = optax.adam(0.05)

    def step(_, carry):
        c, state = carry
        grads = jax.grad(lambda c: expectile_loss(x - c, expectile).mean())(c)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(c, updates), state

    c = jnp.asarray(float(np.mean(samples)))
    c, _ = jax.jit(lambda c: jax.lax.fori_loop(0, 2000, step, (c, opt.init(c))))(c)
    return float(c)


def test_expectile_half_is_the_mean_and_high_expectile_approaches_the_max():
    samples = np.random.default_rng(0).standard_normal(500)
    assert fit_constant(samples, 0.5) == pytest.approx(samples.mean(), abs=1e-3)
    high = fit_constant(samples, 0.999)
    assert samples.max() - high < 0.6 * (samples.max() - samples.mean())
    assert fit_constant(samples, 0.9) > fit_constant(samples, 0.7) > samples.mean()


def test_expectile_loss_weights():
    diff = jnp.array([-2.0, 2.0])
    np.testing.assert_allclose(expectile_loss(diff, 0.7), [0.3 * 4, 0.7 * 4], rtol=1e-6)


def test_td_target_stops_at_terminals_and_bootstraps_through_timeouts():
    """Pinned: a transition cut by a time limit (terminal = 0) keeps gamma * V(s'); a terminal one does not."""
    rewards = jnp.array([1.0, 1.0])
    terminals = jnp.array([0.0, 1.0])  # row 0 is a timeout in the dataset: it reaches the loss as terminal = 0
    next_values = jnp.array([10.0, 10.0])
    np.testing.assert_allclose(td_target(rewards, terminals, next_values, 0.9), [10.0, 1.0])


def test_tanh_gaussian_log_prob_is_finite_at_the_bounds_and_matches_sampling():
    mean, log_std = jnp.zeros(2), jnp.zeros(2)
    for action in ([1.0, -1.0], [0.999999, 0.0]):
        assert np.isfinite(float(tanh_gaussian_log_prob(jnp.array(action), mean, log_std)))
    action, log_prob = tanh_gaussian_sample(jax.random.PRNGKey(0), jnp.array([0.3, -0.2]), jnp.array([-1.0, 0.5]))
    again = tanh_gaussian_log_prob(action, jnp.array([0.3, -0.2]), jnp.array([-1.0, 0.5]))
    np.testing.assert_allclose(log_prob, again, rtol=1e-4)


def test_gaussian_log_prob_matches_closed_form():
    x, mean, log_std = jnp.array([0.5]), jnp.array([0.0]), jnp.array([np.log(2.0)])
    expected = -0.5 * (0.25) ** 2 - np.log(2.0) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(gaussian_log_prob(x, mean, log_std), expected, rtol=1e-6)


def test_ensemble_members_are_independent():
    critic = Ensemble(QNetwork, 3)((16, 16))
    params = critic.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    q = critic.apply(params, jnp.ones((5, 4)), jnp.ones((5, 2)))
    assert q.shape == (3, 5)
    assert len({float(v) for v in q[:, 0]}) == 3
    kernel = jax.tree_util.tree_leaves(params)[0]
    assert kernel.shape[0] == 3


def test_polyak_update_and_copy():
    target = {"w": jnp.zeros(3)}
    online = {"w": jnp.ones(3)}
    np.testing.assert_allclose(polyak_update(target, online, 0.1)["w"], 0.1)
    copied = copy_tree(online)
    assert copied["w"] is not online["w"]
    np.testing.assert_array_equal(copied["w"], online["w"])


def test_pytorch_init_is_uniform_in_one_over_sqrt_fan_in_and_orthogonal_stays_the_default():
    from offrl.nn.networks import MLP

    x = jnp.zeros((1, 40))
    torch_like = MLP((300, 300), 2, weight_init="pytorch").init(jax.random.PRNGKey(0), x)["params"]
    for layer, fan_in in (("Dense_0", 40), ("Dense_1", 300), ("Dense_2", 300)):
        bound = 1.0 / np.sqrt(fan_in)
        for name in ("kernel", "bias"):
            values = np.asarray(torch_like[layer][name])
            assert np.abs(values).max() <= bound
            if values.size > 1000:  # U(-b, b) has std b / sqrt(3)
                assert abs(values.std() - bound / np.sqrt(3.0)) < 0.05 * bound
        assert np.abs(np.asarray(torch_like[layer]["bias"])).max() > 0  # PyTorch starts biases off zero too

    default = MLP((300, 300), 2).init(jax.random.PRNGKey(0), x)["params"]
    kernel = np.asarray(default["Dense_1"]["kernel"])  # orthogonal with gain sqrt(2): K^T K = 2 I
    np.testing.assert_allclose(kernel.T @ kernel, 2.0 * np.eye(300), atol=1e-4)
    assert not np.any(np.asarray(default["Dense_1"]["bias"]))
    with pytest.raises(ValueError, match="unknown network init"):
        MLP((8,), 1, weight_init="xavier").init(jax.random.PRNGKey(0), x)
