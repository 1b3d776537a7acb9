r"""TD3+BC (Fujimoto & Gu, "A Minimalist Approach to Offline Reinforcement Learning", NeurIPS 2021,
arXiv:2106.06860). Official code: github.com/sfujim/TD3_BC.

TD3 with a behaviour-cloning term in the actor loss, the Q term scaled so that its magnitude does not depend on the
reward scale:

.. math::

    y &= r + \gamma (1 - d) \min_{i=1,2} \bar Q_i(s', \mathrm{clip}(\bar\pi(s') + \epsilon, -1, 1)),
        \quad \epsilon = \mathrm{clip}(\mathcal N(0, \sigma^2), -c, c) \\
    L_Q(\theta_i) &= \mathbb{E}_D\big[(Q_{\theta_i}(s, a) - y)^2\big] \\
    L_\pi(\phi) &= -\lambda\, \mathbb{E}_D[Q_{\theta_1}(s, \pi_\phi(s))] + \mathbb{E}_D[(\pi_\phi(s) - a)^2],
        \quad \lambda = \frac{\alpha}{\mathbb{E}_D |Q_{\theta_1}(s, \pi_\phi(s))|}\ \text{(no gradient)}

Update order per step: both critics; then, every ``policy_delay`` steps, the actor followed by the Polyak update
of the target actor and target critics. Defaults are the paper's: alpha 2.5, sigma 0.2, c 0.5, delay 2,
discount 0.99, tau 0.005, Adam 3e-4, 2x256 MLPs, states standardised with the dataset mean and std.

Deviations from the paper:
- ``d`` is the terminal flag only; time-limit truncations bootstrap.
- Actions are mapped to [-1, 1] by the trainer (the paper's tasks already are), so the max action is 1.
- Networks are initialised orthogonal by default (hidden layers gain sqrt(2), output layers 1.0, offrl's shared
  MLP); the paper's code and d3rlpy use PyTorch's default uniform init, which ``network_init="pytorch"`` selects.
  Given the same initial weights, offrl's update equals d3rlpy's to float32 rounding
  (``tests/algos/test_against_d3rlpy.py``).
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
from offrl.nn.losses import critic_ensemble_loss, td_target
from offrl.nn.networks import NETWORK_INITS, Ensemble, QNetwork, ensemble_member
from offrl.nn.policies import DeterministicPolicy
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class TD3BCConfig:
    alpha: float = config_field(2.5, "weight of the Q term relative to behaviour cloning")
    policy_noise: float = config_field(0.2, "std of the target policy smoothing noise")
    noise_clip: float = config_field(0.5, "clip of the target policy smoothing noise")
    policy_delay: int = config_field(2, "critic updates per actor (and target) update")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target networks")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of actor and critics")
    normalize_observations: bool = config_field(True, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")
    network_init: str = config_field(
        "orthogonal", "orthogonal | pytorch (PyTorch's default uniform init, as the paper's code and d3rlpy)"
    )

    def __post_init__(self) -> None:
        require(
            self.network_init in NETWORK_INITS,
            f"network_init must be one of {NETWORK_INITS}, got {self.network_init!r}",
        )
        require(self.alpha >= 0.0, f"alpha must be >= 0, got {self.alpha}")
        require(self.policy_noise >= 0.0 and self.noise_clip >= 0.0, "policy_noise and noise_clip must be >= 0")
        require(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class TD3BCState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    target_actor_params: dict
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    rng: jax.Array
    step: jax.Array
    #: The actor's metrics from its latest update, reported on the steps in between.
    actor_metrics: dict
    config: TD3BCConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    q1: nn.Module  # one member of the critic ensemble, applied to its slice of the parameters
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation


@cache
def networks(config: TD3BCConfig, spec: Spec) -> Networks:
    return Networks(
        actor=DeterministicPolicy(config.hidden_dims, spec.action_dim, weight_init=config.network_init),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims, weight_init=config.network_init),
        q1=QNetwork(config.hidden_dims, weight_init=config.network_init),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
    )


_ACTOR_METRICS = ("actor/loss", "actor/bc_loss", "actor/lambda", "actor/grad_norm")


def init_state(key: jax.Array, spec: Spec, config, actor_metrics: tuple[str, ...]) -> TD3BCState:
    """The state of TD3 and TD3+BC alike; ``actor_metrics`` names what the actor step reports."""
    require(not spec.discrete, "TD3 and TD3+BC are for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    return TD3BCState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        target_actor_params=copy_tree(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        rng=k_state,
        step=jnp.zeros((), jnp.int32),
        actor_metrics={name: jnp.zeros((), jnp.float32) for name in actor_metrics},
        config=config,
        spec=spec,
    )


def init(key: jax.Array, spec: Spec, config: TD3BCConfig) -> TD3BCState:
    return init_state(key, spec, config, _ACTOR_METRICS)


# ---------------------------------------------------------------------------------------------------------------
# Losses


def actor_loss(actor_params: dict, nets: Networks, critic_params: dict, batch: Batch, config: TD3BCConfig):
    pi = nets.actor.apply(actor_params, batch["observations"])
    q = nets.q1.apply(ensemble_member(critic_params, 0), batch["observations"], pi)  # Q1 only, as in the paper
    lmbda = jax.lax.stop_gradient(config.alpha / jnp.abs(q).mean())
    bc_loss = jnp.square(pi - batch["actions"]).mean()
    loss = -lmbda * q.mean() + bc_loss
    return loss, {"actor/loss": loss, "actor/bc_loss": bc_loss, "actor/lambda": lmbda}


# ---------------------------------------------------------------------------------------------------------------


def make_update(actor_loss_fn):
    """The TD3 update order with a given actor loss ``(actor_params, nets, critic_params, batch, config) ->
    (loss, metrics)``: TD3+BC passes its BC-regularised loss, TD3 the plain -Q1."""

    def update(state: TD3BCState, batch: Batch) -> tuple[TD3BCState, Metrics]:
        return td3_update(state, batch, actor_loss_fn)

    return update


def td3_update(
    state: TD3BCState, batch: Batch, actor_loss_fn, nets=None, target_penalty=None
) -> tuple[TD3BCState, Metrics]:
    """One TD3 step (critics; every ``policy_delay`` steps the actor and the targets) with the given actor loss.

    ``nets`` defaults to TD3+BC's networks (ReBRAC passes its own); ``target_penalty(next_actions, batch, config)
    -> (penalty [B], metrics)`` is subtracted from the target critics' value at s' (ReBRAC's critic BC term)."""
    config = state.config
    nets = networks(config, state.spec) if nets is None else nets
    rng, noise_key = jax.random.split(state.rng)

    # 1. Critics, with target policy smoothing.
    next_actions = nets.actor.apply(state.target_actor_params, batch["next_observations"])
    noise = jnp.clip(
        config.policy_noise * jax.random.normal(noise_key, next_actions.shape), -config.noise_clip, config.noise_clip
    )
    next_actions = jnp.clip(next_actions + noise, -1.0, 1.0)
    next_q = nets.critic.apply(state.target_critic_params, batch["next_observations"], next_actions).min(axis=0)
    penalty_info = {}
    if target_penalty is not None:
        penalty, penalty_info = target_penalty(next_actions, batch, config)
        next_q = next_q - penalty
    target = td_target(batch["rewards"], batch["terminals"], next_q, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_ensemble_loss, has_aux=True)(
        state.critic_params, nets.critic, batch, target
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info.update({"critic/grad_norm": global_norm(grads), **penalty_info})
    state = state.replace(critic_params=critic_params, critic_opt=critic_opt, rng=rng, step=state.step + 1)

    # 2. Every policy_delay steps: actor, then all targets.
    def actor_step(state: TD3BCState) -> TD3BCState:
        (_, info), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(
            state.actor_params, nets, state.critic_params, batch, config
        )
        info["actor/grad_norm"] = global_norm(grads)
        actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
        return state.replace(
            actor_params=actor_params,
            actor_opt=actor_opt,
            target_actor_params=polyak_update(state.target_actor_params, actor_params, config.tau),
            target_critic_params=polyak_update(state.target_critic_params, state.critic_params, config.tau),
            actor_metrics=info,
        )

    state = jax.lax.cond(state.step % config.policy_delay == 0, actor_step, lambda s: s, state)
    return state, {**critic_info, **state.actor_metrics}


update = make_update(actor_loss)


def act(state: TD3BCState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    actions = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    if deterministic:
        return actions
    return jnp.clip(actions + 0.1 * jax.random.normal(key, actions.shape), -1.0, 1.0)


ALGORITHM = Algorithm(
    name="td3bc",
    description="TD3+BC (Fujimoto & Gu 2021): TD3 with a normalised behaviour-cloning term in the actor loss",
    config_class=TD3BCConfig,
    init=init,
    update=update,
    act=act,
)
