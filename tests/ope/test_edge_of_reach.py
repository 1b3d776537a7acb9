"""The edge-of-reach diagnostic: rollouts in a dynamics model, and the value gap at the rollouts' last states."""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.envs.dynamics import PendulumDynamics
from offrl.ope.edge_of_reach import edge_of_reach, rollout


def test_pendulum_dynamics_are_gymnasiums_pendulum():
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    model = PendulumDynamics()
    for _ in range(50):
        theta, theta_dot, u = rng.uniform(-np.pi, np.pi), rng.uniform(-8, 8), rng.uniform(-3, 3)
        env.state = np.array([theta, theta_dot])
        obs = np.array([[np.cos(theta), np.sin(theta), theta_dot]], np.float32)
        expected_obs, expected_reward, *_ = env.step(np.array([u], np.float32))
        next_obs, reward, terminal = model.step(jax.random.PRNGKey(0), jnp.asarray(obs), jnp.array([[u]], jnp.float32))
        np.testing.assert_allclose(np.asarray(next_obs)[0], expected_obs, atol=1e-4)
        assert float(reward[0]) == pytest.approx(expected_reward, abs=1e-4) and not bool(terminal[0])


class Counter:
    """s' = s + 1 (every dimension); terminal once the first coordinate passes ``end``."""

    def __init__(self, end: float = np.inf):
        self.end = end

    def step(self, key, observations, actions):
        nxt = observations + 1.0
        return nxt, jnp.ones(len(observations)), nxt[:, 0] > self.end


def test_a_rollout_stops_where_it_reaches_a_terminal_state():
    starts = np.array([[0.0, 0.0], [2.0, 0.0]], np.float32)
    r = rollout(Counter(end=2.5), lambda o: np.zeros((len(o), 1)), jax.random.PRNGKey(0), starts, horizon=3)
    assert r.observations.shape == (2, 4, 2) and r.actions.shape == (2, 3, 1)
    np.testing.assert_array_equal(r.observations[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(r.terminals[1], [True, True, True])
    np.testing.assert_array_equal(r.alive[0], [True, True, True, False])  # 3 > 2.5 at the last step
    np.testing.assert_array_equal(r.alive[1], [True, False, False, False])


def test_values_that_grow_off_the_data_are_flagged_at_the_edge():
    """States drift one unit per step away from the data at 0; a critic that extrapolates upwards (V = 10|s|^2)
    values the never-trained-on last states far above the others, a flat critic does not."""
    rng = np.random.default_rng(0)
    data = rng.normal(scale=0.1, size=(500, 2)).astype(np.float32)
    r = rollout(Counter(), lambda o: np.zeros((len(o), 1)), jax.random.PRNGKey(0), data[:100], horizon=5)
    inflated = edge_of_reach(r, lambda o: 10.0 * np.square(o).sum(1), data_observations=data)
    assert inflated.inflated and inflated.gap > 1.0 and "inflated" in inflated.explanation
    assert np.all(np.diff(inflated.step_values) > 0)
    assert inflated.step_distances[0] == 0.0 and np.all(np.diff(inflated.step_distances) > 0)
    flat = edge_of_reach(r, lambda o: np.sin(37.0 * o[:, 0]))
    assert not flat.inflated and abs(flat.gap) < 1.0 and flat.step_distances is None
    assert set(flat.summary()) == {"edge_of_reach/gap", "edge_of_reach/edge_value", "edge_of_reach/reach_value"}


def test_every_rollout_ending_before_the_edge_is_an_error():
    r = rollout(Counter(end=0.5), lambda o: np.zeros((len(o), 1)), jax.random.PRNGKey(0), np.zeros((3, 1)), 2)
    with pytest.raises(ValueError, match="shorter horizon"):
        edge_of_reach(r, lambda o: o[:, 0])


def test_an_offrl_critic_on_true_pendulum_rollouts(tmp_path):
    from offrl.data.builtin import load_builtin
    from offrl.ope.edge_of_reach import checkpoint_value
    from offrl.train import TrainConfig, train

    train(TrainConfig(algo="td3bc", steps=200, eval_interval=0, eval_episodes=1, output_dir=str(tmp_path),
                      run_name="r", progress=False))  # fmt: skip
    value, policy = checkpoint_value(tmp_path / "r")
    data, _ = load_builtin("pendulum-mixed")
    r = rollout(PendulumDynamics(), policy, jax.random.PRNGKey(0), data.observations[:256], horizon=5)
    report = edge_of_reach(r, value, data_observations=data.observations)
    assert report.step_values.shape == (6,) and np.isfinite(report.step_values).all()
    assert report.step_distances[0] == 0.0 and np.isfinite(report.gap)
