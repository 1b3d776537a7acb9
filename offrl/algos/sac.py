r"""SAC: Soft Actor-Critic (Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905,
2018). Reference implementations: github.com/rail-berkeley/softlearning, CleanRL's ``sac_continuous_action.py``.

A tanh-Gaussian actor maximises the soft value, twin critics learn the soft Q-function, and the entropy temperature
is tuned so that the policy's entropy stays near a target:

.. math::

    y &= r + \gamma (1 - d) \big(\min_{i=1,2} \bar Q_i(s', a') - \alpha \log\pi(a'|s')\big),
        \quad a' \sim \pi(\cdot|s') \\
    L_Q(\theta_i) &= \mathbb{E}\big[(Q_{\theta_i}(s, a) - y)^2\big] \\
    L_\pi(\phi) &= \mathbb{E}_{s,\ \tilde a \sim \pi_\phi}\big[\alpha \log \pi_\phi(\tilde a|s)
        - \min_i Q_{\theta_i}(s, \tilde a)\big]
        \quad (\tilde a = \tanh(\mu_\phi(s) + \sigma_\phi(s)\,\epsilon)) \\
    L(\alpha) &= \mathbb{E}_{s,\ \tilde a \sim \pi_\phi}\big[-\alpha\,(\log \pi_\phi(\tilde a|s)
        + \bar{\mathcal H})\big], \quad \bar{\mathcal H} = -|A|

Update order per step: critics (targets from the current actor and temperature), then the actor against the new
critics, then the temperature (optimised as log alpha) with the new actor's log-probabilities, then the Polyak update
of the target critics (tau 0.005, every step). Defaults are the paper's: Adam 3e-4 for all three, batch 256,
gamma 0.99, 2x256 ReLU MLPs, log std clipped to [-20, 2], initial alpha 1.

Deviations from the paper:
- ``d`` is the terminal flag only; time-limit truncations bootstrap (as the paper intends and most code does).
- log alpha is the trained parameter (as in softlearning and CleanRL); the paper writes the loss in alpha.
- Actions live in [-1, 1]; the trainer maps them onto the environment's bounds.
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
from offrl.nn.losses import critic_ensemble_loss, td_target, temperature_loss
from offrl.nn.networks import Ensemble, QNetwork
from offrl.nn.policies import TanhGaussianPolicy, tanh_gaussian_act, tanh_gaussian_sample
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class SACConfig:
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    alpha_lr: float = config_field(3e-4, "temperature learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of actor and critics")
    init_alpha: float = config_field(1.0, "initial entropy temperature")
    target_entropy: float = config_field(0.0, "entropy target; 0 = -|A| (the paper's heuristic)")
    autotune_alpha: bool = config_field(True, "tune the temperature; off = keep init_alpha fixed")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std (offline use)")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr, self.alpha_lr) > 0, "learning rates must be > 0")
        require(self.init_alpha > 0, f"init_alpha must be > 0, got {self.init_alpha}")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class SACState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    log_alpha: jax.Array
    alpha_opt: optax.OptState
    rng: jax.Array
    config: SACConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    alpha_tx: optax.GradientTransformation


@cache
def networks(config: SACConfig, spec: Spec) -> Networks:
    return Networks(
        actor=TanhGaussianPolicy(config.hidden_dims, spec.action_dim),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
        alpha_tx=optax.adam(config.alpha_lr),
    )


def target_entropy(config: SACConfig, spec: Spec) -> float:
    return config.target_entropy if config.target_entropy != 0.0 else -float(spec.action_dim)


def init(key: jax.Array, spec: Spec, config: SACConfig) -> SACState:
    require(not spec.discrete, "SAC here is for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    log_alpha = jnp.asarray(jnp.log(config.init_alpha), jnp.float32)
    return SACState(
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


def actor_loss(actor_params: dict, nets: Networks, critic_params: dict, batch: Batch, alpha: jax.Array, key):
    mean, log_std = nets.actor.apply(actor_params, batch["observations"])
    actions, log_prob = tanh_gaussian_sample(key, mean, log_std)
    q = nets.critic.apply(critic_params, batch["observations"], actions).min(axis=0)
    loss = (alpha * log_prob - q).mean()
    return loss, ({"actor/loss": loss, "actor/entropy": -log_prob.mean(), "actor/q": q.mean()}, log_prob)


# ---------------------------------------------------------------------------------------------------------------


def update(state: SACState, batch: Batch) -> tuple[SACState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, next_key, actor_key = jax.random.split(state.rng, 3)
    alpha = jnp.exp(state.log_alpha)

    # 1. Critics: soft TD target from the current actor and temperature.
    mean, log_std = nets.actor.apply(state.actor_params, batch["next_observations"])
    next_actions, next_log_prob = tanh_gaussian_sample(next_key, mean, log_std)
    next_q = nets.critic.apply(state.target_critic_params, batch["next_observations"], next_actions).min(axis=0)
    target = td_target(batch["rewards"], batch["terminals"], next_q - alpha * next_log_prob, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_ensemble_loss, has_aux=True)(
        state.critic_params, nets.critic, batch, target
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)

    # 2. Actor against the new critics.
    (_, (actor_info, log_prob)), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, critic_params, batch, alpha, actor_key
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 3. Temperature, towards the entropy target.
    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    (_, alpha_info), grad = jax.value_and_grad(temperature_loss, has_aux=True)(
        state.log_alpha, log_prob, target_entropy(config, state.spec)
    )
    if config.autotune_alpha:
        log_alpha, alpha_opt = apply_gradients(nets.alpha_tx, state.log_alpha, state.alpha_opt, grad)

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


def act(state: SACState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return tanh_gaussian_act(mean, log_std, key, deterministic)


ALGORITHM = Algorithm(
    name="sac",
    description="Soft Actor-Critic (Haarnoja et al. 2018): twin soft critics, tanh-Gaussian actor, tuned entropy",
    config_class=SACConfig,
    init=init,
    update=update,
    act=act,
)
