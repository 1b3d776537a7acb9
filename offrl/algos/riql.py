r"""RIQL: Robust IQL (Yang, Zhong, Xu, Huang, Zhang & Ye, "Towards Robust Offline Reinforcement Learning under
Diverse Data Corruption", ICLR 2024, arXiv:2310.12955). Official code: github.com/YangRui2015/RIQL (``RIQL.py``).

IQL made robust to corrupted transitions by three changes (plus observation normalisation, on by default):

.. math::

    \hat Q_\alpha(s,a) &= \mathrm{quantile}_\alpha\big(\{\bar Q_i(s,a)\}_{i=1..K}\big) \quad
        (\text{replaces IQL's } \min_i \bar Q_i) \\
    L_V(\psi) &= \mathbb{E}\big[L_2^\tau(\hat Q_\alpha(s,a) - V_\psi(s))\big] \\
    L_Q(\theta) &= \mathbb{E}\Big[\sum_{i=1}^K
        \ell_\delta\big(r + \gamma (1-d) V_\psi(s') - Q_{\theta_i}(s,a)\big)\Big],
        \quad \ell_\delta(x) = \begin{cases} x^2 / (2\delta) & |x| < \delta \\ |x| - \delta / 2 & \text{else}
        \end{cases}, \ \delta = 1/\sigma^2 \\
    L_\pi(\phi) &= \mathbb{E}\big[\min(e^{\beta (\hat Q_\alpha(s,a) - V(s))}, 100)\,
        \lVert \pi_\phi(s) - a \rVert^2\big] \quad (\text{deterministic actor; or } -\log\pi(a|s) \text{ if not})

A small sigma makes the Huber loss a scaled squared error, a large one an absolute error that a few corrupted
targets cannot dominate; the lower quantile of a K-critic ensemble discounts the heavy tails corrupted data put on
Q. Update order per step as IQL's: V, actor (with the new V), critics (from the new V), Polyak targets.

Defaults (the official code's): K = 5 critics, alpha = 0.25, sigma = 1.0 (the paper uses 0.1 for observation
corruption and 1.0-3.0 for reward and dynamics corruption; alpha 0.1-0.5 and K = 3 on some tasks), expectile 0.7,
beta 3, Adam 3e-4, 2x256 MLPs, batch 256, gamma 0.99, tau 0.005, deterministic actor with an advantage-weighted
squared error, cosine decay of the actor's learning rate, observations standardised, rewards scaled by
1000 / return range. The data-corruption protocol of the same paper is ``offrl.data.corruption``.

Deviations: ``d`` is the terminal flag only (time-limit truncations bootstrap); offrl's orthogonal initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from offrl.algos.base import Algorithm, Batch, Metrics, Spec, config_field, require
from offrl.algos.iql import (
    IQLState,
    actor_optimizer,
    configure_for_finetuning,
    configure_for_training,
    init_state,
    value_loss,
)
from offrl.nn.losses import huber_loss, td_target
from offrl.nn.networks import Ensemble, QNetwork, ValueNetwork
from offrl.nn.policies import DeterministicPolicy, GaussianPolicy, gaussian_act, gaussian_log_prob
from offrl.nn.updates import apply_gradients, global_norm, polyak_update


@dataclass(frozen=True)
class RIQLConfig:
    num_critics: int = config_field(5, "critics in the ensemble (K)")
    quantile: float = config_field(0.25, "alpha: the quantile of the K target values used for V and advantages")
    huber_sigma: float = config_field(1.0, "sigma of the Huber TD loss (threshold 1/sigma^2; small = MSE-like)")
    deterministic_actor: bool = config_field(True, "weighted squared-error actor (paper); off = Gaussian AWR")
    expectile: float = config_field(0.7, "expectile tau of the value loss")
    beta: float = config_field(3.0, "inverse temperature of the advantage weights")
    max_weight: float = config_field(100.0, "clip of exp(beta * advantage)")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate (start of the cosine decay)")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    value_lr: float = config_field(3e-4, "value learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of every network")
    dropout_rate: float = config_field(0.0, "actor dropout (Gaussian actor only)")
    cosine_decay: bool = config_field(True, "cosine-decay the actor learning rate over the run")
    decay_steps: int = config_field(0, "horizon of the cosine decay; 0 = the run's length")
    log_std_min: float = config_field(-5.0, "lower clip of the Gaussian actor's log std")
    normalize_observations: bool = config_field(True, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("locomotion", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.num_critics >= 1, f"num_critics must be >= 1, got {self.num_critics}")
        require(0.0 <= self.quantile <= 1.0, f"quantile must be in [0, 1], got {self.quantile}")
        require(self.huber_sigma > 0, f"huber_sigma must be > 0, got {self.huber_sigma}")
        require(0.0 < self.expectile < 1.0, f"expectile must be in (0, 1), got {self.expectile}")
        require(self.beta >= 0.0, f"beta must be >= 0, got {self.beta}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr, self.value_lr) > 0, "learning rates must be > 0")
        require(self.decay_steps >= 0, "decay_steps must be >= 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    value: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    value_tx: optax.GradientTransformation


@cache
def networks(config: RIQLConfig, spec: Spec) -> Networks:
    if config.deterministic_actor:
        actor: nn.Module = DeterministicPolicy(config.hidden_dims, spec.action_dim)
    else:
        actor = GaussianPolicy(
            config.hidden_dims, spec.action_dim, log_std_min=config.log_std_min, dropout_rate=config.dropout_rate
        )
    return Networks(
        actor=actor,
        critic=Ensemble(QNetwork, config.num_critics)(config.hidden_dims),
        value=ValueNetwork(config.hidden_dims),
        actor_tx=actor_optimizer(config),
        critic_tx=optax.adam(config.critic_lr),
        value_tx=optax.adam(config.value_lr),
    )


def init(key: jax.Array, spec: Spec, config: RIQLConfig) -> IQLState:
    require(not spec.discrete, "RIQL here is for continuous actions")
    return init_state(key, spec, config, networks(config, spec))


def scaled_huber(diff: jax.Array, sigma: float) -> jax.Array:
    """RIQL's ``l_delta`` with ``delta = 1 / sigma^2``: ``x^2 / (2 delta)`` inside, ``|x| - delta / 2`` outside."""
    delta = 1.0 / (sigma * sigma)
    return huber_loss(diff, delta) / delta


