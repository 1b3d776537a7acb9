r"""H2O: dynamics-aware hybrid offline-and-online RL (Niu, Sharma, Qiu, Li, Zhou, Hu & Zhan, "When to Trust Your
Simulator: Dynamics-Aware Hybrid Offline-and-Online Reinforcement Learning", NeurIPS 2022, arXiv:2206.13464;
official code github.com/t6-thu/H2O, ``SimpleSAC/sim2real_sac.py``), registered as ``h2o``.

A small logged dataset from the **real** system plus an imperfect **simulator** to interact with. Every batch is
half real data, half simulator transitions (``offrl finetune --offline-steps 0 --online-task SIM``; the rows carry
``from_data``: 1 real, 0 simulated). H2O is SAC on the mixed batch with three changes driven by an estimate of the
dynamics gap:

- **two discriminators** tell real from simulated transitions: :math:`D_{sa}(s, a)` and :math:`D_{sas}(s, a, s')`,
  each an MLP with two logits bounded by :math:`2\tanh`, trained by cross-entropy (real = class 0, sim = class 1)
  with Gaussian input noise (std 0.1); :math:`p_{sas} = \mathrm{softmax}(\text{logits}_{sas} + \text{logits}_{sa})`.
  Their ratio estimates the dynamics ratio
  :math:`\frac{P_{real}(s'|s,a)}{P_{sim}(s'|s,a)} = \frac{p_{sas}(0)\,p_{sa}(1)}{p_{sas}(1)\,p_{sa}(0)}`;
- the **simulated TD errors are importance-weighted** by that ratio clipped to [1e-5, 1]:
  :math:`L^{sim}_Q = \mathbb{E}_{sim}[(\sqrt{w}\,(Q - y))^2]`; real rows keep a plain MSE;
- a **gap-weighted conservative penalty** pushes Q down on simulated pairs with a large gap and up on real data:
  :math:`u(s,a) = \mathrm{clip}(\mathbb{E}_{\tilde s'}[\log P_{sim}/P_{real}(s, a, \tilde s')], 10^{-45}, 10)` over 10
  next states :math:`\tilde s' \sim \mathcal N(s'_{sim}, \sigma^2_{data})`, :math:`\omega = u / \sum_{sim} u`, and
  :math:`\alpha_{cql}\,\mathrm{clip}(\log\sum_{sim} e^{Q(s,a) + \log\omega} - \mathbb{E}_{real}[Q], \pm 1000)`.

TD targets use the minimum of the twin target critics at the policy's next action, without an entropy term
(``backup_entropy=False``). The actor and the temperature (target entropy :math:`-|A|`) learn on the whole mixed
batch. Update order (the official ``train``): the discriminators first, then every other loss from the parameters
at the start of the step (the simulated weights from the new discriminators), then all optimiser steps, then the
targets' Polyak step. Defaults are the official ones: 2x256 MLPs, Adam 3e-4 everywhere, gamma 0.99, tau 5e-3,
``cql_alpha`` 0.01, batch 256 split 50/50 (``--offline-fraction 0.5``).

Deviations from the official code:
- The discriminators learn on the update's own batch (its real and simulated rows), not on separate batches of
  256 each.
- :math:`\sigma_{data}` is the standard deviation of the logged next observations, per dimension, in the space the
  algorithm sees (normalised observations when ``normalize_observations`` is on).
- The policy is offrl's ``TanhGaussianPolicy`` (the official one adds a learned log-std offset of -1).
- ``d`` is the terminal flag only; time-limit truncations bootstrap.
- The lower clip of :math:`u` is 1e-30, not 1e-45 (a float32 denormal, flushed to zero on many CPUs, which made
  :math:`\omega` 0/0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from offrl.algos.base import Algorithm, Batch, DataUpdate, Metrics, Spec, config_field, require
from offrl.nn.losses import td_target, temperature_loss
from offrl.nn.networks import MLP, Ensemble, QNetwork
from offrl.nn.policies import TanhGaussianPolicy, tanh_gaussian_act, tanh_gaussian_sample
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update

TINY = 1e-30  # the official lower clip of u is 1e-45, a float32 denormal that CPUs may flush to zero


@dataclass(frozen=True)
class H2OConfig:
    cql_alpha: float = config_field(0.01, "weight of the gap-weighted conservative penalty (cql_min_q_weight)")
    ratio_min: float = config_field(1e-5, "lower clip of the dynamics ratio weighting simulated TD errors")
    ratio_max: float = config_field(1.0, "upper clip of that ratio")
    next_state_samples: int = config_field(10, "next states sampled around s' for the gap u(s, a)")
    discriminator_noise: float = config_field(0.1, "std of the Gaussian noise on the discriminators' inputs")
    discriminator_lr: float = config_field(3e-4, "learning rate of both discriminators")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    alpha_lr: float = config_field(3e-4, "temperature learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of every network")
    init_alpha: float = config_field(1.0, "initial entropy temperature")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.cql_alpha >= 0, f"cql_alpha must be >= 0, got {self.cql_alpha}")
        require(0 < self.ratio_min <= self.ratio_max, "need 0 < ratio_min <= ratio_max")
        require(self.next_state_samples >= 1, "next_state_samples must be >= 1")
        require(self.discriminator_noise >= 0, "discriminator_noise must be >= 0")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        rates = (self.actor_lr, self.critic_lr, self.alpha_lr, self.discriminator_lr)
        require(min(rates) > 0, "learning rates must be > 0")
        require(self.init_alpha > 0, f"init_alpha must be > 0, got {self.init_alpha}")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class H2OState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt: optax.OptState
    d_sa_params: dict
    d_sa_opt: optax.OptState
    d_sas_params: dict
    d_sas_opt: optax.OptState
    rng: jax.Array
    config: H2OConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Discriminator(nn.Module):
    """Two logits (real, sim), bounded by 2 tanh, from the concatenated inputs."""

    hidden_dims: tuple[int, ...]

    @nn.compact
    def __call__(self, *inputs: jax.Array) -> jax.Array:
        return 2.0 * jnp.tanh(MLP(self.hidden_dims, 2)(jnp.concatenate(inputs, axis=-1)))


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    d_sa: nn.Module
    d_sas: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    alpha_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation


@cache
def networks(config: H2OConfig, spec: Spec) -> Networks:
    return Networks(
        actor=TanhGaussianPolicy(config.hidden_dims, spec.action_dim),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        d_sa=Discriminator(config.hidden_dims),
        d_sas=Discriminator(config.hidden_dims),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
        alpha_tx=optax.adam(config.alpha_lr),
        d_tx=optax.adam(config.discriminator_lr),
    )


def init(key: jax.Array, spec: Spec, config: H2OConfig) -> H2OState:
    require(not spec.discrete, "H2O is for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_sa, k_sas, k_state = jax.random.split(key, 5)
    obs, act = jnp.zeros((1, *spec.observation_shape)), jnp.zeros((1, spec.action_dim))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, act)
    d_sa_params = nets.d_sa.init(k_sa, obs, act)
    d_sas_params = nets.d_sas.init(k_sas, obs, act, obs)
    log_alpha = jnp.asarray(np.log(config.init_alpha), jnp.float32)
    return H2OState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        log_alpha=log_alpha,
        alpha_opt=nets.alpha_tx.init(log_alpha),
        d_sa_params=d_sa_params,
        d_sa_opt=nets.d_tx.init(d_sa_params),
        d_sas_params=d_sas_params,
        d_sas_opt=nets.d_tx.init(d_sas_params),
        rng=k_state,
        config=config,
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------------------------
# The discriminators and the dynamics ratio


def class_log_probs(nets: Networks, d_sa: dict, d_sas: dict, obs, actions, next_obs):
    """``(log p_sa, log p_sas)``, each ``[B, 2]`` (column 0 real, 1 sim)."""
    sa_logits = nets.d_sa.apply(d_sa, obs, actions)
    sas_logits = nets.d_sas.apply(d_sas, obs, actions, next_obs) + sa_logits
    return jax.nn.log_softmax(sa_logits), jax.nn.log_softmax(sas_logits)


def log_sim_over_real(nets: Networks, d_sa: dict, d_sas: dict, obs, actions, next_obs) -> jax.Array:
    """``log P_sim(s'|s,a) / P_real(s'|s,a)`` estimated by the discriminators."""
    log_sa, log_sas = class_log_probs(nets, d_sa, d_sas, obs, actions, next_obs)
    return log_sas[:, 1] - log_sas[:, 0] + log_sa[:, 0] - log_sa[:, 1]


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def discriminator_loss(params, nets: Networks, batch: Batch, real: jax.Array, key: jax.Array, noise: float):
    d_sa, d_sas = params
    k1, k2, k3 = jax.random.split(key, 3)
    obs = batch["observations"] + noise * jax.random.normal(k1, batch["observations"].shape)
    actions = batch["actions"] + noise * jax.random.normal(k2, batch["actions"].shape)
    next_obs = batch["next_observations"] + noise * jax.random.normal(k3, batch["next_observations"].shape)
    log_sa, log_sas = class_log_probs(nets, d_sa, d_sas, obs, actions, next_obs)
    sim = 1.0 - real
    sa_loss = masked_mean(-log_sa[:, 0], real) + masked_mean(-log_sa[:, 1], sim)
    sas_loss = masked_mean(-log_sas[:, 0], real) + masked_mean(-log_sas[:, 1], sim)
    return sa_loss + sas_loss, {"discriminator/sa_loss": sa_loss, "discriminator/sas_loss": sas_loss}


# ---------------------------------------------------------------------------------------------------------------


def critic_loss(critic_params, nets, state: H2OState, batch, real, target, weights, omega_log, config):
    q = nets.critic.apply(critic_params, batch["observations"], batch["actions"])  # [2, B]
    sim = 1.0 - real
    real_td = jnp.stack([masked_mean(jnp.square(qi - target), real) for qi in q])
    sim_td = jnp.stack([masked_mean(weights * jnp.square(qi - target), sim) for qi in q])
    # logsumexp over the simulated rows of Q + log omega, minus the mean Q on real rows, per critic
    # (-1e30, not -inf, off the simulated rows: a batch without any stays finite, its gradient zero)
    gap = jax.scipy.special.logsumexp(jnp.where(sim[None] > 0, q + omega_log[None], -1e30), axis=1)
    diff = jnp.clip(gap - jnp.stack([masked_mean(qi, real) for qi in q]), -1000.0, 1000.0)
    loss = (real_td + sim_td + config.cql_alpha * diff).sum()
    return loss, {
        "critic/loss": loss,
        "critic/real_td": real_td.mean(),
        "critic/sim_td": sim_td.mean(),
        "critic/penalty_diff": diff.mean(),
        "critic/q_real": masked_mean(q.mean(axis=0), real),
        "critic/q_sim": masked_mean(q.mean(axis=0), sim),
    }


def actor_loss(actor_params, nets, critic_params, batch, alpha, key):
    mean, log_std = nets.actor.apply(actor_params, batch["observations"])
    actions, log_prob = tanh_gaussian_sample(key, mean, log_std)
    q = nets.critic.apply(critic_params, batch["observations"], actions).min(axis=0)
    loss = (alpha * log_prob - q).mean()
    return loss, ({"actor/loss": loss, "actor/entropy": -log_prob.mean()}, log_prob)


def h2o_update(state: H2OState, batch: Batch, next_obs_std: jax.Array) -> tuple[H2OState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, d_key, next_key, u_key, actor_key = jax.random.split(state.rng, 5)
    real = batch["from_data"].astype(jnp.float32)
    sim = 1.0 - real

    # 1. Discriminators.
    (_, d_info), grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
        (state.d_sa_params, state.d_sas_params), nets, batch, real, d_key, config.discriminator_noise
    )
    d_sa_params, d_sa_opt = apply_gradients(nets.d_tx, state.d_sa_params, state.d_sa_opt, grads[0])
    d_sas_params, d_sas_opt = apply_gradients(nets.d_tx, state.d_sas_params, state.d_sas_opt, grads[1])

    # 2. The dynamics ratio of the simulated rows (new discriminators) and their gap u(s, a).
    obs, actions, next_obs = batch["observations"], batch["actions"], batch["next_observations"]
    log_ratio = log_sim_over_real(nets, d_sa_params, d_sas_params, obs, actions, next_obs)
    weights = jnp.clip(jnp.exp(-log_ratio), config.ratio_min, config.ratio_max)  # P_real / P_sim
    n = config.next_state_samples
    noisy_next = next_obs[None] + next_obs_std * jax.random.normal(u_key, (n, *next_obs.shape))
    samples = jax.vmap(lambda s2: log_sim_over_real(nets, d_sa_params, d_sas_params, obs, actions, s2))(noisy_next)
    u = jnp.clip(samples.mean(axis=0), TINY, 10.0)
    omega = u * sim / jnp.maximum((u * sim).sum(), TINY)
    omega_log = jnp.log(jnp.maximum(omega, TINY))
    weights, omega_log = jax.lax.stop_gradient(weights), jax.lax.stop_gradient(omega_log)

    # 3. Every loss from the parameters at the start of the step.
    alpha = jnp.exp(state.log_alpha)
    mean, log_std = nets.actor.apply(state.actor_params, batch["next_observations"])
    next_actions, _ = tanh_gaussian_sample(next_key, mean, log_std)
    next_q = nets.critic.apply(state.target_critic_params, batch["next_observations"], next_actions).min(axis=0)
    target = td_target(batch["rewards"], batch["terminals"], next_q, config.discount)  # no entropy backup
    (_, critic_info), critic_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, state, batch, real, target, weights, omega_log, config
    )
    (_, (actor_info, log_prob)), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, state.critic_params, batch, alpha, actor_key
    )
    (_, alpha_info), alpha_grad = jax.value_and_grad(temperature_loss, has_aux=True)(
        state.log_alpha, log_prob, -float(state.spec.action_dim)
    )

    # 4. Optimiser steps, then the targets.
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, critic_grads)
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, actor_grads)
    log_alpha, alpha_opt = apply_gradients(nets.alpha_tx, state.log_alpha, state.alpha_opt, alpha_grad)
    target_critic_params = polyak_update(state.target_critic_params, critic_params, config.tau)
    critic_info["critic/grad_norm"] = global_norm(critic_grads)
    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=target_critic_params,
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        d_sa_params=d_sa_params,
        d_sa_opt=d_sa_opt,
        d_sas_params=d_sas_params,
        d_sas_opt=d_sas_opt,
        rng=rng,
    )
    gap_info = {
        "h2o/sim_weight": masked_mean(weights, sim),
        "h2o/real_weight": masked_mean(weights, real),
        "h2o/u_sim": masked_mean(u, sim),
        "h2o/real_fraction": real.mean(),
    }
    return new_state, {**d_info, **critic_info, **actor_info, **alpha_info, **gap_info}


def bind_dataset(config: H2OConfig, arrays: dict[str, np.ndarray]) -> DataUpdate:
    """The spread of the logged next observations (for the gap's next-state samples) comes from the data."""
    std = jnp.asarray(np.asarray(arrays["next_observations"], np.float32).std(axis=0) + 1e-6)

    def update_with_data(state: H2OState, batch: Batch, data: Batch) -> tuple[H2OState, Metrics]:
        return h2o_update(state, batch, std)

    return update_with_data


def update(state: H2OState, batch: Batch) -> tuple[H2OState, Metrics]:
    raise TypeError(
        "H2O's update reads the spread of the logged next observations: build it with "
        "offrl.algos.base.training_update(ALGORITHM, config, arrays) and call update(state, batch, data)"
    )


def act(state: H2OState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return tanh_gaussian_act(mean, log_std, key, deterministic)


ALGORITHM = Algorithm(
    name="h2o",
    description="H2O (Niu et al. 2022): SAC on real data + simulator rows, weighted by a learned dynamics gap",
    config_class=H2OConfig,
    init=init,
    update=update,
    act=act,
    extra_columns=("from_data",),
    bind_dataset=bind_dataset,
)
