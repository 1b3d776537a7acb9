r"""CQL: Conservative Q-Learning (Kumar, Zhou, Tucker & Levine, "Conservative Q-Learning for Offline Reinforcement
Learning", NeurIPS 2020, arXiv:2006.04779), the continuous CQL(H) variant on top of SAC. Official code:
github.com/aviralkumar2907/CQL; reference re-implementations: young-geng/CQL (JAX), CORL's ``cql.py``.
And Cal-QL (Nakamoto et al., "Cal-QL: Calibrated Offline RL Pre-Training for Efficient Online Fine-Tuning",
NeurIPS 2023, arXiv:2303.05479; official code github.com/nakamotoo/Cal-QL), registered as ``cal-ql``: CQL whose
pushed-down policy values are floored at the Monte-Carlo return of the data, see below.

SAC's critics are trained with an extra term that pushes Q down on actions the policy and a uniform proposal
pick (a soft maximum over them) and up on the dataset's actions, so out-of-distribution actions are not
over-valued:

.. math::

    L_Q(\theta_i) &= \mathbb{E}_D\big[(Q_{\theta_i}(s,a) - y)^2\big]
        + \alpha_{cql}\,\mathbb{E}_{s,a \sim D}\Big[T \log \sum_{j} \exp\big(\hat Q_{\theta_i}(s, a_j) / T\big)
        - Q_{\theta_i}(s, a)\Big] \\
    y &= r + \gamma (1 - d) \min_{k} \bar Q_k(s', a'), \quad a' \sim \pi(\cdot|s')
        \quad (\text{"deterministic backup": no entropy term, as the official code for MuJoCo})

The soft maximum runs over ``n_actions`` uniform actions, ``n_actions`` policy actions at s and ``n_actions`` policy
actions at s' (all evaluated at s). With ``importance_sample`` (the official ``min_q_version=3``) each term is
divided by its proposal density: :math:`\hat Q(s, a_j) = Q(s, a_j) - \log \mu(a_j)` with
:math:`\mu = U(-1,1)^{|A|}` (density :math:`0.5^{|A|}`) for the uniform actions and :math:`\pi(a_j|s)` or
:math:`\pi(a_j|s')` for the policy's; without it the dataset action's Q joins the set and no densities are
subtracted. With ``lagrange`` the penalty becomes :math:`\alpha' (\alpha_{cql}\,\text{gap} - \tau)` with
:math:`\alpha' = e^{\lambda}` (clipped to [0, 1e6]) tuned by gradient ascent on the same expression, as in the
official code: it grows while the weighted gap :math:`\alpha_{cql}\,\text{gap}` is above ``target_action_gap``
:math:`\tau` (CORL instead writes :math:`\alpha' \alpha_{cql} (\text{gap} - \tau)`).

Cal-QL (``calibrated``) replaces the policy actions' values in that soft maximum by
:math:`\max(Q(s, a_j), G(s, a))`, where :math:`G` is the dataset's discounted Monte-Carlo return-to-go from the
transition (``offrl.data.columns``: an episode cut by a timeout counts its unknown tail as zero); so Q is never
pushed below the behaviour policy's value and stays calibrated for online fine-tuning. Uniform actions are not
floored (as the official code).

The actor is SAC's, :math:`L_\pi = \mathbb{E}[\alpha \log\pi(\tilde a|s) - \min_k Q_k(s, \tilde a)]`, with the
temperature tuned to the entropy target :math:`-|A|`; for the first ``bc_steps`` updates it maximises the
likelihood of the dataset's actions instead (:math:`\alpha \log\pi(\tilde a|s) - \log\pi(a|s)`, the official
``policy_eval_start``).

Update order per step (the official rlkit-style trainer and CORL): every loss is computed from the parameters at
the start of the step (the actor and temperature losses, then the critic loss with policy actions sampled from the
current actor), then the temperature, actor, critics and (Lagrange) alpha' take their optimiser steps and the
target critics their Polyak step.

Defaults: the paper's MuJoCo settings (appendix F and the official code's ``examples/cql_mujoco_new.py``):
``alpha_cql`` (``min_q_weight``) 5.0, 10 sampled actions, temperature 1, importance sampling on, fixed weight
(no Lagrange), Adam 1e-4 for the actor and temperature and 3e-4 for the critics, batch 256, gamma 0.99,
tau 0.005, 3x256 ReLU MLPs for actor and critics, observations standardised (CORL; the official code does not),
rewards unscaled, no behaviour-cloning warm-start (CORL's MuJoCo setting; the official code can warm-start the actor
with ``policy_eval_start`` BC steps: set ``bc_steps``).

Fine-tuning (``offrl finetune``): the online phase keeps every setting, the Monte-Carlo floor included (as the
official Cal-QL ``conservative_sac_main.py``), except the conservative weight when ``cql_alpha_online`` is set (its
``cql_min_q_weight_online``). Online rows get their Monte-Carlo returns when their episode ends
(``offrl.train.online_columns``); the official code collects whole trajectories before training on them.

Deviations from the paper / official code:
- ``d`` is the terminal flag only; time-limit truncations bootstrap (D4RL's timeouts, as CORL).
- Actions live in [-1, 1]; the trainer maps them onto the environment's bounds.
- ``max_target_backup`` takes, for each target critic, the max over ``n_actions`` policy actions at s', then
  the min over critics (the official order; CORL takes the min first).
- Network initialisation is offrl's (orthogonal sqrt(2) hidden layers, orthogonal 1.0 heads), not PyTorch's
  default (official) or CORL's orthogonal with a 1e-2 head.
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
from offrl.nn.losses import critic_ensemble_loss, td_target, temperature_loss
from offrl.nn.networks import Ensemble, QNetwork
from offrl.nn.policies import TanhGaussianPolicy, tanh_gaussian_act, tanh_gaussian_log_prob, tanh_gaussian_sample
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update

MAX_ALPHA_PRIME = 1e6


@dataclass(frozen=True)
class CQLConfig:
    cql_alpha: float = config_field(5.0, "weight of the conservative penalty (the paper's alpha / min_q_weight)")
    cql_alpha_online: float = config_field(
        -1.0, "fine-tuning: the weight in the online phase; -1 = cql_alpha (official cql_min_q_weight_online)"
    )
    n_actions: int = config_field(10, "actions sampled per state from each proposal (uniform, pi(s), pi(s'))")
    temperature: float = config_field(1.0, "temperature of the logsumexp over sampled actions")
    importance_sample: bool = config_field(True, "divide by the proposal densities (official min_q_version 3)")
    lagrange: bool = config_field(False, "tune alpha' so that cql_alpha * gap meets target_action_gap")
    target_action_gap: float = config_field(5.0, "the weighted gap the Lagrange weight aims at (lagrange only)")
    lagrange_lr: float = config_field(3e-4, "learning rate of log alpha' (lagrange only)")
    max_target_backup: bool = config_field(False, "back up the max over n_actions policy actions at s'")
    backup_entropy: bool = config_field(False, "subtract alpha * log pi(a'|s') in the TD target")
    bc_steps: int = config_field(0, "first updates in which the actor does behaviour cloning")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(1e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    alpha_lr: float = config_field(1e-4, "entropy temperature learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256, 256), "hidden layer widths of actor and critics")
    init_alpha: float = config_field(1.0, "initial entropy temperature")
    target_entropy: float = config_field(0.0, "entropy target; 0 = -|A|")
    autotune_alpha: bool = config_field(True, "tune the entropy temperature; off = keep init_alpha")
    normalize_observations: bool = config_field(True, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.cql_alpha >= 0, f"cql_alpha must be >= 0, got {self.cql_alpha}")
        require(self.cql_alpha_online >= 0 or self.cql_alpha_online == -1, "cql_alpha_online must be >= 0 or -1")
        require(self.n_actions >= 1, f"n_actions must be >= 1, got {self.n_actions}")
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        require(self.bc_steps >= 0, f"bc_steps must be >= 0, got {self.bc_steps}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        rates = (self.actor_lr, self.critic_lr, self.alpha_lr, self.lagrange_lr)
        require(min(rates) > 0, "learning rates must be > 0")
        require(self.init_alpha > 0, f"init_alpha must be > 0, got {self.init_alpha}")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


@dataclass(frozen=True)
class CalQLConfig(CQLConfig):
    """Cal-QL: CQL with the Monte-Carlo lower bound (the official code's defaults equal CQL's here)."""

    calibrated: bool = config_field(True, "floor the pushed-down policy values at the data's Monte-Carlo return")


class CQLState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt: optax.OptState
    log_alpha_prime: jax.Array  # Lagrange multiplier of the conservative penalty (trained only with lagrange)
    alpha_prime_opt: optax.OptState
    step: jax.Array
    rng: jax.Array
    config: CQLConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    alpha_tx: optax.GradientTransformation
    alpha_prime_tx: optax.GradientTransformation


@cache
def networks(config: CQLConfig, spec: Spec) -> Networks:
    return Networks(
        actor=TanhGaussianPolicy(config.hidden_dims, spec.action_dim),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
        alpha_tx=optax.adam(config.alpha_lr),
        alpha_prime_tx=optax.adam(config.lagrange_lr),
    )


def init(key: jax.Array, spec: Spec, config: CQLConfig) -> CQLState:
    require(not spec.discrete, "this CQL is for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    log_alpha = jnp.asarray(math.log(config.init_alpha), jnp.float32)
    log_alpha_prime = jnp.zeros((), jnp.float32)
    return CQLState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        log_alpha=log_alpha,
        alpha_opt=nets.alpha_tx.init(log_alpha),
        log_alpha_prime=log_alpha_prime,
        alpha_prime_opt=nets.alpha_prime_tx.init(log_alpha_prime),
        step=jnp.zeros((), jnp.int32),
        rng=k_state,
        config=config,
        spec=spec,
    )


def target_entropy(config: CQLConfig, spec: Spec) -> float:
    return config.target_entropy if config.target_entropy != 0.0 else -float(spec.action_dim)


# ---------------------------------------------------------------------------------------------------------------
# Losses


def sample_actions(nets: Networks, actor_params: dict, observations: jax.Array, key: jax.Array, n: int):
    """``n`` policy actions per state: ``[B, n, A]`` and their log probabilities ``[B, n]``."""
    mean, log_std = nets.actor.apply(actor_params, observations)
    mean = jnp.broadcast_to(mean[:, None], (mean.shape[0], n, mean.shape[-1]))
    log_std = jnp.broadcast_to(log_std[:, None], mean.shape)
    return tanh_gaussian_sample(key, mean, log_std)


def q_of_many(nets: Networks, critic_params: dict, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """Q of every critic at ``[B, n, A]`` actions of ``[B, obs]`` states: ``[members, B, n]``."""
    b, n = actions.shape[:2]
    obs = jnp.repeat(observations, n, axis=0)
    q = nets.critic.apply(critic_params, obs, actions.reshape(b * n, -1))
    return q.reshape(q.shape[0], b, n)


def conservative_gap(critic_params: dict, nets: Networks, batch: Batch, q_data: jax.Array, proposals, config):
    """Per critic: mean over the batch of ``T logsumexp(Q_hat(s, a_j) / T) - Q(s, a)`` (shape ``[members]``)."""
    random_actions, policy_actions, policy_log_prob, next_actions, next_log_prob = proposals
    obs = batch["observations"]
    q_random = q_of_many(nets, critic_params, obs, random_actions)
    q_policy = q_of_many(nets, critic_params, obs, policy_actions)
    q_next = q_of_many(nets, critic_params, obs, next_actions)
    info = {}
    if getattr(config, "calibrated", False):  # Cal-QL: never push the policy's values below the data's return
        bound = batch["mc_returns"][None, :, None]
        info["cql/bound_active"] = ((q_policy < bound).mean() + (q_next < bound).mean()) / 2
        q_policy, q_next = jnp.maximum(q_policy, bound), jnp.maximum(q_next, bound)
    if config.importance_sample:
        log_uniform_density = random_actions.shape[-1] * math.log(0.5)
        stacked = jnp.concatenate(
            [q_random - log_uniform_density, q_next - next_log_prob[None], q_policy - policy_log_prob[None]], axis=-1
        )
    else:
        stacked = jnp.concatenate([q_random, q_data[..., None], q_next, q_policy], axis=-1)
    soft_max = config.temperature * jax.scipy.special.logsumexp(stacked / config.temperature, axis=-1)
    return (soft_max - q_data).mean(axis=1), {
        **info,
        "cql/q_random": q_random.mean(),
        "cql/q_policy": q_policy.mean(),
        "cql/q_next_actions": q_next.mean(),
    }


def critic_loss(critic_params, nets: Networks, batch: Batch, target: jax.Array, proposals, alpha_prime, config):
    td_loss, info = critic_ensemble_loss(critic_params, nets.critic, batch, target)
    q_data = nets.critic.apply(critic_params, batch["observations"], batch["actions"])
    gap, cql_info = conservative_gap(critic_params, nets, batch, q_data, proposals, config)
    offset = config.target_action_gap if config.lagrange else 0.0
    penalty = (alpha_prime * (config.cql_alpha * gap - offset)).sum()
    loss = td_loss + penalty
    info = {**info, **cql_info, "critic/td_loss": td_loss, "critic/loss": loss, "cql/gap": gap.mean()}
    return loss, (info, gap)


def actor_loss(actor_params, nets: Networks, critic_params: dict, batch: Batch, alpha, key, cloning: jax.Array):
    """SAC's actor loss; while ``cloning``, the likelihood of the dataset's actions replaces Q."""
    mean, log_std = nets.actor.apply(actor_params, batch["observations"])
    actions, log_prob = tanh_gaussian_sample(key, mean, log_std)
    q = nets.critic.apply(critic_params, batch["observations"], actions).min(axis=0)
    data_log_prob = tanh_gaussian_log_prob(batch["actions"], mean, log_std)
    objective = jnp.where(cloning, data_log_prob, q)
    loss = (alpha * log_prob - objective).mean()
    info = {"actor/loss": loss, "actor/entropy": -log_prob.mean(), "actor/q": q.mean()}
    return loss, (info, log_prob)


# ---------------------------------------------------------------------------------------------------------------


def update(state: CQLState, batch: Batch) -> tuple[CQLState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, actor_key, next_key, random_key, policy_key, proposal_next_key = jax.random.split(state.rng, 6)
    alpha = jnp.exp(state.log_alpha) if config.autotune_alpha else jnp.asarray(config.init_alpha, jnp.float32)
    n, b, action_dim = config.n_actions, batch["rewards"].shape[0], state.spec.action_dim

    # 1. Actor and temperature losses at the step's starting parameters.
    cloning = state.step < config.bc_steps
    (_, (actor_info, log_prob)), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, state.critic_params, batch, alpha, actor_key, cloning
    )
    (_, alpha_info), alpha_grad = jax.value_and_grad(temperature_loss, has_aux=True)(
        state.log_alpha, log_prob, target_entropy(config, state.spec)
    )

    # 2. Critic loss: TD target from the target critics, conservative penalty over sampled actions.
    if config.max_target_backup:
        next_actions, next_log_prob = sample_actions(nets, state.actor_params, batch["next_observations"], next_key, n)
        next_q = q_of_many(nets, state.target_critic_params, batch["next_observations"], next_actions)  # [M, B, n]
        best = jnp.argmax(next_q, axis=2)  # each critic's own best action
        per_critic = jnp.take_along_axis(next_q, best[..., None], axis=2)[..., 0]
        critic = jnp.argmin(per_critic, axis=0)  # then the smaller of those maxima, with its action's log pi
        next_value = jnp.take_along_axis(per_critic, critic[None], axis=0)[0]
        chosen = jnp.take_along_axis(best, critic[None], axis=0)[0]
        next_entropy = jnp.take_along_axis(next_log_prob, chosen[:, None], axis=1)[:, 0]
    else:
        mean, log_std = nets.actor.apply(state.actor_params, batch["next_observations"])
        next_action, next_entropy = tanh_gaussian_sample(next_key, mean, log_std)
        next_value = nets.critic.apply(state.target_critic_params, batch["next_observations"], next_action).min(0)
    if config.backup_entropy:
        next_value = next_value - alpha * next_entropy
    target = td_target(batch["rewards"], batch["terminals"], next_value, config.discount)
    random_actions = jax.random.uniform(random_key, (b, n, action_dim), minval=-1.0, maxval=1.0)
    policy_actions, policy_log_prob = sample_actions(nets, state.actor_params, batch["observations"], policy_key, n)
    next_policy_actions, next_policy_log_prob = sample_actions(
        nets, state.actor_params, batch["next_observations"], proposal_next_key, n
    )
    proposals = jax.lax.stop_gradient(
        (random_actions, policy_actions, policy_log_prob, next_policy_actions, next_policy_log_prob)
    )
    alpha_prime = (
        jnp.clip(jnp.exp(state.log_alpha_prime), 0.0, MAX_ALPHA_PRIME) if config.lagrange else jnp.float32(1.0)
    )
    (_, (critic_info, gap)), critic_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, batch, target, proposals, alpha_prime, config
    )
    critic_info["critic/grad_norm"] = global_norm(critic_grads)

    # 3. Optimiser steps: temperature, actor, critics, Lagrange multiplier; then the target critics.
    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    if config.autotune_alpha:
        log_alpha, alpha_opt = apply_gradients(nets.alpha_tx, state.log_alpha, state.alpha_opt, alpha_grad)
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, actor_grads)
    actor_info["actor/grad_norm"] = global_norm(actor_grads)
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, critic_grads)
    log_alpha_prime, alpha_prime_opt = state.log_alpha_prime, state.alpha_prime_opt
    if config.lagrange:
        # ascent on alpha' * (gap - target gap): descent on its negative, through log alpha' only
        def lagrange_loss(log_ap):
            weight = jnp.clip(jnp.exp(log_ap), 0.0, MAX_ALPHA_PRIME)
            return -(weight * (config.cql_alpha * jax.lax.stop_gradient(gap) - config.target_action_gap)).mean()

        grad = jax.grad(lagrange_loss)(state.log_alpha_prime)
        log_alpha_prime, alpha_prime_opt = apply_gradients(
            nets.alpha_prime_tx, state.log_alpha_prime, state.alpha_prime_opt, grad
        )
    target_critic_params = polyak_update(state.target_critic_params, critic_params, config.tau)

    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=target_critic_params,
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        log_alpha_prime=log_alpha_prime,
        alpha_prime_opt=alpha_prime_opt,
        step=state.step + 1,
        rng=rng,
    )
    return new_state, {**critic_info, **actor_info, **alpha_info, "cql/alpha_prime": alpha_prime}


def act(state: CQLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return tanh_gaussian_act(mean, log_std, key, deterministic)


def online_config(config: CQLConfig) -> CQLConfig:
    """Fine-tuning's online phase: the conservative weight ``cql_alpha_online`` when set (the official Cal-QL
    ``cql_min_q_weight_online``); everything else, the Monte-Carlo floor included, stays on."""
    if config.cql_alpha_online < 0:
        return config
    return dataclasses.replace(config, cql_alpha=config.cql_alpha_online, cql_alpha_online=-1.0)


ALGORITHM = Algorithm(
    name="cql",
    description="Conservative Q-Learning (Kumar et al. 2020): SAC with a penalty on Q of out-of-data actions",
    config_class=CQLConfig,
    init=init,
    update=update,
    act=act,
    online_config=online_config,
)


CAL_QL = Algorithm(
    name="cal-ql",
    description="Cal-QL (Nakamoto et al. 2023): CQL with pushed-down values floored at Monte-Carlo returns",
    config_class=CalQLConfig,
    init=init,
    update=update,
    act=act,
    extra_columns=("mc_returns",),
    online_config=online_config,
)
