"""The corruption protocol (RIQL): which rows change, by how much, reproducibly; attacks lower the attacked critic."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import from_arrays
from offrl.data.corruption import Corruption, corrupt
from tests.conftest import make_arrays


def dataset():
    arrays = make_arrays(n=1000, obs_dim=3, action_dim=2)
    arrays["actions"] = np.clip(arrays["actions"], -1, 1)
    return from_arrays(**arrays)


def changed_rows(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return np.flatnonzero(np.any(a != b, axis=1))


def test_random_rewards_replace_a_fraction_with_uniform_values_reproducibly():
    ds = dataset()
    out = corrupt(ds, Corruption("rewards", rate=0.3, scale=0.5, seed=1))
    rows = changed_rows(ds.rewards, out.rewards)
    assert len(rows) == 300 and np.abs(out.rewards[rows]).max() <= 15.0 and np.abs(out.rewards[rows]).max() > 10
    np.testing.assert_array_equal(out.observations, ds.observations)  # nothing else moves
    assert out.metadata["corruption"]["rows"] == 300 and out.metadata["corruption"]["kind"] == "rewards"
    again = corrupt(ds, Corruption("rewards", rate=0.3, scale=0.5, seed=1))
    np.testing.assert_array_equal(again.rewards, out.rewards)
    other = corrupt(ds, Corruption("rewards", rate=0.3, scale=0.5, seed=2))
    assert not np.array_equal(other.rewards, out.rewards)
    assert "corruption" not in ds.metadata  # the input is untouched


@pytest.mark.parametrize("kind, column", [("observations", "observations"), ("dynamics", "next_observations")])
def test_random_state_noise_stays_inside_scale_times_std(kind, column):
    ds = dataset()
    out = corrupt(ds, Corruption(kind, rate=0.2, scale=1.0, seed=0))
    before, after = getattr(ds, column), getattr(out, column)
    rows = changed_rows(before, after)
    assert len(rows) == 200
    assert np.all(np.abs(after - before) <= before.std(axis=0) + 1e-6)


def test_random_actions_are_clipped_to_the_action_bounds():
    ds = dataset()
    out = corrupt(ds, Corruption("actions", rate=1.0, scale=3.0, seed=0))
    assert out.actions.min() >= ds.action_space.low[0] and out.actions.max() <= ds.action_space.high[0]
    assert len(changed_rows(ds.actions, out.actions)) > 900


def test_adversarial_rewards_flip_and_scale():
    ds = dataset()
    out = corrupt(ds, Corruption("rewards", "adversarial", rate=0.5, scale=2.0, seed=0))
    rows = changed_rows(ds.rewards, out.rewards)
    np.testing.assert_allclose(out.rewards[rows], -2.0 * ds.rewards[rows], rtol=1e-6)


def test_adversarial_observations_move_to_the_box_corner_that_lowers_a_linear_critic():
    ds = dataset()
    w = np.array([1.0, -2.0, 0.5])
    q = lambda s, a: s @ w  # noqa: E731
    gradient = lambda kind, s, a, s2: np.broadcast_to(w, s.shape)  # noqa: E731
    out = corrupt(ds, Corruption("observations", "adversarial", rate=0.1, scale=0.5), gradient=gradient, q_function=q)
    rows = changed_rows(ds.observations, out.observations)
    bound = 0.5 * ds.observations.std(axis=0)
    moved = out.observations[rows] - ds.observations[rows]
    np.testing.assert_allclose(moved, np.broadcast_to(-np.sign(w) * bound, moved.shape), rtol=1e-5)
    assert out.metadata["corruption"]["q_drop"] == pytest.approx(float(np.abs(w) @ bound), rel=1e-4)
    with pytest.raises(ValueError, match="needs a critic to attack"):
        corrupt(ds, Corruption("observations", "adversarial"))


def test_specs_parse_and_bad_ones_name_the_problem():
    assert Corruption.parse("observations:random:0.3:1.0", seed=4) == Corruption("observations", "random", 0.3, 1.0, 4)
    assert Corruption.parse("rewards") == Corruption("rewards")
    for bad, message in [
        ("wind", "kind must be one of"),
        ("rewards:nasty", "random or adversarial"),
        ("rewards:random:x", "must be numbers"),
        ("rewards:random:1.5", r"rate must be in \[0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            Corruption.parse(bad)
