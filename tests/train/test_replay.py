"""The device replay buffer: ring writes, sampling only filled rows, the memory check, export as episodes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.train import replay


def rows(start: int, n: int) -> dict[str, jnp.ndarray]:
    values = jnp.arange(start, start + n, dtype=jnp.float32)
    return {
        "observations": jnp.stack([values, -values], axis=1),
        "actions": values[:, None],
        "rewards": values,
        "terminals": jnp.zeros(n),
        "timeouts": jnp.zeros(n),
        "next_observations": jnp.stack([values + 1, -values - 1], axis=1),
    }


def test_add_fills_then_wraps_around():
    buffer = replay.create(5, (2,), 1)
    add = jax.jit(replay.add)
    buffer = add(buffer, rows(0, 3))
    assert int(buffer.size) == 3 and int(buffer.position) == 3
    buffer = add(buffer, rows(3, 4))  # rows 3, 4 fill the end; 5, 6 overwrite the two oldest
    assert int(buffer.size) == 5 and int(buffer.position) == 2
    np.testing.assert_array_equal(np.asarray(buffer.data["rewards"]), [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(np.asarray(buffer.data["observations"][:, 1]), [-5, -6, -2, -3, -4])


def test_sampling_only_sees_filled_rows():
    buffer = replay.add(replay.create(1000, (2,), 1), rows(1, 10))  # rewards 1..10, the rest zeros
    batch = jax.jit(replay.sample, static_argnums=2)(buffer, jax.random.PRNGKey(0), 4096)
    r = np.asarray(batch["rewards"])
    assert r.min() >= 1 and r.max() <= 10 and len(np.unique(r)) == 10
    np.testing.assert_array_equal(np.asarray(batch["next_observations"][:, 0]), r + 1)  # rows stay together


def test_a_buffer_that_cannot_fit_is_refused_before_allocation():
    assert replay.buffer_bytes(1000, (11,), 3) == 4 * (11 + 3 + 1 + 1 + 1 + 11) * 1000
    with pytest.raises(replay.BufferTooLargeError, match=r"needs .* GiB, but only .* GiB .* lower --buffer-size"):
        replay.check_fits(10**12, (11,), 3)
    assert replay.check_fits(1000, (11,), 3) > 0


def test_cutting_marks_the_newest_rows_as_timeouts_unless_terminal():
    step = rows(0, 3)
    step["terminals"] = jnp.array([0.0, 1.0, 0.0])
    buffer = replay.add(replay.create(4, (2,), 1), step)
    buffer = replay.add(buffer, rows(3, 2))  # wraps: newest rows 3, 4 sit at positions 3 and 0
    cut = replay.cut_episodes(buffer, 3)  # rows 2, 3, 4
    np.testing.assert_array_equal(np.asarray(cut.data["timeouts"]), [1, 0, 1, 1])  # row 1 (old) is untouched
    cut = replay.cut_episodes(replay.add(replay.create(4, (2,), 1), step), 2)  # rows 1 (terminal), 2
    np.testing.assert_array_equal(np.asarray(cut.data["timeouts"]), [0, 0, 1, 0])


def test_export_gives_each_environment_oldest_first_after_the_ring_wrapped():
    """Two environments add one row each per step (env 0's rows even, env 1's odd); the ring holds the last 6."""
    buffer = replay.create(6, (2,), 1)
    for t in range(5):  # 10 rows: 0..9; the buffer keeps 4..9
        buffer = replay.add(buffer, rows(2 * t, 2))
    out = replay.export(buffer, rows_added=10, num_streams=2)
    np.testing.assert_array_equal(out["rewards"], [4, 6, 8, 5, 7, 9])
    np.testing.assert_array_equal(out["timeouts"], [0, 0, 1, 0, 0, 1])  # each stream's last row ends an episode
    np.testing.assert_array_equal(out["next_observations"][:, 0], out["rewards"] + 1)
    with pytest.raises(ValueError, match="rows_added"):
        replay.export(buffer, rows_added=3)
