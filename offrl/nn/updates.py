"""Optimiser steps and target-network updates."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def apply_gradients(tx: optax.GradientTransformation, params: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def polyak_update(target: Any, online: Any, tau: float) -> Any:
    """``target <- tau * online + (1 - tau) * target`` leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: t + tau * (o - t), target, online)


def global_norm(tree: Any) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree)))


def copy_tree(tree: Any) -> Any:
    """A copy with its own buffers (a target network must not alias its online network: buffers are donated)."""
    return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), tree)
