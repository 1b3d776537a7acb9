"""HNPG and its combination lock: the lock's rules, GAE, the trust region, and that offline data opens the lock."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.algos.hnpg import HNPGConfig, Policy, _npg_step, gae, train_hnpg
from offrl.envs.combination_lock import DEAD, VectorLock, collect_offline


def test_the_optimal_policy_opens_the_lock_and_a_random_one_does_not():
    lock = VectorLock(6, 10, lock_seed=3)
    data = collect_offline(lock, 500, epsilon=0.0, seed=0)
    assert data["observations"].shape == (6, 500, lock.observation_dim) and lock.observation_dim == 16
    # the one-hot action makes the right choice with probability 0.9996 (softmax at temperature 0.1)
    assert data["rewards"].sum(0).mean() > 0.99
    lock.reset(2000, seed=1)
    total = np.zeros(2000)
    for _ in range(6):
        _, rewards, done = lock.step(np.random.default_rng(0).normal(size=(2000, 10)))
        total += rewards
    assert done and (total < 1.0).all()  # 10^-6 chance per episode
    assert np.isclose(total, 0.0).sum() + np.isclose(total, 0.1).sum() == 2000  # only the reward for dying
    assert (lock.state == DEAD).mean() > 0.99


def test_the_dead_state_is_absorbing_and_pays_only_when_entered():
    lock = VectorLock(4, 5, lock_seed=0, p_anti_reward=1.0)
    lock.reset(3, seed=0)
    wrong = np.zeros((3, 5), np.float32)
    h0 = np.where(lock.state == 0, lock.opt_a[0], lock.opt_b[0])
    wrong[np.arange(3), (h0 + 1) % 5] = 1.0
    _, r1, _ = lock.step(wrong)
    _, r2, _ = lock.step(lock.optimal_actions())
    np.testing.assert_allclose(r1, 0.1)  # dying pays the anti-reward (probability 1 here)
    np.testing.assert_allclose(r2, 0.0)
    assert (lock.state == DEAD).all()


def test_gae_with_lambda_one_is_the_return_minus_the_value():
    rewards = jnp.array([[0.0, 0.1], [0.0, 0.0], [1.0, 0.0]])  # [H=3, N=2]
    values = jnp.array([[0.5, 0.2], [0.4, 0.1], [0.9, 0.0]])
    returns, advantages = gae(rewards, values, 1.0)
    np.testing.assert_allclose(returns, [[1.0, 0.1], [1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(advantages, returns - values, atol=1e-6)


def test_an_npg_step_stays_in_the_trust_region_and_improves_the_surrogate():
    policy = Policy((16, 16), 3)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)))
    obs = jax.random.normal(jax.random.PRNGKey(1), (256, 5))
    actions = jax.random.normal(jax.random.PRNGKey(2), (256, 3))
    advantages = actions[:, 0]  # actions with a large first component are better
    config = HNPGConfig(max_kl=0.01)
    new, info = jax.jit(lambda p: _npg_step(policy, config, p, obs, actions, advantages))(params)
    assert float(info["npg/accepted"]) == 1.0
    (m0, s0), (m1, s1) = policy.apply(params, obs), policy.apply(new, obs)
    kl = (s1 - s0 + (jnp.exp(2 * s0) + (m0 - m1) ** 2) / (2 * jnp.exp(2 * s1)) - 0.5).sum(-1).mean()
    assert 0 < float(kl) <= 0.01 * 1.5
    assert float((m1 - m0)[:, 0].mean()) > 0  # the mean moved towards the better actions


@pytest.mark.slow
def test_hnpg_opens_a_lock_of_horizon_4_with_offline_data():
    """HNPG's official setting at horizon 4 (10^-4 chance per random episode): 0.95 after 30 iterations (seed 0)."""
    lock = VectorLock(4, 10, lock_seed=0)
    offline = collect_offline(lock, 2000, epsilon=1 / 4, seed=1)
    _, history = train_hnpg(lock, offline, HNPGConfig(), 40, seed=0)
    assert np.mean([h["train/return"] for h in history[-5:]]) > 0.8


@pytest.mark.slow
def test_on_policy_npg_does_not_open_a_lock_of_horizon_5_that_hnpg_opens():
    """The paper's claim at small scale (benchmarks/hnpg_lock.py has the table): with the epsilon-greedy optimal
    data HNPG opens the lock; NPG alone only learns to collect the distracting reward for dying."""
    lock = VectorLock(5, 10, lock_seed=0)
    offline = collect_offline(lock, 2000, epsilon=1 / 5, seed=1)
    _, hybrid = train_hnpg(lock, offline, HNPGConfig(), 100, seed=0)
    _, alone = train_hnpg(lock, None, HNPGConfig(hybrid=False), 100, seed=0)
    assert np.mean([h["train/return"] for h in hybrid[-10:]]) > 0.9
    assert np.mean([h["train/return"] for h in alone[-10:]]) < 0.2
