"""Dataset measures: TQ, SACo (binning, exact unique counts, the reference), episode statistics, coverage."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.data import from_arrays
from offrl.data.builtin import load_builtin
from offrl.data.diagnostics import count_unique_rows, digitise, measure


def dataset(obs, actions, rewards, episode_length):
    n = len(rewards)
    timeouts = (np.arange(n) % episode_length) == episode_length - 1
    obs = np.asarray(obs, np.float32)
    return from_arrays(obs, np.asarray(actions, np.float32), np.asarray(rewards, np.float32), np.zeros(n, bool),
                       timeouts, obs + 1.0)  # fmt: skip


def test_digitise_makes_equal_bins_between_the_bounds_and_clips_outside():
    values = np.array([[0.0], [0.049], [0.05], [0.99], [1.0], [-3.0], [7.0]])
    np.testing.assert_array_equal(
        digitise(values, np.array([0.0]), np.array([1.0]), 20)[:, 0], [0, 0, 1, 19, 19, 0, 19]
    )
    np.testing.assert_array_equal(digitise(np.ones((3, 1)), np.ones(1), np.ones(1), 10)[:, 0], [0, 0, 0])


def test_unique_rows_are_counted_exactly():
    rows = np.array([[1, 2], [1, 2], [2, 1], [0, 0], [2, 1]])
    assert count_unique_rows(rows) == 3 and count_unique_rows(rows[:0]) == 0


def test_tq_is_the_mean_return_between_the_random_and_the_best_return():
    data = dataset(np.zeros((8, 2)), np.zeros((8, 1)), [1.0] * 4 + [3.0] * 4, episode_length=4)
    measures = measure(data, random_return=0.0, best_return=16.0)
    np.testing.assert_allclose(measures.episode_returns, [4.0, 12.0])
    np.testing.assert_array_equal(measures.episode_lengths, [4, 4])
    assert measures.tq == pytest.approx(0.5)
    assert measure(data).tq is None


def test_saco_counts_unique_state_action_bins_relative_to_the_reference():
    rng = np.random.default_rng(0)
    reference = dataset(rng.uniform(0, 1, (1000, 2)), rng.uniform(-1, 1, (1000, 1)), np.zeros(1000), 100)
    # a narrow dataset: 10 copies of 20 distinct rows, all inside the reference's range
    narrow_obs = np.repeat(rng.uniform(0.4, 0.6, (20, 2)), 10, axis=0)
    narrow = dataset(narrow_obs, np.repeat(rng.uniform(-0.1, 0.1, (20, 1)), 10, axis=0), np.zeros(200), 100)
    measures = measure(narrow, reference=reference, bins=100)
    assert measures.unique_state_actions == 20 and measures.reference_unique_state_actions == 1000
    assert measures.saco == pytest.approx(0.02)
    assert measures.log_saco == pytest.approx(np.log(20) / np.log(1000))
    assert measure(reference).saco == 1.0
    # coverage: the narrow data fills about a fifth of each state dimension's bins
    assert (measures.state_coverage < 0.25).all() and (measure(reference).state_coverage > 0.99).all()


def test_the_builtin_pendulum_datasets_order_as_the_paper_says():
    """Expert data: high TQ, lower SACo; random data: TQ ~0, high SACo (the paper's Figure 2 pattern)."""
    from offrl.envs import get_task

    task = get_task("pendulum")
    expert, _ = load_builtin("pendulum-expert")
    random, _ = load_builtin("pendulum-random")
    mixed, _ = load_builtin("pendulum-mixed")
    refs = {"random_return": task.ref_random, "best_return": task.ref_expert, "reference": mixed, "bins": 20}
    e, r = measure(expert, **refs), measure(random, **refs)
    assert e.tq > 0.9 and abs(r.tq) < 0.1
    assert r.saco > e.saco


def test_a_reference_with_other_spaces_is_refused():
    a = dataset(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(4), 4)
    b = dataset(np.zeros((4, 3)), np.zeros((4, 1)), np.zeros(4), 4)
    with pytest.raises(ValueError, match="spaces differ"):
        measure(a, reference=b)
