r"""ResFiT: residual off-policy RL on a frozen behaviour-cloning policy (Ankile, Jiang, Duan, Shi, Abbeel &
Nagabandi, "Residual Off-Policy RL for Finetuning Behavior Cloning Policies", 2025, arXiv:2509.19301; project page
residual-offpolicy-rl.github.io; no official code is public), registered as ``resfit``.

Two phases, as in the paper:

1. **Behaviour cloning** of a base policy :math:`\pi_b` on demonstrations (here a deterministic MLP with the squared
   error; the paper's base is an action-chunked BC model, and any black box would do).
2. **Residual RL**: :math:`\pi_b` is frozen and a small residual actor learns a bounded per-step correction on top
   of it, :math:`a = \mathrm{clip}(\pi_b(s) + \Delta(s, \pi_b(s)), -1, 1)` with
   :math:`\Delta = \delta \tanh(f_\psi(s, \pi_b(s)))`, :math:`\delta` = ``residual_scale`` (0.2 of the half-range
   [-1, 1]; the residual's last layer starts near zero, so training starts at the base policy). The critics value
   the *executed* action and are trained off-policy, TD3-style, on demonstrations and online data together
   (``offrl finetune --offline-fraction 0.5``, the paper's "demos in the buffer"):

.. math::

    y &= r + \gamma (1 - d) \min_{i} \bar Q_i\big(s', \mathrm{clip}(\pi_b(s') + \mathrm{clip}(\bar\Delta(s')
        + \epsilon, -\delta, \delta), -1, 1)\big), \quad \epsilon = \mathrm{clip}(\mathcal N(0, \sigma^2), -c, c) \\
    L_Q &= \textstyle\sum_i \mathbb{E}\big[(Q_i(s, a) - y)^2\big], \qquad
    L_\Delta = -\mathbb{E}\big[\tfrac1N \textstyle\sum_i Q_i(s, \pi_b(s) + \Delta(s, \pi_b(s)))\big]

Exploration is noise on the residual only, clipped to :math:`\pm\delta`: the executed action never leaves the base
action's :math:`\delta`-neighbourhood, the safety argument of residual RL. The paper's ablations keep LayerNorm in
the critics and the demonstrations in the buffer; both are the defaults here. Its reward is sparse (task success);
the method is reward-agnostic, and ``pendulum-sparse`` is a sparse task to try it on.

``residual`` selects the phase: off (the offline phase of ``offrl finetune``) the update is a BC step of the base;
on (``online_config`` turns it on) the base is frozen and the update is a TD3 step of critics and residual (critics
every step; every ``policy_delay`` steps the residual, then the Polyak step of the target residual and critics).

Defaults (the paper publishes no hyperparameters for state-based tasks; these are TD3's, with the noise scaled to the
residual's range): two LayerNorm critics of 2x256, residual actor 2x256, Adam 3e-4, base BC Adam 1e-3 (offrl's BC),
gamma 0.99, tau 0.005, delay 2, exploration noise 0.1, target noise 0.1 clipped at 0.2.

Deviations: the base is per-step (no action chunks), the residual's input is the state and the base action (no
images), and the residual actor is TD3's (the paper leaves TD3 vs SAC open in what is public).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from offrl.algos.base import Algorithm, Batch, Metrics, Spec, config_field, require
from offrl.nn.losses import critic_ensemble_loss, td_target
from offrl.nn.networks import MLP, Ensemble, QNetwork
from offrl.nn.policies import DeterministicPolicy
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class ResFiTConfig:
    residual: bool = config_field(False, "learn the residual on the frozen base (on in fine-tuning's online phase)")
    residual_scale: float = config_field(0.2, "largest correction per action dimension (actions live in [-1, 1])")
    exploration_noise: float = config_field(0.1, "std of the exploration noise on the residual")
    policy_noise: float = config_field(0.1, "std of the target smoothing noise on the residual")
    noise_clip: float = config_field(0.2, "clip of the target smoothing noise")
    policy_delay: int = config_field(2, "critic updates per residual (and target) update")
    num_critics: int = config_field(2, "critic ensemble size (the target takes their minimum)")
    critic_layer_norm: bool = config_field(True, "LayerNorm in the critics")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target networks")
    base_lr: float = config_field(1e-3, "learning rate of the base policy's behaviour cloning")
    actor_lr: float = config_field(3e-4, "residual actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of residual actor and critics")
    base_hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of the base policy")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(0.0 < self.residual_scale <= 2.0, f"residual_scale must be in (0, 2], got {self.residual_scale}")
        require(self.exploration_noise >= 0, f"exploration_noise must be >= 0, got {self.exploration_noise}")
        require(self.policy_noise >= 0 and self.noise_clip >= 0, "policy_noise and noise_clip must be >= 0")
        require(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")
        require(self.num_critics >= 1, f"num_critics must be >= 1, got {self.num_critics}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.base_lr, self.actor_lr, self.critic_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class ResidualActor(nn.Module):
    """``delta * tanh(MLP([s, a_base]))``, its last layer initialised near zero (training starts at the base)."""

    hidden_dims: tuple[int, ...]
    action_dim: int
    scale: float

    @nn.compact
    def __call__(self, observations: jax.Array, base_actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([observations, base_actions], axis=-1)
        return self.scale * jnp.tanh(MLP(self.hidden_dims, self.action_dim, output_init_scale=1e-2)(x))


class ResFiTState(struct.PyTreeNode):
    base_params: dict
    base_opt: optax.OptState
    residual_params: dict
    residual_opt: optax.OptState
    target_residual_params: dict
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    rng: jax.Array
    step: jax.Array  # residual-phase updates (the residual steps every policy_delay-th)
    residual_metrics: dict  # the residual's metrics from its latest step, reported on the steps in between
    config: ResFiTConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    base: nn.Module
    residual: nn.Module
    critic: nn.Module
    base_tx: optax.GradientTransformation
    residual_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation


@cache
def networks(config: ResFiTConfig, spec: Spec) -> Networks:
    return Networks(
        base=DeterministicPolicy(config.base_hidden_dims, spec.action_dim),
        residual=ResidualActor(config.hidden_dims, spec.action_dim, config.residual_scale),
        critic=Ensemble(QNetwork, config.num_critics)(config.hidden_dims, layer_norm=config.critic_layer_norm),
        base_tx=optax.adam(config.base_lr),
        residual_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
    )


_RESIDUAL_METRICS = ("residual/loss", "residual/q", "residual/abs_mean", "residual/grad_norm")


def init(key: jax.Array, spec: Spec, config: ResFiTConfig) -> ResFiTState:
    require(not spec.discrete, "ResFiT's residual is for continuous actions")
    nets = networks(config, spec)
    k_base, k_residual, k_critic, k_state = jax.random.split(key, 4)
    obs, action = jnp.zeros((1, *spec.observation_shape)), jnp.zeros((1, spec.action_dim))
    base_params = nets.base.init(k_base, obs)
    residual_params = nets.residual.init(k_residual, obs, action)
    critic_params = nets.critic.init(k_critic, obs, action)
    return ResFiTState(
        base_params=base_params,
        base_opt=nets.base_tx.init(base_params),
        residual_params=residual_params,
        residual_opt=nets.residual_tx.init(residual_params),
        target_residual_params=copy_tree(residual_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        rng=k_state,
        step=jnp.zeros((), jnp.int32),
        residual_metrics={name: jnp.zeros((), jnp.float32) for name in _RESIDUAL_METRICS},
        config=config,
        spec=spec,
    )


def executed_action(nets: Networks, base_params, residual_params, observations, noise=None, scale=None):
    """``clip(pi_b(s) + Delta, -1, 1)`` with the residual ``Delta`` (plus ``noise``, clipped to the residual's
    range); also returns ``Delta``."""
    base = jax.lax.stop_gradient(nets.base.apply(base_params, observations))
    delta = nets.residual.apply(residual_params, observations, base)
    if noise is not None:
        delta = jnp.clip(delta + noise, -scale, scale)
    return jnp.clip(base + delta, -1.0, 1.0), delta


# ---------------------------------------------------------------------------------------------------------------
# Losses


def base_loss(base_params: dict, nets: Networks, batch: Batch):
    loss = jnp.square(nets.base.apply(base_params, batch["observations"]) - batch["actions"]).sum(-1).mean()
    return loss, {"base/loss": loss}


def residual_loss(residual_params: dict, nets: Networks, state: ResFiTState, batch: Batch):
    obs = batch["observations"]
    actions, delta = executed_action(nets, state.base_params, residual_params, obs)
    q = nets.critic.apply(state.critic_params, obs, actions).mean(axis=0)
    loss = -q.mean()
    return loss, {"residual/loss": loss, "residual/q": q.mean(), "residual/abs_mean": jnp.abs(delta).mean()}


# ---------------------------------------------------------------------------------------------------------------


def clone_base(state: ResFiTState, batch: Batch) -> tuple[ResFiTState, Metrics]:
    """Phase 1: a behaviour-cloning step of the base policy."""
    nets = networks(state.config, state.spec)
    (_, info), grads = jax.value_and_grad(base_loss, has_aux=True)(state.base_params, nets, batch)
    base_params, base_opt = apply_gradients(nets.base_tx, state.base_params, state.base_opt, grads)
    return state.replace(base_params=base_params, base_opt=base_opt), {**info, "base/grad_norm": global_norm(grads)}


def residual_step(state: ResFiTState, batch: Batch) -> tuple[ResFiTState, Metrics]:
    """Phase 2: critics every step, the residual and the targets every ``policy_delay`` steps; the base frozen."""
    config, nets = state.config, networks(state.config, state.spec)
    rng, noise_key = jax.random.split(state.rng)
    next_obs = batch["next_observations"]
    base_next = nets.base.apply(state.base_params, next_obs)
    noise = jnp.clip(
        config.policy_noise * jax.random.normal(noise_key, base_next.shape), -config.noise_clip, config.noise_clip
    )
    next_actions, _ = executed_action(
        nets, state.base_params, state.target_residual_params, next_obs, noise, config.residual_scale
    )
    next_q = nets.critic.apply(state.target_critic_params, next_obs, next_actions).min(axis=0)
    target = td_target(batch["rewards"], batch["terminals"], next_q, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_ensemble_loss, has_aux=True)(
        state.critic_params, nets.critic, batch, target
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)
    state = state.replace(critic_params=critic_params, critic_opt=critic_opt, rng=rng, step=state.step + 1)

    def actor_step(state: ResFiTState) -> ResFiTState:
        (_, info), grads = jax.value_and_grad(residual_loss, has_aux=True)(state.residual_params, nets, state, batch)
        info["residual/grad_norm"] = global_norm(grads)
        params, opt = apply_gradients(nets.residual_tx, state.residual_params, state.residual_opt, grads)
        return state.replace(
            residual_params=params,
            residual_opt=opt,
            target_residual_params=polyak_update(state.target_residual_params, params, config.tau),
            target_critic_params=polyak_update(state.target_critic_params, state.critic_params, config.tau),
            residual_metrics=info,
        )

    state = jax.lax.cond(state.step % config.policy_delay == 0, actor_step, lambda s: s, state)
    return state, {**critic_info, **state.residual_metrics}


def update(state: ResFiTState, batch: Batch) -> tuple[ResFiTState, Metrics]:
    return residual_step(state, batch) if state.config.residual else clone_base(state, batch)


def act(state: ResFiTState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """The base action plus the residual; exploring adds noise to the residual, kept within its range."""
    config, nets = state.config, networks(state.config, state.spec)
    noise = None
    if not deterministic:
        noise = config.exploration_noise * jax.random.normal(key, (observations.shape[0], state.spec.action_dim))
    actions, _ = executed_action(
        nets, state.base_params, state.residual_params, observations, noise, config.residual_scale
    )
    return actions


def online_config(config: ResFiTConfig) -> ResFiTConfig:
    """Fine-tuning's online phase: freeze the cloned base and learn the residual."""
    return dataclasses.replace(config, residual=True)


ALGORITHM = Algorithm(
    name="resfit",
    description="ResFiT (Ankile et al. 2025): frozen behaviour-cloning base plus a bounded residual learned by TD3",
    config_class=ResFiTConfig,
    init=init,
    update=update,
    act=act,
    online_config=online_config,
)
