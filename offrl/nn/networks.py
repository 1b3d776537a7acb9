"""MLPs, critics and ensembles (Flax linen).

An ensemble is one module vmapped over its parameters: member i has its own weights (leading axis of every
parameter), all members see the same input, and the outputs stack on axis 0. Twin critics are ``Ensemble(QNetwork,
2)``; EDAC's ten critics are ``Ensemble(QNetwork, 10)`` with no other change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


#: How a network's Dense layers start: ``orthogonal`` (offrl's default, as the official IQL and jaxrl code: hidden
#: layers gain sqrt(2), output layers ``output_init_scale``, zero biases) or ``pytorch`` (PyTorch's ``nn.Linear``
#: default, which most PyTorch papers' code and d3rlpy use: weights and biases uniform in +-1/sqrt(fan_in)).
NETWORK_INITS = ("orthogonal", "pytorch")


def default_init(scale: float = math.sqrt(2.0)) -> Initializer:
    """Orthogonal initialisation (as in the official IQL and jaxrl code)."""
    return nn.initializers.orthogonal(scale)


def uniform_init(bound: float) -> Initializer:
    """Uniform in [-bound, bound] (PyTorch's ``nn.Linear`` default with bound 1/sqrt(fan_in), weights and biases)."""

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(features: int, fan_in: int, init: str, scale: float) -> nn.Dense:
    """A Dense layer started the ``init`` way (see :data:`NETWORK_INITS`); ``scale`` is the orthogonal gain."""
    if init == "orthogonal":
        return nn.Dense(features, kernel_init=default_init(scale))
    if init == "pytorch":
        bound = 1.0 / math.sqrt(fan_in)
        return nn.Dense(features, kernel_init=uniform_init(bound), bias_init=uniform_init(bound))
    raise ValueError(f"unknown network init {init!r}; use one of {NETWORK_INITS}")


class MLP(nn.Module):
    """Dense layers with ReLU; optional LayerNorm and dropout after each hidden layer."""

    hidden_dims: Sequence[int]
    output_dim: int | None = None
    layer_norm: bool = False
    dropout_rate: float = 0.0
    activate_final: bool = False
    output_init_scale: float = 1.0
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        for width in self.hidden_dims:
            x = dense(width, x.shape[-1], self.weight_init, math.sqrt(2.0))(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
            if self.dropout_rate > 0.0:
                x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        if self.output_dim is not None:
            x = dense(self.output_dim, x.shape[-1], self.weight_init, self.output_init_scale)(x)
            if self.activate_final:
                x = nn.relu(x)
        return x


class QNetwork(nn.Module):
    """Q(s, a): an MLP on the concatenated observation and action, one scalar out."""

    hidden_dims: Sequence[int]
    layer_norm: bool = False
    weight_init: str = "orthogonal"

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([observations, actions], axis=-1)
        return MLP(self.hidden_dims, 1, layer_norm=self.layer_norm, weight_init=self.weight_init)(x)[..., 0]


class ValueNetwork(nn.Module):
    """V(s): an MLP on the observation, one scalar out."""

    hidden_dims: Sequence[int]
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return MLP(self.hidden_dims, 1, layer_norm=self.layer_norm)(observations)[..., 0]


def Ensemble(module: type[nn.Module], num: int) -> type[nn.Module]:  # noqa: N802 (a class factory)
    """``num`` independent copies of ``module`` evaluated on the same inputs; outputs stacked on axis 0."""
    return nn.vmap(
        module,
        variable_axes={"params": 0},
        split_rngs={"params": True, "dropout": True},
        in_axes=None,
        out_axes=0,
        axis_size=num,
    )


def ensemble_member(params: dict, index: int) -> dict:
    """The parameters of one member of an :func:`Ensemble`, usable with the un-vmapped module."""
    return jax.tree_util.tree_map(lambda p: p[index], params)
