"""Host bookkeeping of online episodes' Monte-Carlo returns."""

from __future__ import annotations

import numpy as np

from offrl.train.online_columns import EpisodeReturns


def test_returns_of_two_interleaved_episodes():
    returns = EpisodeReturns(num_envs=2, discount=0.5, capacity=100)
    assert returns.record(0, np.array([1.0, 2.0]), np.array([False, False])) == []
    [(positions, values)] = returns.record(2, np.array([1.0, 2.0]), np.array([True, False]))
    np.testing.assert_array_equal(positions, [0, 2])
    np.testing.assert_allclose(values, [1.5, 1.0])
    [(positions, values)] = returns.close_all()
    np.testing.assert_array_equal(positions, [1, 3])
    np.testing.assert_allclose(values, [3.0, 2.0])


def test_rows_overwritten_by_the_ring_get_no_return():
    """Capacity 4, two environments: after 3 steps (6 rows) the first step's rows are gone; the oldest surviving
    row of an episode still gets its return."""
    returns = EpisodeReturns(num_envs=2, discount=1.0, capacity=4)
    for step in range(2):
        returns.record((2 * step) % 4, np.ones(2), np.zeros(2, bool))
    finished = returns.record(0, np.ones(2), np.array([True, True]))  # overwrites positions 0 and 1
    for positions, values in finished:
        assert len(positions) == 2  # rows of steps 2 and 3 only
        np.testing.assert_allclose(values, [2.0, 1.0])
    assert sorted(p for positions, _ in finished for p in positions) == [0, 1, 2, 3]
