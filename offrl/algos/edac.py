r"""SAC-N and EDAC (An, Moon, Kim & Song, "Uncertainty-Based Offline Reinforcement Learning with Diversified
Q-Ensemble", NeurIPS 2021, arXiv:2110.01548). Official code: github.com/snu-mllab/EDAC; reference
re-implementation: CORL's ``sac_n.py`` and ``edac.py``.

SAC-N is SAC with N critics whose minimum is used everywhere; with N large enough the minimum is a pessimistic
estimate of Q on actions the data does not cover, with no other constraint. EDAC gets the same pessimism with far
fewer critics by making their gradients with respect to the action point in different directions:

.. math::

    y &= r + \gamma (1 - d)\big(\min_{j=1..N} \bar Q_j(s', a') - \alpha \log\pi(a'|s')\big),
        \quad a' \sim \pi(\cdot|s') \\
    L_Q &= \sum_{j} \mathbb{E}_D\big[(Q_j(s, a) - y)^2\big]
        + \frac{\eta}{N - 1}\, \mathbb{E}_{(s,a)\sim D}\Big[\sum_{i \ne j} \langle \hat g_i, \hat g_j \rangle\Big],
        \quad \hat g_j = \frac{\nabla_a Q_j(s, a)}{\lVert \nabla_a Q_j(s, a) \rVert} \\
    L_\pi &= \mathbb{E}_{s,\ \tilde a \sim \pi}\big[\alpha \log \pi(\tilde a|s) - \min_j Q_j(s, \tilde a)\big],
        \quad L(\alpha) = \mathbb{E}\big[-\alpha (\log\pi(\tilde a|s) - |A|)\big]

``eta = 0`` is SAC-N. The N critics are one module vmapped over stacked parameters (``offrl.nn.Ensemble``); the
action gradients of all members come from one vmapped ``grad``, and the diversity term is differentiated through
them (second order), as in the paper.

Update order per step (CORL, as the official code): the temperature (with the current actor's log-probabilities),
then the actor against the current critics, then the critics with the new actor and temperature in the target,
then the Polyak update of the target critics.

Defaults (the paper's MuJoCo settings): N = 10, eta = 1.0 for EDAC (SAC-N: N = 10 here; the paper tunes N per
dataset, up to 500 on hopper, see ``benchmarks/configs``), Adam 3e-4 for actor, critics and temperature, batch 256,
gamma 0.99, tau 0.005, 3x256 ReLU MLPs, target entropy -|A|, no observation normalisation, rewards unscaled.

Deviations from the paper / official code:
- ``d`` is the terminal flag only; time-limit truncations bootstrap.
- Network initialisation is offrl's (orthogonal), not the official code's (critic biases 0.1, last layers
  U(-3e-3, 3e-3)).
"""

