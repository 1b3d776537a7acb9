r"""AWAC: Advantage-Weighted Actor-Critic (Nair, Gupta, Dalal & Levine, "AWAC: Accelerating Online Reinforcement
Learning with Offline Datasets", arXiv:2006.09359, 2020). Reference re-implementation: CORL's ``awac.py``.

Twin critics evaluate the current policy (a TD backup with actions sampled from it, no entropy term); the actor is
fitted to the dataset's actions, each weighted by its exponentiated advantage under those critics:

.. math::

    L_Q(\theta_i) &= \mathbb{E}_D\big[(Q_{\theta_i}(s,a) - r - \gamma (1 - d) \min_k \bar Q_k(s', a'))^2\big],
        \quad a' \sim \pi(\cdot|s') \\
    A(s, a) &= \min_k Q_k(s, a) - \min_k Q_k(s, \tilde a), \quad \tilde a \sim \pi(\cdot|s) \\
    L_\pi(\phi) &= -\mathbb{E}_{(s,a)\sim D}\big[\min(e^{A(s,a)/\lambda}, 100)\,\log\pi_\phi(a|s)\big]

Update order per step (CORL): the critics, then the actor with the new critics, then the Polyak update of the
target critics.

Defaults (CORL's D4RL settings): lambda 1.0, weights clipped at 100, Adam 3e-4 for actor and critics, batch 256,
gamma 0.99, tau 0.005, 3x256 ReLU MLPs, Gaussian actor with a state-independent log std clipped to [-20, 2],
observations standardised, rewards unscaled.

Deviations from CORL:
- The actor's mean passes through tanh (offrl's :class:`GaussianPolicy`, as IQL's), so the deterministic action is
  inside [-1, 1] without clipping; CORL uses an unbounded mean and clips sampled actions.
- ``d`` is the terminal flag only; time-limit truncations bootstrap.
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
from offrl.nn.networks import Ensemble, QNetwork
from offrl.nn.policies import GaussianPolicy, gaussian_log_prob
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class AWACConfig:
    awac_lambda: float = config_field(1.0, "temperature lambda of the advantage weights exp(A / lambda)")
    max_weight: float = config_field(100.0, "clip of the advantage weights")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256, 256), "hidden layer widths of actor and critics")
    log_std_min: float = config_field(-20.0, "lower clip of the actor's log std")
    normalize_observations: bool = config_field(True, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.awac_lambda > 0, f"awac_lambda must be > 0, got {self.awac_lambda}")
        require(self.max_weight > 0, f"max_weight must be > 0, got {self.max_weight}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class AWACState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    rng: jax.Array
    config: AWACConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation


@cache
def networks(config: AWACConfig, spec: Spec) -> Networks:
    return Networks(
        actor=GaussianPolicy(config.hidden_dims, spec.action_dim, log_std_min=config.log_std_min),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
    )


def init(key: jax.Array, spec: Spec, config: AWACConfig) -> AWACState:
    require(not spec.discrete, "AWAC here is for continuous actions")
    nets = networks(config, spec)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    return AWACState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        rng=k_state,
        config=config,
        spec=spec,
    )


def _sample(nets: Networks, actor_params: dict, observations: jax.Array, key: jax.Array) -> jax.Array:
    """An action from the policy, clipped to the action box (as CORL clips its samples)."""
    mean, log_std = nets.actor.apply(actor_params, observations)
    return jnp.clip(mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), -1.0, 1.0)


def actor_loss(actor_params: dict, nets: Networks, weights: jax.Array, batch: Batch):
    mean, log_std = nets.actor.apply(actor_params, batch["observations"])
    log_prob = gaussian_log_prob(batch["actions"], mean, log_std)
    loss = -(weights * log_prob).mean()
    return loss, {"actor/loss": loss, "actor/log_prob": log_prob.mean(), "actor/std": jnp.exp(log_std).mean()}


def update(state: AWACState, batch: Batch) -> tuple[AWACState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, next_key, policy_key = jax.random.split(state.rng, 3)

    # 1. Critics: evaluate the current policy.
    next_actions = _sample(nets, state.actor_params, batch["next_observations"], next_key)
    next_q = nets.critic.apply(state.target_critic_params, batch["next_observations"], next_actions).min(axis=0)
    target = td_target(batch["rewards"], batch["terminals"], next_q, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_ensemble_loss, has_aux=True)(
        state.critic_params, nets.critic, batch, target
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)

    # 2. Actor: advantage-weighted likelihood of the dataset's actions under the new critics.
    policy_actions = _sample(nets, state.actor_params, batch["observations"], policy_key)
    value = nets.critic.apply(critic_params, batch["observations"], policy_actions).min(axis=0)
    q = nets.critic.apply(critic_params, batch["observations"], batch["actions"]).min(axis=0)
    advantage = q - value
    weights = jax.lax.stop_gradient(jnp.minimum(jnp.exp(advantage / config.awac_lambda), config.max_weight))
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor_params, nets, weights, batch)
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info.update(
        {"actor/grad_norm": global_norm(grads), "actor/advantage": advantage.mean(), "actor/weight": weights.mean()}
    )

    # 3. Target critics.
    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=polyak_update(state.target_critic_params, critic_params, config.tau),
        rng=rng,
    )
    return new_state, {**critic_info, **actor_info}


def act(state: AWACState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    nets = networks(state.config, state.spec)
    if deterministic:
        return nets.actor.apply(state.actor_params, observations)[0]
    return _sample(nets, state.actor_params, observations, key)


ALGORITHM = Algorithm(
    name="awac",
    description="AWAC (Nair et al. 2020): policy evaluation critics, advantage-weighted likelihood actor",
    config_class=AWACConfig,
    init=init,
    update=update,
    act=act,
)
