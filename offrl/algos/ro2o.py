r"""RO2O: Robust Offline-to-Online RL via uncertainty and smoothness (Wen, Yu, Yang, Bai & Wang, "Towards Robust
Offline-to-Online Reinforcement Learning via Uncertainty and Smoothness", JAIR 2024, arXiv:2309.16973; official code
github.com/BattleWen/RO2O: ``algorithms/offline/ro2o_mujoco.py``, ``algorithms/finetune/ro2o_ft_mujoco.py`` and
``ro2o_ft_ant_LCB.py``), registered as ``ro2o``.

Offline, SAC with an ensemble of N critics (SAC-N) made robust by RORL-style smoothness: the Q-values and the policy
should not change much within a small ball of states, and Q on slightly perturbed, out-of-data states is pushed down
by the ensemble's disagreement there. With :math:`\hat s_k = s + \delta_k`, :math:`\delta_k \sim U(-\epsilon,
\epsilon)^{d}` (K perturbations, shared by the batch, as the official code):

.. math::

    y &= r + \gamma (1 - d)\big(\min_i \bar Q_i(s', a') - \alpha \log\pi(a'|s')\big) \\
    L_Q &= \textstyle\sum_i \mathbb{E}\big[(Q_i(s, a) - y)^2\big]
        + \eta\, \mathbb{E}_s \max_k \tfrac1N \textstyle\sum_i \ell_\tau\big(Q_i(\hat s_k, a) - Q_i(s, a)\big)
        + \beta_{ood}\, \mathbb{E}_{s, k} \tfrac1N \textstyle\sum_i \big(Q_i(\hat s_k, \hat a_k)
        - [Q_i(\hat s_k, \hat a_k) - \lambda_u\, \mathrm{std}_j Q_j(\hat s_k, \hat a_k)]_{\text{no grad}}\big)^2 \\
    L_\pi &= \mathbb{E}\big[\alpha \log\pi(\tilde a|s) - \min_i Q_i(s, \tilde a)\big]
        + \beta_\pi\, \mathbb{E}_s \max_k \big[D_{KL}(\pi(\cdot|s) \| \pi(\cdot|\hat s_k))
        + D_{KL}(\pi(\cdot|\hat s_k) \| \pi(\cdot|s))\big]

with :math:`\ell_\tau(x) = (1-\tau) \max(x, 0)^2 + \tau \min(x, 0)^2` (:math:`\tau = 0.2`), :math:`\hat a_k \sim
\pi(\cdot|\hat s_k)`, the KL between the pre-tanh Gaussians, and :math:`\lambda_u` decaying linearly per update from
``uncertainty_weight`` to ``uncertainty_weight_min``. The temperature is tuned to :math:`-|A|`.

Update order per step (the official one, EDAC's): the temperature, then the actor (with the new temperature), then
the critics (next actions from the new actor), then the Polyak step of the target critics.

Online (``online``; ``online_config`` turns it on for ``offrl finetune``) the smoothness and OOD terms are dropped,
as in both official fine-tuning scripts, and ``online_variant`` picks which one:

- ``mujoco`` (``ro2o_ft_mujoco.py``): plain SAC-N on the pre-trained ensemble;
- ``lcb`` (``ro2o_ft_ant_LCB.py``): each critic regresses on its own target (no minimum), and the actor maximises a
  lower confidence bound of the soft value plus a BC term on the batch:
  :math:`L_\pi = -\mathbb{E}[\mathrm{mean}_i X_i + \beta_{online} \mathrm{std}_i X_i] + \beta_{bc}
  \mathbb{E}\lVert\tilde a - a\rVert^2`, :math:`X_i = Q_i(s, \tilde a) - \alpha\log\pi(\tilde a|s)`,
  :math:`\beta_{online} = -4`.

The paper's abstract says RO2O needs "no special changes to the learning objective" online; the released AntMaze
script does change the actor's (the LCB variant above). Both are here, with the MuJoCo one as default. The official
fine-tuning keeps only online data in its replay (``offrl finetune --offline-fraction 0``).

Defaults (the official MuJoCo offline config): N = 10, K = 20 perturbations, all epsilons 0.01, eta 1e-4,
beta_ood 0.1, beta_pi 1.0, lambda_u from 1.0 to 0.1 at 5e-7 per update, Adam 3e-4 everywhere, batch 256, gamma 0.99,
tau 0.005, 3x256 networks, actor log std in [-5, 2], observations standardised with the dataset's mean and std.
On a CPU, fewer critics and perturbations (``--num-critics 5 --num-perturbations 5``) cost about a quarter.

Deviations: network initialisation is offrl's (orthogonal), not EDAC's (biases 0.1, last layers U(+-3e-3));
``d`` is the terminal flag only; the ensemble std is the unbiased one, as torch's.
"""