from __future__ import annotations

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
from offrl.nn.policies import TanhGaussianPolicy, tanh_gaussian_act, tanh_gaussian_sample
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class EDACConfig:
    num_critics: int = config_field(10, "critics in the ensemble (N)")
    eta: float = config_field(1.0, "weight of the gradient-diversity term (0 = SAC-N)")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    alpha_lr: float = config_field(3e-4, "entropy temperature learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256, 256), "hidden layer widths of actor and critics")
    init_alpha: float = config_field(1.0, "initial entropy temperature")
    target_entropy: float = config_field(0.0, "entropy target; 0 = -|A|")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.num_critics >= 2, f"num_critics must be >= 2, got {self.num_critics}")
        require(self.eta >= 0, f"eta must be >= 0, got {self.eta}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr, self.alpha_lr) > 0, "learning rates must be > 0")
        require(self.init_alpha > 0, f"init_alpha must be > 0, got {self.init_alpha}")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


@dataclass(frozen=True)
class SACNConfig(EDACConfig):
    """SAC-N: EDAC without the diversity term."""

    eta: float = config_field(0.0, "weight of the gradient-diversity term (0 = SAC-N)")


class EDACState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt: optax.OptState
    rng: jax.Array
    config: EDACConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    member: nn.Module  # one critic, for per-member action gradients
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    alpha_tx: optax.GradientTransformation


@cache
def networks(config: EDACConfig, spec: Spec) -> Networks:
    return Networks(
        actor=TanhGaussianPolicy(config.hidden_dims, spec.action_dim),
        critic=Ensemble(QNetwork, config.num_critics)(config.hidden_dims),
        member=QNetwork(config.hidden_dims),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
        alpha_tx=optax.adam(config.alpha_lr),
    )


def init(key: jax.Array, spec: Spec, config: EDACConfig) -> EDACState:
    require(not spec.discrete, "SAC-N / EDAC are for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    log_alpha = jnp.asarray(math.log(config.init_alpha), jnp.float32)
    return EDACState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        log_alpha=log_alpha,
        alpha_opt=nets.alpha_tx.init(log_alpha),
        rng=k_state,
        config=config,
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------------------------
# Losses


def diversity_loss(critic_params: dict, nets: Networks, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """Mean over the batch of the summed pairwise cosine similarity of the members' action gradients, / (N-1)."""

    def action_gradient(member_params: dict) -> jax.Array:  # [B, A]
        return jax.grad(lambda a: nets.member.apply(member_params, observations, a).sum())(actions)

    grads = jax.vmap(action_gradient)(critic_params)  # [N, B, A]
    grads = grads / (jnp.linalg.norm(grads, axis=-1, keepdims=True) + 1e-10)
    similarity = jnp.einsum("nba,mba->bnm", grads, grads)
    n = grads.shape[0]
    off_diagonal = similarity.sum(axis=(1, 2)) - jnp.trace(similarity, axis1=1, axis2=2)
    return off_diagonal.mean() / (n - 1)


def critic_loss(critic_params: dict, nets: Networks, batch: Batch, target: jax.Array, eta: float):
    loss, info = critic_ensemble_loss(critic_params, nets.critic, batch, target)
    info["critic/td_loss"] = loss
    if eta > 0:
        diversity = diversity_loss(critic_params, nets, batch["observations"], batch["actions"])
        loss = loss + eta * diversity
        info["critic/diversity"] = diversity
    info["critic/loss"] = loss
    return loss, info


def actor_loss(actor_params: dict, nets: Networks, critic_params: dict, batch: Batch, alpha: jax.Array, key):
    mean, log_std = nets.actor.apply(actor_params, batch["observations"])
    actions, log_prob = tanh_gaussian_sample(key, mean, log_std)
    q = nets.critic.apply(critic_params, batch["observations"], actions)
    loss = (alpha * log_prob - q.min(axis=0)).mean()
    info = {"actor/loss": loss, "actor/entropy": -log_prob.mean(), "actor/q_std": q.std(axis=0).mean()}
    return loss, info


def _log_prob_of_samples(nets: Networks, actor_params: dict, observations: jax.Array, key: jax.Array) -> jax.Array:
    mean, log_std = nets.actor.apply(actor_params, observations)
    return tanh_gaussian_sample(key, mean, log_std)[1]


# ---------------------------------------------------------------------------------------------------------------


def update(state: EDACState, batch: Batch) -> tuple[EDACState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, alpha_key, actor_key, next_key = jax.random.split(state.rng, 4)
    entropy_target = config.target_entropy if config.target_entropy != 0.0 else -float(state.spec.action_dim)

    # 1. Temperature, with the current actor's log-probabilities.
    log_prob = jax.lax.stop_gradient(_log_prob_of_samples(nets, state.actor_params, batch["observations"], alpha_key))
    (_, alpha_info), grad = jax.value_and_grad(temperature_loss, has_aux=True)(
        state.log_alpha, log_prob, entropy_target
    )
    log_alpha, alpha_opt = apply_gradients(nets.alpha_tx, state.log_alpha, state.alpha_opt, grad)
    alpha = jnp.exp(log_alpha)

    # 2. Actor against the current critics.
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, state.critic_params, batch, alpha, actor_key
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 3. Critics: soft target from the new actor and temperature, minimum over the N target critics.
    mean, log_std = nets.actor.apply(actor_params, batch["next_observations"])
    next_actions, next_log_prob = tanh_gaussian_sample(next_key, mean, log_std)
    next_q = nets.critic.apply(state.target_critic_params, batch["next_observations"], next_actions).min(axis=0)
    target = td_target(batch["rewards"], batch["terminals"], next_q - alpha * next_log_prob, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, batch, target, config.eta
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)

    # 4. Target critics.
    target_critic_params = polyak_update(state.target_critic_params, critic_params, config.tau)
    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=target_critic_params,
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        rng=rng,
    )
    return new_state, {**critic_info, **actor_info, **alpha_info}


def act(state: EDACState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return tanh_gaussian_act(mean, log_std, key, deterministic)


ALGORITHM = Algorithm(
    name="edac",
    description="EDAC (An et al. 2021): SAC with an N-critic ensemble whose action gradients are diversified",
    config_class=EDACConfig,
    init=init,
    update=update,
    act=act,
)

SAC_N = Algorithm(
    name="sac-n",
    description="SAC-N (An et al. 2021): SAC with the minimum of N critics as its only pessimism",
    config_class=SACNConfig,
    init=init,
    update=update,
    act=act,
)
