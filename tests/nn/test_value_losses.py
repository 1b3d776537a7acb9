"""Dual RL's f-divergence value losses: where a constant V settles, and their stabilised forms stay finite."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offrl.nn.losses import chi_square_value_loss, reverse_kl_value_loss, total_variation_value_loss


def best_constant(loss, samples: np.ndarray) -> float:
    """The constant V minimising mean(loss(Q - V)) over a grid."""
    grid = np.linspace(samples.min() - 1, samples.max() + 1, 4001)
    values = [float(loss(jnp.asarray(samples) - v).mean()) for v in grid]
    return float(grid[int(np.argmin(values))])


def test_total_variation_settles_where_p_q_above_v_is_one_minus_temp_over_temp():
    q = np.random.default_rng(0).standard_normal(20_000)
    for temp in (0.6, 0.8):
        v = best_constant(lambda z, t=temp: total_variation_value_loss(z, t), q)
        assert np.mean(q > v) == pytest.approx((1 - temp) / temp, abs=0.01)


def test_chi_square_moves_v_up_the_distribution_of_q_as_temp_grows():
    q = np.random.default_rng(1).standard_normal(5_000)
    v = [best_constant(lambda z, t=t: chi_square_value_loss(z, t), q) for t in (0.5, 0.8, 1.0)]
    assert v[0] < v[1] < v[2]
    assert np.mean(q < v[2]) > 0.95  # temp 1 (the MuJoCo setting): an upper quantile, near the max


def test_reverse_kl_is_finite_for_huge_gaps_and_its_gradient_is_bounded_by_the_clip():
    z = jnp.array([-50.0, 0.0, 3.0, 1e4])
    loss = reverse_kl_value_loss(z, temp=1.0, max_clip=5.0)
    assert bool(jnp.all(jnp.isfinite(loss)))
    grad = jax.grad(lambda x: reverse_kl_value_loss(x, 1.0, 5.0).sum())(z)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(grad[3]) == 0.0  # clipped: no push from the outlier
