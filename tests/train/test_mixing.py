"""Mixed offline/online batches: exact shares, annealing, an empty buffer, seeding the buffer, all under jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.train import replay
from offrl.train.mixing import MixSchedule, offline_rows, sample_mixed, seed_buffer


def offline_data(n=300):
    """Offline rows carry reward 1, online rows (below) reward 2, so a batch shows where each row came from."""
    rng = np.random.default_rng(0)
    return {
        "observations": jnp.asarray(rng.standard_normal((n, 3)), jnp.float32),
        "actions": jnp.asarray(rng.uniform(-1, 1, (n, 2)), jnp.float32),
        "rewards": jnp.ones(n, jnp.float32),
        "terminals": jnp.zeros(n, jnp.float32),
        "next_observations": jnp.asarray(rng.standard_normal((n, 3)), jnp.float32),
    }


def online_buffer(rows=50, capacity=100):
    buffer = replay.create(capacity, (3,), 2)
    if rows:
        buffer = replay.add(
            buffer,
            {
                "observations": jnp.full((rows, 3), 7.0),
                "actions": jnp.zeros((rows, 2)),
                "rewards": jnp.full(rows, 2.0),
                "terminals": jnp.zeros(rows),
                "timeouts": jnp.zeros(rows),
                "next_observations": jnp.full((rows, 3), 7.0),
            },
        )
    return buffer


@pytest.mark.parametrize("fraction, expected", [(0.5, 32), (0.25, 16), (0.0, 0), (1.0, 64)])
def test_a_fixed_ratio_gives_exactly_that_many_offline_rows(fraction, expected):
    sample = jax.jit(lambda key: sample_mixed(offline_data(), online_buffer(), key, 64, fraction))
    batch = sample(jax.random.PRNGKey(0))
    assert int((batch["rewards"] == 1.0).sum()) == expected
    online = np.asarray(batch["rewards"]) == 2.0
    assert np.all(np.asarray(batch["observations"])[online] == 7.0)  # whole rows, not mixed columns
    assert set(batch) == {"observations", "actions", "rewards", "terminals", "next_observations"}


def test_an_empty_online_buffer_gives_an_all_offline_batch():
    batch = sample_mixed(offline_data(), online_buffer(rows=0), jax.random.PRNGKey(1), 64, 0.5)
    assert np.all(np.asarray(batch["rewards"]) == 1.0)
    assert int(offline_rows(jnp.float32(0.5), 64, jnp.int32(0))) == 64


def test_the_annealed_fraction_moves_linearly_and_then_stays():
    schedule = MixSchedule(start=1.0, end=0.25, anneal_steps=100)
    np.testing.assert_allclose([float(schedule.fraction(s)) for s in (0, 50, 100, 500)], [1.0, 0.625, 0.25, 0.25])
    assert float(MixSchedule(0.5, 0.0, 0).fraction(10_000)) == 0.5  # no annealing: a fixed ratio

    def shares(step):
        batch = sample_mixed(offline_data(), online_buffer(), jax.random.PRNGKey(2), 64, schedule.fraction(step))
        return (batch["rewards"] == 1.0).sum()

    counts = jax.jit(jax.vmap(shares))(jnp.asarray([0, 50, 100]))
    np.testing.assert_array_equal(np.asarray(counts), [64, 40, 16])
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        MixSchedule(start=1.5)


def test_seeding_the_buffer_puts_the_offline_rows_first_and_refuses_too_much_data():
    buffer = seed_buffer(replay.create(400, (3,), 2), offline_data(300))
    assert int(buffer.size) == 300 and int(buffer.position) == 300
    np.testing.assert_array_equal(np.asarray(buffer.data["rewards"][:300]), 1.0)
    with pytest.raises(ValueError, match="holds 100"):
        seed_buffer(replay.create(100, (3,), 2), offline_data(300))
