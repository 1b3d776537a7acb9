r"""RLPD: Reinforcement Learning with Prior Data (Ball, Smith, Kostrikov & Levine, "Efficient Online Reinforcement
Learning with Offline Data", ICML 2023, arXiv:2302.02948; official code github.com/ikostrikov/rlpd,
``rlpd/agents/sac/sac_learner.py`` and ``configs/rlpd_config.py``), also the learner of SERL (Luo et al. 2024,
``serl_launcher/agents/continuous/sac.py``), registered as ``rlpd``.

Online SAC that learns from logged data without pre-training on it. What makes it work (the paper's ablations):

- **symmetric sampling**: every batch is half offline data, half online replay (``offrl finetune`` with
  ``--offline-steps 0 --offline-fraction 0.5``; ``offrl.train.mixing``);
- **LayerNorm critics**, an **ensemble of N = 10** whose TD target is the minimum over a random subset of
  **M = 2** target critics (REDQ's in-target minimisation), so that values of out-of-data actions stay bounded;
- a **high update-to-data ratio** (``--updates-per-step 20``), the actor and temperature updated once per
  environment step, after that step's critic updates (``actor_every`` = the UTD ratio).

.. math::

    y &= r + \gamma (1 - d) \big(\min_{j \in \mathcal M} \bar Q_j(s', a') - [\text{backup\_entropy}]\,
        \alpha \log\pi(a'|s')\big), \quad a' \sim \pi(\cdot|s'),\ \mathcal M \subset \{1..N\},\ |\mathcal M| = M \\
    L_Q &= \tfrac1N \textstyle\sum_i \mathbb{E}\big[(Q_i(s, a) - y)^2\big] \\
    L_\pi &= \mathbb{E}_{s,\ \tilde a \sim \pi}\big[\alpha \log\pi(\tilde a|s) - \tfrac1N \textstyle\sum_i
        Q_i(s, \tilde a)\big] \quad (\text{the mean over the ensemble, not the min}) \\
    L(\alpha) &= \alpha\,(\mathcal H(\pi) - \bar{\mathcal H}), \quad \bar{\mathcal H} = -|A|/2

Update order: each update is a critic step (with its Polyak step of the targets, tau 0.005); every
``actor_every``-th update then also takes an actor step against the new critics and a temperature step with the
entropy measured in that actor step's loss (before the step), on the same minibatch (the official ``update``:
``utd_ratio`` critic steps on minibatches, then the actor and temperature on the last one). Defaults are the
official RLPD config: 2x256 ReLU MLPs, LayerNorm in the critics only, Adam 3e-4 everywhere, batch 256, gamma 0.99,
initial temperature 1, entropy backup on, N = 10, M = 2, ``actor_every`` 20 (the paper's UTD 20; give the same
to ``--updates-per-step``); observations and rewards as they come. SERL's learner is the same with
``backup_entropy=False``, ``init_alpha=0.01`` and its critic-to-actor ratio 4 (``actor_every=4``)::

    offrl finetune --algo rlpd --dataset DATA --offline-steps 0 --online-steps N --updates-per-step 20 \
        --warmup-steps 5000                                                       # RLPD
    offrl finetune --algo rlpd --dataset DEMOS --offline-steps 0 --online-steps N --updates-per-step 4 \
        --actor-every 4 --no-backup-entropy --init-alpha 0.01 --discount 0.96    # SERL's learner (state-based)

Deviations from the official code:
- ``d`` is the terminal flag only; time-limit truncations bootstrap (the official ``masks`` do the same).
- The actor head and initialisation are offrl's shared ``TanhGaussianPolicy`` (state-dependent log std clipped to
  [-20, 2], as the official one).
- The actor/temperature step is every ``actor_every``-th update of the run, counted by the agent, rather than
  "after each call with ``utd_ratio`` minibatches"; with ``--updates-per-step`` equal to ``actor_every`` both
  give one actor step per environment step after the step's critic steps (after an offline phase whose length
  is not a multiple of ``actor_every``, the actor steps fall part-way through each step's block).

Metrics: updates without an actor step report 0 for ``actor/*`` and ``alpha/loss``, and the actor step reports
them multiplied by ``actor_every``, so their mean over a log window (a multiple of ``actor_every`` updates) is
their mean over the window's actor steps.
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
from offrl.nn.losses import td_target
from offrl.nn.networks import Ensemble, QNetwork
from offrl.nn.policies import TanhGaussianPolicy, tanh_gaussian_act, tanh_gaussian_sample
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class RLPDConfig:
    num_critics: int = config_field(10, "critic ensemble size N")
    num_min_critics: int = config_field(2, "target critics sampled for the minimum, M (REDQ)")
    critic_layer_norm: bool = config_field(True, "LayerNorm in the critics")
    actor_every: int = config_field(20, "updates per actor/temperature step (set to the UTD ratio)")
    backup_entropy: bool = config_field(True, "subtract alpha * log pi(a'|s') in the TD target (SERL: off)")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    alpha_lr: float = config_field(3e-4, "temperature learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of actor and critics")
    init_alpha: float = config_field(1.0, "initial entropy temperature (SERL: 0.01)")
    target_entropy: float = config_field(0.0, "entropy target; 0 = -|A|/2 (the official default)")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.num_critics >= 1, f"num_critics must be >= 1, got {self.num_critics}")
        require(
            1 <= self.num_min_critics <= self.num_critics,
            f"num_min_critics must be in [1, num_critics={self.num_critics}], got {self.num_min_critics}",
        )
        require(self.actor_every >= 1, f"actor_every must be >= 1, got {self.actor_every}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr, self.alpha_lr) > 0, "learning rates must be > 0")
        require(self.init_alpha > 0, f"init_alpha must be > 0, got {self.init_alpha}")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class RLPDState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt: optax.OptState
    step: jax.Array  # updates done (the actor steps every actor_every-th)
    rng: jax.Array
    config: RLPDConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module  # the N critics
    target_subset: nn.Module  # M of them, applied to a random subset of the target parameters
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    alpha_tx: optax.GradientTransformation


@cache
def networks(config: RLPDConfig, spec: Spec) -> Networks:
    return Networks(
        actor=TanhGaussianPolicy(config.hidden_dims, spec.action_dim),
        critic=Ensemble(QNetwork, config.num_critics)(config.hidden_dims, layer_norm=config.critic_layer_norm),
        target_subset=Ensemble(QNetwork, config.num_min_critics)(
            config.hidden_dims, layer_norm=config.critic_layer_norm
        ),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
        alpha_tx=optax.adam(config.alpha_lr),
    )


def target_entropy(config: RLPDConfig, spec: Spec) -> float:
    return config.target_entropy if config.target_entropy != 0.0 else -float(spec.action_dim) / 2.0


def init(key: jax.Array, spec: Spec, config: RLPDConfig) -> RLPDState:
    require(not spec.discrete, "RLPD is for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    log_alpha = jnp.asarray(jnp.log(config.init_alpha), jnp.float32)
    return RLPDState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        log_alpha=log_alpha,
        alpha_opt=nets.alpha_tx.init(log_alpha),
        step=jnp.zeros((), jnp.int32),
        rng=k_state,
        config=config,
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------------------------
# Losses


def critic_loss(critic_params: dict, nets: Networks, batch: Batch, target: jax.Array):
    q = nets.critic.apply(critic_params, batch["observations"], batch["actions"])  # [N, B]
    loss = jnp.square(q - target).mean()  # the mean over members, as the official code
    return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/q_min": q.min(), "critic/q_max": q.max()}


def actor_loss(actor_params: dict, nets: Networks, critic_params: dict, batch: Batch, alpha: jax.Array, key):
    mean, log_std = nets.actor.apply(actor_params, batch["observations"])
    actions, log_prob = tanh_gaussian_sample(key, mean, log_std)
    q = nets.critic.apply(critic_params, batch["observations"], actions).mean(axis=0)
    loss = (alpha * log_prob - q).mean()
    return loss, ({"actor/loss": loss, "actor/entropy": -log_prob.mean(), "actor/q": q.mean()}, log_prob)


def temperature_loss(log_alpha: jax.Array, entropy: jax.Array, entropy_target: float):
    alpha = jnp.exp(log_alpha)
    loss = alpha * jax.lax.stop_gradient(entropy - entropy_target)
    return loss, {"alpha/loss": loss, "alpha/value": alpha}


def subset_target_q(nets: Networks, target_params: dict, key: jax.Array, observations, actions, config: RLPDConfig):
    """The minimum over ``num_min_critics`` target critics drawn without replacement."""
    members = jax.random.choice(key, config.num_critics, (config.num_min_critics,), replace=False)
    subset = jax.tree_util.tree_map(lambda p: p[members], target_params)
    return nets.target_subset.apply(subset, observations, actions).min(axis=0)


# ---------------------------------------------------------------------------------------------------------------


def update(state: RLPDState, batch: Batch) -> tuple[RLPDState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, next_key, subset_key, actor_key = jax.random.split(state.rng, 4)
    alpha = jnp.exp(state.log_alpha)

    # 1. Critics, then their targets.
    mean, log_std = nets.actor.apply(state.actor_params, batch["next_observations"])
    next_actions, next_log_prob = tanh_gaussian_sample(next_key, mean, log_std)
    next_q = subset_target_q(
        nets, state.target_critic_params, subset_key, batch["next_observations"], next_actions, config
    )
    if config.backup_entropy:
        next_q = next_q - alpha * next_log_prob
    target = td_target(batch["rewards"], batch["terminals"], next_q, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic_params, nets, batch, target)
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)
    target_critic_params = polyak_update(state.target_critic_params, critic_params, config.tau)

    # 2. Every actor_every-th update: the actor against the new critics, then the temperature.
    def actor_and_temperature(_):
        (_, (info, log_prob)), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, nets, critic_params, batch, alpha, actor_key
        )
        actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
        info["actor/grad_norm"] = global_norm(grads)
        (_, alpha_info), grad = jax.value_and_grad(temperature_loss, has_aux=True)(
            state.log_alpha, -log_prob.mean(), target_entropy(config, state.spec)
        )
        log_alpha, alpha_opt = apply_gradients(nets.alpha_tx, state.log_alpha, state.alpha_opt, grad)
        # scaled so that their mean over the updates of a log window is their mean over its actor steps
        scaled = {k: v * config.actor_every for k, v in {**info, "alpha/loss": alpha_info["alpha/loss"]}.items()}
        return (actor_params, actor_opt, log_alpha, alpha_opt), {**scaled, "alpha/value": alpha_info["alpha/value"]}

    def unchanged(_):
        zero = jnp.zeros((), jnp.float32)
        info = {k: zero for k in ("actor/loss", "actor/entropy", "actor/q", "actor/grad_norm", "alpha/loss")}
        info["alpha/value"] = alpha
        return (state.actor_params, state.actor_opt, state.log_alpha, state.alpha_opt), info

    actor_step = (state.step + 1) % config.actor_every == 0
    (actor_params, actor_opt, log_alpha, alpha_opt), actor_info = jax.lax.cond(
        actor_step, actor_and_temperature, unchanged, None
    )
    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=target_critic_params,
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        step=state.step + 1,
        rng=rng,
    )
    return new_state, {**critic_info, **actor_info, "actor/stepped": actor_step.astype(jnp.float32)}


def act(state: RLPDState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return tanh_gaussian_act(mean, log_std, key, deterministic)


ALGORITHM = Algorithm(
    name="rlpd",
    description="RLPD (Ball et al. 2023): online SAC on 50/50 offline+online batches, LayerNorm ensemble, high UTD",
    config_class=RLPDConfig,
    init=init,
    update=update,
    act=act,
)
