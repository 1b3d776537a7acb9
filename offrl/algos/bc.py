r"""Behaviour cloning: supervised learning of the logged actions (Pomerleau 1991; the baseline of every offline RL
paper, e.g. the BC rows of D4RL, Fu et al. 2020, arXiv:2004.07219).

.. math::

    \text{deterministic:}\quad & L(\phi) = \mathbb{E}_D\,\lVert \tanh(f_\phi(s)) - a \rVert^2 \\
    \text{gaussian:}\quad & L(\phi) = -\mathbb{E}_D \log \mathcal N(a;\ \tanh(f_\phi(s)),\ \mathrm{diag}(e^{2\sigma}))
        \quad (\sigma \text{ a learned state-independent log std, as in IQL's actor}) \\
    \text{discrete:}\quad & L(\phi) = -\mathbb{E}_D \log \mathrm{softmax}(f_\phi(s))_a

Acting is deterministic by default: the mean (deterministic / gaussian) or the most likely action (discrete).
Defaults: 2x256 MLP, Adam 1e-3 (d3rlpy's BC default), no observation normalisation (CORL's BC normalises; turn it on
with ``normalize_observations``).

Deviations: none beyond the choice of policy head; rewards are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from offrl.algos.base import Algorithm, Batch, Metrics, Spec, config_field, require
from offrl.nn.networks import MLP
from offrl.nn.policies import DeterministicPolicy, GaussianPolicy, gaussian_log_prob
from offrl.nn.updates import apply_gradients, global_norm


@dataclass(frozen=True)
class BCConfig:
    policy: str = config_field("deterministic", "deterministic (MSE) | gaussian (NLL); discrete data: categorical")
    learning_rate: float = config_field(1e-3, "Adam learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "unused by BC (kept for the common interface)")

    def __post_init__(self) -> None:
        require(self.policy in ("deterministic", "gaussian"), f"policy must be deterministic|gaussian: {self.policy}")
        require(self.learning_rate > 0, "learning_rate must be > 0")


class BCState(struct.PyTreeNode):
    params: dict
    opt_state: optax.OptState
    rng: jax.Array
    config: BCConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    policy: nn.Module
    tx: optax.GradientTransformation


@cache
def networks(config: BCConfig, spec: Spec) -> Networks:
    if spec.discrete:
        policy: nn.Module = MLP(config.hidden_dims, spec.action_dim)
    elif config.policy == "gaussian":
        policy = GaussianPolicy(config.hidden_dims, spec.action_dim)
    else:
        policy = DeterministicPolicy(config.hidden_dims, spec.action_dim)
    return Networks(policy, optax.adam(config.learning_rate))


def init(key: jax.Array, spec: Spec, config: BCConfig) -> BCState:
    nets = networks(config, spec)
    k_init, k_state = jax.random.split(key)
    params = nets.policy.init(k_init, jnp.zeros((1, *spec.observation_shape)))
    return BCState(params, nets.tx.init(params), k_state, config, spec)


def bc_loss(params: dict, nets: Networks, batch: Batch, config: BCConfig, spec: Spec):
    out = nets.policy.apply(params, batch["observations"])
    if spec.discrete:
        log_probs = jax.nn.log_softmax(out)
        chosen = jnp.take_along_axis(log_probs, batch["actions"][:, None].astype(jnp.int32), axis=1)[:, 0]
        loss = -chosen.mean()
        accuracy = (out.argmax(axis=1) == batch["actions"]).mean()
        return loss, {"bc/loss": loss, "bc/accuracy": accuracy}
    if config.policy == "gaussian":
        mean, log_std = out
        loss = -gaussian_log_prob(batch["actions"], mean, log_std).mean()
        return loss, {
            "bc/loss": loss,
            "bc/mse": jnp.square(mean - batch["actions"]).mean(),
            "bc/log_std": log_std.mean(),
        }
    loss = jnp.square(out - batch["actions"]).mean()
    return loss, {"bc/loss": loss, "bc/mse": loss}


def update(state: BCState, batch: Batch) -> tuple[BCState, Metrics]:
    nets = networks(state.config, state.spec)
    (_, info), grads = jax.value_and_grad(bc_loss, has_aux=True)(state.params, nets, batch, state.config, state.spec)
    params, opt_state = apply_gradients(nets.tx, state.params, state.opt_state, grads)
    info["bc/grad_norm"] = global_norm(grads)
    return state.replace(params=params, opt_state=opt_state), info


def act(state: BCState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    out = networks(state.config, state.spec).policy.apply(state.params, observations)
    if state.spec.discrete:
        return out.argmax(axis=-1) if deterministic else jax.random.categorical(key, out)
    if state.config.policy == "gaussian":
        mean, log_std = out
        if deterministic:
            return mean
        return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)
    return out


ALGORITHM = Algorithm(
    name="bc",
    description="Behaviour cloning: deterministic (MSE), Gaussian (NLL) or categorical (discrete) policy",
    config_class=BCConfig,
    init=init,
    update=update,
    act=act,
    supports_discrete=True,
)
