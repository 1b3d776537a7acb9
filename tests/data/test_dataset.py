"""Validation: each bad input gives a DatasetError whose message names the field and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import ActionSpace, Dataset, DatasetError, check_against_spaces, from_arrays
from tests.conftest import make_arrays


def build(**changes):
    arrays = make_arrays()
    arrays.update(changes)
    return Dataset(**arrays)


def error_of(**changes) -> str:
    with pytest.raises(DatasetError) as info:
        build(**changes)
    return str(info.value)


def test_a_valid_dataset_has_episodes_and_returns():
    ds = build()
    assert ds.size == 200 and ds.num_episodes == 4
    assert ds.episode_lengths().tolist() == [50, 50, 50, 50]
    np.testing.assert_allclose(ds.episode_returns().sum(), ds.rewards.astype(np.float64).sum(), rtol=1e-6)
    assert ds.action_space == ActionSpace.box(-1, 1, (2,))


def test_length_mismatch_names_every_column():
    message = error_of(rewards=np.zeros(199, np.float32))
    assert "different lengths" in message and "rewards=199" in message and "observations=200" in message


@pytest.mark.parametrize("field", ["observations", "next_observations", "rewards", "actions"])
def test_non_finite_values_are_located(field):
    arrays = make_arrays()
    bad = arrays[field].copy()
    bad.reshape(bad.shape[0], -1)[7, 0] = np.nan
    message = error_of(**{field: bad})
    assert f"`{field}`" in message and "non-finite" in message and "row 7" in message


def test_wrong_dtype_says_how_to_cast():
    message = error_of(rewards=np.zeros(200, np.float64))
    assert "`rewards` has dtype float64, expected float32" in message and "astype" in message


def test_wrong_rank():
    message = error_of(rewards=np.zeros((200, 2), np.float32))
    assert "`rewards` has shape (200, 2), expected a vector" in message
    message = error_of(observations=np.zeros(200, np.float32), next_observations=np.zeros(200, np.float32))
    assert "`observations` has shape (200,)" in message


def test_no_episode_end():
    message = error_of(timeouts=np.zeros(200, bool))
    assert "no episode end" in message and "terminals" in message


def test_actions_outside_bounds():
    arrays = make_arrays()
    actions = arrays["actions"].copy()
    actions[3] = [1.5, 0.0]
    message = error_of(actions=actions, action_space=ActionSpace.box(-1, 1, (2,)))
    assert "outside the action bounds" in message and "row 3" in message


def test_object_arrays_are_rejected():
    ragged = np.empty(200, dtype=object)
    message = error_of(rewards=ragged)
    assert "object array" in message
    with pytest.raises(DatasetError, match="non-numeric"):
        from_arrays(np.array([["a"]] * 3), np.zeros((3, 1)), np.zeros(3), timeouts=[0, 0, 1])


def test_missing_column():
    message = error_of(next_observations=None)
    assert "`next_observations` is missing" in message


def test_spaces_must_match_the_task():
    ds = build()
    with pytest.raises(DatasetError, match="observation space has shape"):
        check_against_spaces(ds, (11,), ActionSpace.box(-1, 1, (2,)))
    with pytest.raises(DatasetError, match="action space has shape"):
        check_against_spaces(ds, (3,), ActionSpace.box(-1, 1, (3,)))
    with pytest.raises(DatasetError, match="outside the task's action bounds"):
        check_against_spaces(ds, (3,), ActionSpace.box(-0.5, 0.5, (2,)))
    check_against_spaces(ds, (3,), ActionSpace.box(-1, 1, (2,)))


def test_terminal_and_timeout_stay_separate():
    arrays = make_arrays()
    arrays["terminals"][10] = True
    ds = Dataset(**arrays)
    assert ds.terminals[10] and not ds.timeouts[10]
    assert 10 in ds.episode_ends and ds.num_episodes == 5


def test_arrays_are_read_only():
    ds = build()
    with pytest.raises(ValueError):
        ds.rewards[0] = 1.0


def test_discrete_actions():
    arrays = make_arrays()
    arrays["actions"] = np.arange(200, dtype=np.int64) % 3
    ds = Dataset(**arrays)
    assert ds.discrete and ds.action_space == ActionSpace.categorical(3)
    with pytest.raises(DatasetError, match="outside the 2 discrete choices"):
        Dataset(**{**arrays, "action_space": ActionSpace.categorical(2)})


def test_fingerprint_depends_on_content():
    a, b = build(), build()
    assert a.fingerprint() == b.fingerprint()
    arrays = make_arrays()
    arrays["rewards"] = arrays["rewards"] + 1
    assert Dataset(**arrays).fingerprint() != a.fingerprint()


def test_concatenate_keeps_rows_and_cuts_episodes_at_each_part():
    from offrl.data import concatenate

    first = make_arrays(n=120, episode_length=50, seed=1)  # its last episode (rows 100..119) has no end flag
    first["terminals"][49] = True
    first["timeouts"][49] = False
    second = make_arrays(n=100, seed=2)
    second["actions"] = second["actions"] * 0.5
    a, b = Dataset(**first), Dataset(**second)
    both = concatenate([a, b])
    assert both.size == 220
    np.testing.assert_array_equal(both.observations, np.concatenate([a.observations, b.observations]))
    assert both.terminals[49] and not both.timeouts[49]  # a terminal stays a terminal
    assert both.timeouts[119] and not both.terminals[119]  # the cut between the parts becomes a timeout
    assert both.episode_lengths().tolist() == [50, 50, 20, 50, 50]
    assert both.action_space == ActionSpace.box(-1, 1, (2,))
    assert not a.timeouts[119]  # the parts are untouched


def test_concatenate_refuses_parts_that_do_not_match():
    from offrl.data import concatenate

    wide = make_arrays(obs_dim=4)
    with pytest.raises(DatasetError, match="observations: part 1 has shape"):
        concatenate([build(), Dataset(**wide)])


def test_first_episodes_keeps_whole_episodes():
    arrays = make_arrays(n=200, episode_length=50)
    arrays["terminals"][29] = True  # a first episode that ends early
    arrays["extras"] = {"flag": np.arange(200, dtype=np.float32)}
    dataset = from_arrays(**arrays)
    two = dataset.first_episodes(2)
    assert two.size == 50 and two.num_episodes == 2 and two.terminals[29] and two.timeouts[-1]
    np.testing.assert_array_equal(two.actions, dataset.actions[:50])
    np.testing.assert_array_equal(two.extras["flag"], np.arange(50))
    assert dataset.first_episodes(10) is dataset
    with pytest.raises(ValueError, match="n >= 1"):
        dataset.first_episodes(0)
