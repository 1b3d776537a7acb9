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


def test_mixed_batches_tell_logged_rows_from_online_ones():
    """``from_data`` is 1 on the dataset's rows and 0 on online rows, through the mixed sampler."""
    import jax
    import jax.numpy as jnp

    from offrl.data.columns import DERIVED
    from offrl.train import replay
    from offrl.train.mixing import sample_mixed
    from offrl.train.online_columns import extra_shapes, with_placeholders

    class Data:  # the derived column needs only the dataset's size
        size = 50

    n = 50
    offline = {
        "observations": jnp.zeros((n, 3)), "actions": jnp.zeros((n, 2)), "rewards": jnp.ones(n),
        "terminals": jnp.zeros(n), "next_observations": jnp.zeros((n, 3)),
        "from_data": jnp.asarray(DERIVED["from_data"](Data(), {}, 0.99)),
    }  # fmt: skip
    buffer = replay.create(20, (3,), 2, extra_shapes(("from_data",), 2))
    rows = {
        "observations": np.ones((20, 3)), "actions": np.ones((20, 2)), "rewards": np.zeros(20),
        "terminals": np.zeros(20), "timeouts": np.zeros(20), "next_observations": np.ones((20, 3)),
    }  # fmt: skip
    buffer = replay.add(buffer, {k: jnp.asarray(v) for k, v in with_placeholders(rows, ("from_data",)).items()})
    batch = sample_mixed(offline, buffer, jax.random.PRNGKey(0), 64, 0.25)
    np.testing.assert_array_equal(batch["from_data"], batch["rewards"])  # offline rows: reward 1, online: 0
    assert float(batch["from_data"].sum()) == 16.0
