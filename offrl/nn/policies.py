"""Policy heads and the distributions they define. Policies act in [-1, 1]^d; the trainer maps that onto the task's
action bounds.

- :class:`DeterministicPolicy`: ``a = tanh(MLP(s))`` (TD3, TD3+BC, deterministic BC).
- :class:`GaussianPolicy`: ``N(tanh(mu(s)), exp(log_std))`` with a state-independent log std, as in the official
  IQL code (the tanh is on the mean, the distribution itself is not squashed). Used by IQL and Gaussian BC.
- :class:`TanhGaussianPolicy`: ``a = tanh(u)``, ``u ~ N(mu(s), sigma(s))`` with a state-dependent log std (SAC).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from offrl.nn.networks import MLP, default_init

LOG_2PI = math.log(2.0 * math.pi)
ATANH_LIMIT = 1.0 - 1e-6


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log density of a diagonal Gaussian, summed over the last axis."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z * z - log_std - 0.5 * LOG_2PI, axis=-1)


def tanh_log_det_jacobian(u: jax.Array) -> jax.Array:
    """``sum log(1 - tanh(u)^2)``, computed stably as ``2 (log 2 - u - softplus(-2u))``."""
    return jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def tanh_gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample ``a = tanh(mean + std * eps)`` and its log probability."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(u), gaussian_log_prob(u, mean, log_std) - tanh_log_det_jacobian(u)


def tanh_gaussian_log_prob(action: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log probability of a given action in (-1, 1); actions at exactly +-1 are pulled inside before atanh."""
    u = jnp.arctanh(jnp.clip(action, -ATANH_LIMIT, ATANH_LIMIT))
    return gaussian_log_prob(u, mean, log_std) - tanh_log_det_jacobian(u)


def tanh_gaussian_act(mean: jax.Array, log_std: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """Acting with a :class:`TanhGaussianPolicy`'s output: ``tanh(mean)``, or a sample."""
    return jnp.tanh(mean) if deterministic else tanh_gaussian_sample(key, mean, log_std)[0]


def gaussian_act(mean: jax.Array, log_std: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
    """Acting with a :class:`GaussianPolicy`'s output: the mean, or a sample clipped to [-1, 1]."""
    if deterministic:
        return mean
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)


class DeterministicPolicy(nn.Module):
    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        mlp = MLP(self.hidden_dims, self.action_dim, layer_norm=self.layer_norm, weight_init=self.weight_init)
        return jnp.tanh(mlp(observations))


class GaussianPolicy(nn.Module):
    """Returns ``(mean, log_std)``: mean = tanh(MLP(s)), log_std a learned vector clipped to [min, max]."""

    hidden_dims: Sequence[int]
    action_dim: int
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    dropout_rate: float = 0.0
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jax.Array, deterministic: bool = True) -> tuple[jax.Array, jax.Array]:
        features = MLP(self.hidden_dims, None, self.layer_norm, self.dropout_rate, activate_final=False)(
            observations, deterministic=deterministic
        )
        mean = jnp.tanh(nn.Dense(self.action_dim, kernel_init=default_init(1.0))(features))
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        return mean, jnp.broadcast_to(log_std, mean.shape)


class TanhGaussianPolicy(nn.Module):
    """Returns ``(mean, log_std)`` of the pre-tanh Gaussian; the log std depends on the state."""

    hidden_dims: Sequence[int]
    action_dim: int
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        features = MLP(self.hidden_dims, None, self.layer_norm)(observations)
        mean = nn.Dense(self.action_dim, kernel_init=default_init(1.0))(features)
        log_std = nn.Dense(self.action_dim, kernel_init=default_init(1.0))(features)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)