from __future__ import annotations

import dataclasses
import math
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

ONLINE_VARIANTS = ("mujoco", "lcb")


@dataclass(frozen=True)
class RO2OConfig:
    num_critics: int = config_field(10, "critics in the ensemble (N)")
    num_perturbations: int = config_field(20, "perturbed states per state (K)")
    q_smooth_eps: float = config_field(0.01, "radius of the perturbations of the Q-smoothness term")
    policy_smooth_eps: float = config_field(0.01, "radius of the perturbations of the policy-smoothness term")
    ood_smooth_eps: float = config_field(0.01, "radius of the perturbations of the OOD term")
    q_smooth_weight: float = config_field(1e-4, "weight of the Q-smoothness term (eta)")
    q_smooth_tau: float = config_field(0.2, "asymmetry of the Q-smoothness loss (weight of decreases)")
    beta_ood: float = config_field(0.1, "weight of the OOD uncertainty term")
    beta_policy: float = config_field(1.0, "weight of the policy-smoothness term")
    uncertainty_weight: float = config_field(1.0, "lambda_u at the start: OOD target = Q - lambda_u std(Q)")
    uncertainty_weight_min: float = config_field(0.1, "lambda_u's floor")
    uncertainty_decay: float = config_field(5e-7, "lambda_u's decrease per update")
    online: bool = config_field(False, "online phase: drop the smoothness and OOD terms (set by fine-tuning)")
    online_variant: str = config_field("mujoco", "the online phase: mujoco (SAC-N) | lcb (LCB + BC actor)")
    lcb_beta: float = config_field(-4.0, "lcb online: weight of the ensemble std in the actor's objective")
    bc_weight: float = config_field(1.0, "lcb online: weight of the actor's BC term")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    alpha_lr: float = config_field(3e-4, "temperature learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256, 256), "hidden layer widths of actor and critics")
    init_alpha: float = config_field(1.0, "initial entropy temperature")
    normalize_observations: bool = config_field(True, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.num_critics >= 2, f"num_critics must be >= 2 (an ensemble std), got {self.num_critics}")
        require(self.num_perturbations >= 1, f"num_perturbations must be >= 1, got {self.num_perturbations}")
        eps = (self.q_smooth_eps, self.policy_smooth_eps, self.ood_smooth_eps)
        require(min(eps) >= 0, "the perturbation radii must be >= 0")
        require(0.0 <= self.q_smooth_tau <= 1.0, f"q_smooth_tau must be in [0, 1], got {self.q_smooth_tau}")
        weights = (self.q_smooth_weight, self.beta_ood, self.beta_policy, self.uncertainty_decay, self.bc_weight)
        require(min(weights) >= 0, "loss weights and the decay must be >= 0")
        require(
            0 <= self.uncertainty_weight_min <= self.uncertainty_weight,
            "need 0 <= uncertainty_weight_min <= uncertainty_weight",
        )
        require(self.online_variant in ONLINE_VARIANTS, f"online_variant must be one of {ONLINE_VARIANTS}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr, self.alpha_lr) > 0, "learning rates must be > 0")
        require(self.init_alpha > 0, f"init_alpha must be > 0, got {self.init_alpha}")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class RO2OState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt: optax.OptState
    uncertainty_weight: jax.Array  # lambda_u, decayed per offline update
    step: jax.Array
    rng: jax.Array
    config: RO2OConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    alpha_tx: optax.GradientTransformation


@cache
def networks(config: RO2OConfig, spec: Spec) -> Networks:
    return Networks(
        actor=TanhGaussianPolicy(config.hidden_dims, spec.action_dim, log_std_min=-5.0),
        critic=Ensemble(QNetwork, config.num_critics)(config.hidden_dims),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
        alpha_tx=optax.adam(config.alpha_lr),
    )


def init(key: jax.Array, spec: Spec, config: RO2OConfig) -> RO2OState:
    require(not spec.discrete, "RO2O is for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    log_alpha = jnp.asarray(math.log(config.init_alpha), jnp.float32)
    return RO2OState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        log_alpha=log_alpha,
        alpha_opt=nets.alpha_tx.init(log_alpha),
        uncertainty_weight=jnp.asarray(config.uncertainty_weight, jnp.float32),
        step=jnp.zeros((), jnp.int32),
        rng=k_state,
        config=config,
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------------------------
# Perturbations and the smoothness terms


def perturbed(observations: jax.Array, key: jax.Array, eps: float, k: int) -> jax.Array:
    """``[B, K, obs]``: each state plus K uniform offsets in ``[-eps, eps]``, the same K offsets for every state."""
    offsets = jax.random.uniform(key, (k, observations.shape[-1]), minval=-eps, maxval=eps)
    return observations[:, None] + offsets[None]


def q_at(nets: Networks, critic_params: dict, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """Q of every critic at ``[B, K, obs]`` states and ``[B, K, A]`` actions: ``[N, B, K]``."""
    b, k = observations.shape[:2]
    q = nets.critic.apply(critic_params, observations.reshape(b * k, -1), actions.reshape(b * k, -1))
    return q.reshape(-1, b, k)


def q_smoothness(critic_params, nets: Networks, config: RO2OConfig, batch: Batch, key) -> jax.Array:
    obs, actions = batch["observations"], batch["actions"]
    noisy = perturbed(obs, key, config.q_smooth_eps, config.num_perturbations)
    repeated = jnp.broadcast_to(actions[:, None], (*noisy.shape[:2], actions.shape[-1]))
    q_noisy = q_at(nets, critic_params, noisy, repeated)  # [N, B, K]
    q = nets.critic.apply(critic_params, obs, actions)[..., None]  # [N, B, 1]
    diff = q_noisy - q
    per_state = ((1 - config.q_smooth_tau) * jnp.square(jnp.maximum(diff, 0.0))).mean(0) + (
        config.q_smooth_tau * jnp.square(jnp.minimum(diff, 0.0))
    ).mean(0)  # [B, K]
    return config.q_smooth_weight * per_state.max(axis=1).mean()


def ood_loss(critic_params, nets: Networks, config: RO2OConfig, noisy, noisy_actions, weight) -> tuple:
    q = q_at(nets, critic_params, noisy, noisy_actions)  # [N, B, K]
    std = jnp.std(q, axis=0, ddof=1)
    target = jax.lax.stop_gradient(q - weight * std)
    return config.beta_ood * jnp.square(q - target).mean(), std.mean()


def symmetric_gaussian_kl(mean1, log_std1, mean2, log_std2) -> jax.Array:
    """KL(p||q) + KL(q||p) between diagonal Gaussians, summed over the last axis."""
    var1, var2 = jnp.exp(2 * log_std1), jnp.exp(2 * log_std2)
    square = jnp.square(mean1 - mean2)
    kl12 = log_std2 - log_std1 + (var1 + square) / (2 * var2) - 0.5
    kl21 = log_std1 - log_std2 + (var2 + square) / (2 * var1) - 0.5
    return (kl12 + kl21).sum(-1)


def policy_smoothness(actor_params, nets: Networks, config: RO2OConfig, observations, key) -> jax.Array:
    noisy = perturbed(observations, key, config.policy_smooth_eps, config.num_perturbations)
    mean, log_std = nets.actor.apply(actor_params, observations)
    noisy_mean, noisy_log_std = nets.actor.apply(actor_params, noisy)  # [B, K, A]
    kl = symmetric_gaussian_kl(mean[:, None], log_std[:, None], noisy_mean, noisy_log_std)  # [B, K]
    return config.beta_policy * kl.max(axis=1).mean()


# ---------------------------------------------------------------------------------------------------------------
# Losses


def actor_loss(actor_params, nets: Networks, config: RO2OConfig, critic_params, batch: Batch, alpha, keys):
    sample_key, smooth_key = keys
    obs = batch["observations"]
    mean, log_std = nets.actor.apply(actor_params, obs)
    actions, log_prob = tanh_gaussian_sample(sample_key, mean, log_std)
    q = nets.critic.apply(critic_params, obs, actions)  # [N, B]
    info = {"actor/entropy": -log_prob.mean(), "actor/q_std": jnp.std(q, axis=0, ddof=1).mean()}
    if config.online and config.online_variant == "lcb":
        soft = q - alpha * log_prob
        lcb = soft.mean(0) + config.lcb_beta * jnp.std(soft, axis=0, ddof=1)
        bc = jnp.square(actions - batch["actions"]).mean()
        loss = -lcb.mean() + config.bc_weight * bc
        info["actor/bc_loss"] = bc
    else:
        loss = (alpha * log_prob - q.min(0)).mean()
        if not config.online:
            smooth = policy_smoothness(actor_params, nets, config, obs, smooth_key)
            loss = loss + smooth
            info["actor/smoothness"] = smooth
    info["actor/loss"] = loss
    return loss, info


def critic_loss(critic_params, nets: Networks, config: RO2OConfig, batch: Batch, target, ood_inputs, weight, key):
    q = nets.critic.apply(critic_params, batch["observations"], batch["actions"])  # [N, B]
    td = jnp.square(q - target).mean(axis=1).sum()
    info = {"critic/td_loss": td, "critic/q_mean": q.mean()}
    loss = td
    if not config.online:
        smooth = q_smoothness(critic_params, nets, config, batch, key)
        ood, ood_std = ood_loss(critic_params, nets, config, *ood_inputs, weight)
        loss = td + smooth + ood
        info |= {"critic/q_smoothness": smooth, "critic/ood_loss": ood, "critic/ood_std": ood_std}
    info["critic/loss"] = loss
    return loss, info


# ---------------------------------------------------------------------------------------------------------------


def update(state: RO2OState, batch: Batch) -> tuple[RO2OState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    keys = jax.random.split(state.rng, 8)
    rng, alpha_key, actor_key, smooth_key, next_key, ood_key, ood_action_key, q_smooth_key = keys
    obs = batch["observations"]

    # 1. Temperature, with log-probabilities of fresh actions from the current actor.
    mean, log_std = nets.actor.apply(state.actor_params, obs)
    _, log_prob = tanh_gaussian_sample(alpha_key, mean, log_std)
    target_entropy = -float(state.spec.action_dim)

    def alpha_loss(log_alpha):
        return -(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy)).mean()

    alpha_value, alpha_grad = jax.value_and_grad(alpha_loss)(state.log_alpha)
    log_alpha, alpha_opt = apply_gradients(nets.alpha_tx, state.log_alpha, state.alpha_opt, alpha_grad)
    alpha = jnp.exp(log_alpha)

    # 2. Actor, with the new temperature.
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, config, state.critic_params, batch, alpha, (actor_key, smooth_key)
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 3. Critics: targets from the new actor; smoothness and OOD terms offline.
    next_obs = batch["next_observations"]
    next_mean, next_log_std = nets.actor.apply(actor_params, next_obs)
    next_actions, next_log_prob = tanh_gaussian_sample(next_key, next_mean, next_log_std)
    next_q = nets.critic.apply(state.target_critic_params, next_obs, next_actions)  # [N, B]
    if not (config.online and config.online_variant == "lcb"):
        next_q = next_q.min(axis=0)  # the lcb variant: each critic its own target
    target = td_target(batch["rewards"], batch["terminals"], next_q - alpha * next_log_prob, config.discount)
    noisy = perturbed(obs, ood_key, config.ood_smooth_eps, config.num_perturbations)
    noisy_mean, noisy_log_std = nets.actor.apply(actor_params, noisy)
    noisy_actions, _ = tanh_gaussian_sample(ood_action_key, noisy_mean, noisy_log_std)
    ood_inputs = jax.lax.stop_gradient((noisy, noisy_actions))
    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, config, batch, target, ood_inputs, state.uncertainty_weight, q_smooth_key
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)
    weight = state.uncertainty_weight
    if not config.online:
        weight = jnp.maximum(weight - config.uncertainty_decay, config.uncertainty_weight_min)

    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=polyak_update(state.target_critic_params, critic_params, config.tau),
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        uncertainty_weight=weight,
        step=state.step + 1,
        rng=rng,
    )
    metrics = {**actor_info, **critic_info, "alpha/loss": alpha_value, "alpha/value": alpha}
    return new_state, {**metrics, "ood/uncertainty_weight": state.uncertainty_weight}


def act(state: RO2OState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return tanh_gaussian_act(mean, log_std, key, deterministic)


def online_config(config: RO2OConfig) -> RO2OConfig:
    """Fine-tuning's online phase: without the smoothness and OOD terms, as ``online_variant`` says."""
    return dataclasses.replace(config, online=True)


ALGORITHM = Algorithm(
    name="ro2o",
    description="RO2O (Wen et al. 2024): SAC-N with Q and policy smoothness and an OOD uncertainty penalty",
    config_class=RO2OConfig,
    init=init,
    update=update,
    act=act,
    online_config=online_config,
)
