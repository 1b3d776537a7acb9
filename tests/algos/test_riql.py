"""RIQL's robust pieces: the scaled Huber loss and the quantile over the critic ensemble."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from offrl.algos.riql import scaled_huber


def test_scaled_huber_is_a_scaled_square_inside_and_absolute_outside():
    sigma = 2.0  # threshold 1 / sigma^2 = 0.25
    x = jnp.array([0.1, -0.2, 1.0, -3.0])
    expected = [0.1**2 / (2 * 0.25), 0.2**2 / (2 * 0.25), 1.0 - 0.125, 3.0 - 0.125]
    np.testing.assert_allclose(np.asarray(scaled_huber(x, sigma)), expected, rtol=1e-6)
    small = scaled_huber(jnp.array([1.0, 2.0]), 0.1)  # threshold 100: a scaled square, 2x the error -> 4x the loss
    assert float(small[1] / small[0]) == np.float32(4.0)


def test_quantile_target_is_below_the_mean_for_a_low_alpha():
    q = jnp.array([[1.0, 10.0], [2.0, 0.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]])  # 5 critics, 2 transitions
    np.testing.assert_allclose(np.asarray(jnp.quantile(q, 0.25, axis=0)), [2.0, 5.0])  # the outlier 100 is ignored