def critic_loss(critic_params: dict, nets: Networks, batch: Batch, target: jax.Array, sigma: float):
    q = nets.critic.apply(critic_params, batch["observations"], batch["actions"])
    loss = scaled_huber(target[None] - q, sigma).mean(axis=1).sum()
    return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/q_std": q.std(axis=0).mean()}


def actor_loss(actor_params, nets: Networks, batch: Batch, advantage: jax.Array, key, config: RIQLConfig):
    weights = jnp.minimum(jnp.exp(config.beta * advantage), config.max_weight)
    if config.deterministic_actor:
        error = jnp.square(nets.actor.apply(actor_params, batch["observations"]) - batch["actions"]).sum(axis=-1)
    else:
        mean, log_std = nets.actor.apply(
            actor_params, batch["observations"], deterministic=config.dropout_rate == 0.0, rngs={"dropout": key}
        )
        error = -gaussian_log_prob(batch["actions"], mean, log_std)
    loss = (weights * error).mean()
    return loss, {"actor/loss": loss, "actor/weight_mean": weights.mean(), "actor/advantage_mean": advantage.mean()}


def update(state: IQLState, batch: Batch) -> tuple[IQLState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, actor_key = jax.random.split(state.rng)
    batch_size = batch["observations"].shape[0]

    # 1. V: expectile regression onto the alpha-quantile of the K target critics.
    target_qs = nets.critic.apply(state.target_critic_params, batch["observations"], batch["actions"])
    target_q = jnp.quantile(target_qs, config.quantile, axis=0)
    (_, value_info), grads = jax.value_and_grad(value_loss, has_aux=True)(
        state.value_params, nets, batch, target_q, config
    )
    value_params, value_opt = apply_gradients(nets.value_tx, state.value_params, state.value_opt, grads)
    value_info["value/grad_norm"] = global_norm(grads)
    v_both = nets.value.apply(value_params, jnp.concatenate([batch["observations"], batch["next_observations"]]))
    v, next_v = v_both[:batch_size], v_both[batch_size:]

    # 2. Actor: advantage-weighted regression with the quantile advantage.
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, batch, target_q - v, actor_key, config
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 3. Critics: Huber regression onto r + gamma (1 - d) V(s').
    target = td_target(batch["rewards"], batch["terminals"], next_v, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, batch, target, config.huber_sigma
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)

    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=polyak_update(state.target_critic_params, critic_params, config.tau),
        value_params=value_params,
        value_opt=value_opt,
        rng=rng,
    )
    return new_state, {**value_info, **actor_info, **critic_info}


def act(state: IQLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    config = state.config
    out = networks(config, state.spec).actor.apply(state.actor_params, observations)
    if config.deterministic_actor:
        if deterministic:
            return out
        return jnp.clip(out + 0.1 * jax.random.normal(key, out.shape), -1.0, 1.0)
    mean, log_std = out
    return gaussian_act(mean, log_std, key, deterministic)


ALGORITHM = Algorithm(
    name="riql",
    description="Robust IQL (Yang et al. 2024): K-critic quantile targets, Huber TD, weighted BC actor",
    config_class=RIQLConfig,
    init=init,
    update=update,
    act=act,
    configure_for_training=configure_for_training,
    configure_for_finetuning=configure_for_finetuning,
)
