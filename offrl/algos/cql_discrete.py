r"""Discrete CQL: Conservative Q-Learning for discrete actions (Kumar, Zhou, Tucker & Levine, NeurIPS 2020,
arXiv:2006.04779, the CQL(H) objective on a QR-DQN / DQN base; here the DQN base as in d3rlpy's ``DiscreteCQL``).

A Q-network over all actions is trained with a double-DQN target and the conservative term, which pushes down a
soft maximum over every action and pushes up the logged action:

.. math::

    y &= r + \gamma (1 - d)\, \bar Q\big(s', \arg\max_{a'} Q(s', a')\big) \\
    L(\theta) &= \mathbb{E}_D\big[\mathrm{Huber}(Q_\theta(s, a) - y)\big]
        + \alpha\, \mathbb{E}_D\Big[\log \sum_{a'} \exp Q_\theta(s, a') - Q_\theta(s, a)\Big]

The target network is copied from the online one every ``target_update_interval`` updates. Acting is greedy
(``deterministic``) or samples from ``softmax(Q)``.

Defaults: alpha 1.0 (the paper's and d3rlpy's discrete setting), Adam 3e-4, 2x256 MLP, gamma 0.99, Huber loss,
target copy every 1000 updates. The Atari settings of the paper (Nature-CNN on pixels, lr 6.25e-5, batch 32,
copies every 8000 updates) are for image inputs, which offrl does not handle yet.
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
from offrl.nn.losses import huber_loss, td_target
from offrl.nn.networks import MLP
from offrl.nn.updates import apply_gradients, copy_tree, global_norm


@dataclass(frozen=True)
class DiscreteCQLConfig:
    cql_alpha: float = config_field(1.0, "weight of the conservative term")
    discount: float = config_field(0.99, "discount factor gamma")
    learning_rate: float = config_field(3e-4, "Adam learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of the Q-network")
    target_update_interval: int = config_field(1000, "updates between copies of the Q-network to its target")
    huber_delta: float = config_field(1.0, "Huber threshold of the TD loss")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.cql_alpha >= 0, f"cql_alpha must be >= 0, got {self.cql_alpha}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(self.learning_rate > 0, "learning_rate must be > 0")
        require(self.target_update_interval >= 1, "target_update_interval must be >= 1")
        require(self.huber_delta > 0, "huber_delta must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class DiscreteCQLState(struct.PyTreeNode):
    params: dict
    opt_state: optax.OptState
    target_params: dict
    step: jax.Array
    rng: jax.Array
    config: DiscreteCQLConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    q: nn.Module
    tx: optax.GradientTransformation


@cache
def networks(config: DiscreteCQLConfig, spec: Spec) -> Networks:
    return Networks(MLP(config.hidden_dims, spec.action_dim), optax.adam(config.learning_rate))


def init(key: jax.Array, spec: Spec, config: DiscreteCQLConfig) -> DiscreteCQLState:
    require(spec.discrete, "discrete CQL needs discrete actions; use `cql` for continuous ones")
    nets = networks(config, spec)
    k_init, k_state = jax.random.split(key)
    params = nets.q.init(k_init, jnp.zeros((1, *spec.observation_shape)))
    return DiscreteCQLState(
        params, nets.tx.init(params), copy_tree(params), jnp.zeros((), jnp.int32), k_state, config, spec
    )


def loss_fn(params: dict, nets: Networks, batch: Batch, target: jax.Array, config: DiscreteCQLConfig):
    q_all = nets.q.apply(params, batch["observations"])  # [B, |A|]
    actions = batch["actions"].astype(jnp.int32)
    q_data = jnp.take_along_axis(q_all, actions[:, None], axis=1)[:, 0]
    td_loss = huber_loss(q_data - target, config.huber_delta).mean()
    gap = (jax.scipy.special.logsumexp(q_all, axis=1) - q_data).mean()
    loss = td_loss + config.cql_alpha * gap
    return loss, {"critic/loss": loss, "critic/td_loss": td_loss, "cql/gap": gap, "critic/q_mean": q_data.mean()}


def update(state: DiscreteCQLState, batch: Batch) -> tuple[DiscreteCQLState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    next_online = nets.q.apply(state.params, batch["next_observations"])
    next_target = nets.q.apply(state.target_params, batch["next_observations"])
    best = next_online.argmax(axis=1)  # double DQN: the online net picks, the target net values
    next_q = jnp.take_along_axis(next_target, best[:, None], axis=1)[:, 0]
    target = td_target(batch["rewards"], batch["terminals"], next_q, config.discount)
    (_, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, nets, batch, target, config)
    params, opt_state = apply_gradients(nets.tx, state.params, state.opt_state, grads)
    info["critic/grad_norm"] = global_norm(grads)
    step = state.step + 1
    copy = step % config.target_update_interval == 0
    target_params = jax.tree_util.tree_map(lambda t, p: jnp.where(copy, p, t), state.target_params, params)
    return state.replace(params=params, opt_state=opt_state, target_params=target_params, step=step), info


def act(state: DiscreteCQLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    q = networks(state.config, state.spec).q.apply(state.params, observations)
    return q.argmax(axis=-1) if deterministic else jax.random.categorical(key, q)


ALGORITHM = Algorithm(
    name="cql-discrete",
    description="Discrete CQL (Kumar et al. 2020): double DQN with the logsumexp conservative term",
    config_class=DiscreteCQLConfig,
    init=init,
    update=update,
    act=act,
    supports_discrete=True,
    supports_continuous=False,
)
