"""Transforms are fitted on data, recorded as JSON, and invert where they should."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import ActionSpace, DatasetError, Transforms, from_arrays
from tests.conftest import make_arrays


def test_observation_normalisation_and_json_round_trip():
    ds = from_arrays(**make_arrays())
    t = Transforms.fit(ds, normalize_observations=True)
    normed = t.apply(ds)["observations"]
    np.testing.assert_allclose(normed.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=0), 1, atol=1e-2)
    again = Transforms.from_json(t.to_json())
    np.testing.assert_array_equal(
        again.normalize_observations(ds.observations), t.normalize_observations(ds.observations)
    )


def test_locomotion_reward_scaling():
    arrays = make_arrays()
    ds = from_arrays(**arrays)
    returns = ds.episode_returns()
    t = Transforms.fit(ds, normalize_observations=False, reward_scaling="locomotion")
    assert t.reward_scale == pytest.approx(1000.0 / (returns.max() - returns.min()))
    np.testing.assert_allclose(t.apply(ds)["rewards"], ds.rewards * t.reward_scale, rtol=1e-6)
    same = dict(arrays, rewards=np.zeros(200, np.float32))
    with pytest.raises(DatasetError, match="same return"):
        Transforms.fit(from_arrays(**same), normalize_observations=False, reward_scaling="locomotion")


def test_actions_map_onto_unit_box_and_back():
    arrays = make_arrays()
    arrays["actions"] = (arrays["actions"] * 2.0).astype(np.float32)
    ds = from_arrays(**arrays, action_space=ActionSpace.box(-2.0, 2.0, (2,)))
    t = Transforms.fit(ds, normalize_observations=False)
    unit = t.apply(ds)["actions"]
    assert unit.min() >= -1 and unit.max() <= 1
    np.testing.assert_allclose(t.denormalize_actions(unit), ds.actions, atol=1e-5)
