"""Derived columns: Monte-Carlo returns-to-go and next actions, episode by episode."""

from __future__ import annotations

import numpy as np

from offrl.data import from_arrays
from offrl.data.columns import derived_column, mc_returns, next_actions


def test_returns_to_go_and_next_actions_stop_at_episode_ends():
    obs = np.zeros((5, 1), np.float32)
    actions = np.arange(5, dtype=np.float32)[:, None] / 10
    terminals = np.array([0, 1, 0, 0, 0], bool)  # episode 1: rows 0-1 (terminal); episode 2: rows 2-4 (timeout)
    timeouts = np.array([0, 0, 0, 0, 1], bool)
    ds = from_arrays(obs, actions, np.ones(5, np.float32), terminals, timeouts, obs)
    np.testing.assert_allclose(mc_returns(ds, ds.rewards, 0.5), [1.5, 1.0, 1.75, 1.5, 1.0])
    np.testing.assert_allclose(next_actions(ds, ds.actions)[:, 0], [0.1, 0.1, 0.3, 0.4, 0.4])
    arrays = {"rewards": 2 * ds.rewards, "actions": ds.actions}  # computed on the rewards the algorithm sees
    np.testing.assert_allclose(derived_column("mc_returns", ds, arrays, 0.0), 2.0)
