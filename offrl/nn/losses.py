"""Loss helpers shared by algorithms."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """Asymmetric L2 ``|tau - 1(u < 0)| * u^2`` (elementwise). tau = 0.5 is half the squared error; the minimiser
    over a constant is the tau-expectile of ``u``'s distribution (the mean at 0.5, tending to the max as tau -> 1)."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff * diff


def huber_loss(diff: jax.Array, delta: float = 1.0) -> jax.Array:
    abs_diff = jnp.abs(diff)
    quadratic = jnp.minimum(abs_diff, delta)
    return 0.5 * quadratic * quadratic + delta * (abs_diff - quadratic)


def td_target(rewards: jax.Array, terminals: jax.Array, next_values: jax.Array, discount: float) -> jax.Array:
    """``r + discount * (1 - terminal) * V(s')``.

    Only true terminations stop bootstrapping. Timeouts (truncation) are deliberately not an argument: a transition
    cut by a time limit still has a successor with a value, so its target bootstraps.
    """
    return rewards + discount * (1.0 - terminals) * next_values


def critic_ensemble_loss(critic_params: Any, critic: Any, batch: dict[str, jax.Array], target: jax.Array):
    """TD regression of a critic ensemble (``critic.apply`` returns ``[members, B]``) onto one ``target`` per
    transition: the sum over members of each member's mean squared error, with the Q statistics as metrics."""
    q = critic.apply(critic_params, batch["observations"], batch["actions"])
    loss = jnp.square(q - target).mean(axis=1).sum()
    return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/q_min": q.min(), "critic/q_max": q.max()}


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, entropy_target: float):
    """SAC's entropy-temperature loss ``-alpha * (log pi + target)`` (log alpha is the trained parameter)."""
    alpha = jnp.exp(log_alpha)
    loss = -(alpha * jax.lax.stop_gradient(log_prob + entropy_target)).mean()
    return loss, {"alpha/loss": loss, "alpha/value": alpha}


# f-divergence value losses of Dual RL (Sikchi et al. 2024), on z = Q(s, a) - V(s); ``temp`` is the paper's alpha.


def chi_square_value_loss(z: jax.Array, temp: float) -> jax.Array:
    """``temp * max(z + z^2 / 4, 0) - (1 - temp) * z`` (elementwise)."""
    return temp * jnp.maximum(z + z * z / 4.0, 0.0) - (1.0 - temp) * z


def total_variation_value_loss(z: jax.Array, temp: float) -> jax.Array:
    """``temp * max(z, 0) - (1 - temp) * z`` (elementwise). Over a constant V it is minimised where
    ``P(Q > V) = (1 - temp) / temp`` (``temp`` in [0.5, 1)): an upper quantile of Q, the max as ``temp -> 1``."""
    return temp * jnp.maximum(z, 0.0) - (1.0 - temp) * z


def reverse_kl_value_loss(z: jax.Array, temp: float, max_clip: float) -> jax.Array:
    """XQL's Gumbel loss ``e^x - x - 1`` at ``x = min(z / temp, max_clip)``, scaled by ``e^-m`` with ``m`` the
    batch maximum (at least -1, not differentiated): the stabilised form of Dual RL (elementwise)."""
    x = jnp.minimum(z / temp, max_clip)
    m = jax.lax.stop_gradient(jnp.maximum(jnp.max(x), -1.0))
    return jnp.exp(x - m) - x * jnp.exp(-m) - jnp.exp(-m)
