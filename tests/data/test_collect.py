"""Dataset making: collection rules, behaviour policies, and round trips through the D4RL and Minari writers."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import collect as c
from offrl.data import load_dataset
from offrl.data.formats.d4rl import save_d4rl_hdf5
from offrl.data.formats.minari import load_minari, save_minari
from offrl.envs import get_task

COLUMNS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def tiny_actor(path, obs_dim=3, action_dim=1, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "hidden0_w": rng.standard_normal((obs_dim, 256)) * 0.1,
        "hidden0_b": np.zeros(256),
        "hidden1_w": rng.standard_normal((256, 256)) * 0.05,
        "hidden1_b": np.zeros(256),
        "mean_w": rng.standard_normal((256, action_dim)),
        "mean_b": np.zeros(action_dim),
        "log_std_w": np.zeros((256, action_dim)),
        "log_std_b": np.full(action_dim, -1.0),
    }
    np.savez(path, **arrays)
    return path


def test_collection_ends_episodes_at_time_limits_and_at_the_end():
    task = get_task("pendulum")
    ds = c.collect(task, c.uniform_policy(task, 0), 450, seed=0)
    assert ds.size == 450 and not ds.terminals.any()
    assert np.flatnonzero(ds.timeouts).tolist() == [199, 399, 449]  # time limit, time limit, end of collection
    inside = ~ds.timeouts[:-1]
    np.testing.assert_array_equal(ds.next_observations[:-1][inside], ds.observations[1:][inside])
    assert np.all(np.abs(ds.actions) <= 2.0) and "infos/qpos" not in ds.extras
    again = c.collect(task, c.uniform_policy(task, 0), 450, seed=0)
    assert ds.fingerprint() == again.fingerprint()  # reproducible by seed


def test_mujoco_collection_records_terminals_and_simulator_state():
    task = get_task("hopper")
    ds = c.collect(task, c.uniform_policy(task, 1), 300, seed=1)
    assert ds.terminals.any()  # random hopper falls
    assert not (ds.terminals & ds.timeouts).any()
    assert ds.extras["infos/qpos"].shape == (300, 6) and ds.extras["infos/qvel"].shape == (300, 6)
    # Hopper's observation is qpos[1:] and the clipped qvel of the state before the step
    np.testing.assert_allclose(ds.observations[:, :5], ds.extras["infos/qpos"][:, 1:], atol=1e-5)


def test_npz_actor_deterministic_stochastic_and_wrong_shapes(tmp_path):
    task = get_task("pendulum")
    path = tiny_actor(tmp_path / "actor.npz")
    obs = np.array([1.0, 0.0, 0.5], np.float32)
    mean = c.npz_actor(path, task, stochastic=False, seed=0)
    assert np.array_equal(mean(obs), mean(obs)) and np.abs(mean(obs)) <= 2.0
    sampled = c.npz_actor(path, task, stochastic=True, seed=0)
    draws = np.array([sampled(obs) for _ in range(50)])
    assert draws.std() > 0 and np.all(np.abs(draws) <= 2.0)
    with pytest.raises(ValueError, match="expects observations of size 3"):
        c.npz_actor(path, get_task("hopper"), stochastic=False, seed=0)
    weights = dict(np.load(path))
    weights["hidden1_b"][0] = np.nan
    np.savez(tmp_path / "nan.npz", **weights)
    with pytest.raises(ValueError, match=r"the actor's weights \['hidden1_b'\] hold NaN or inf"):
        c.npz_actor(tmp_path / "nan.npz", task, stochastic=False, seed=0)


def test_noise_and_epsilon_mixing_stay_in_bounds():
    task = get_task("pendulum")
    zero = lambda obs: np.zeros(1, np.float32)  # noqa: E731
    noisy = c.with_noise(zero, task, seed=0, action_noise=0.5)
    a = np.array([noisy(np.zeros(3)) for _ in range(500)])
    assert 0.8 < a.std() < 1.2 and np.all(np.abs(a) <= 2.0)  # std 0.5 half-ranges = 1.0 torque
    uniform = c.with_noise(zero, task, seed=0, epsilon=1.0)
    b = np.array([uniform(np.zeros(3)) for _ in range(500)])
    assert b.min() < -1.5 and b.max() > 1.5
    with pytest.raises(ValueError):
        c.with_noise(zero, task, seed=0, epsilon=1.5)


@pytest.mark.parametrize("fmt", ["d4rl", "minari"])
def test_written_datasets_load_back_identically(tmp_path, fmt):
    task = get_task("hopper")
    ds = c.collect(task, c.uniform_policy(task, 2), 500, seed=2)
    if fmt == "d4rl":
        path = save_d4rl_hdf5(ds, tmp_path / "x.hdf5", {"behavior": "random"})
        back = load_dataset(path)
        assert back.metadata["behavior"] == "random" and back.metadata["env_id"] == "Hopper-v5"
        with pytest.raises(FileExistsError):
            save_d4rl_hdf5(ds, path)
    else:
        path = save_minari(ds, tmp_path / "x", "offrl/hopper-random-v0", {"behavior": "random"})
        back = load_minari(path)
        assert back.metadata["minari_dataset_id"] == "offrl/hopper-random-v0"
        assert back.metadata["env_id"] == "Hopper-v5"
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name), err_msg=name)
