r"""ReBRAC: Revisited Behavior-Regularized Actor-Critic (Tarasov, Kurenkov, Nikulin & Kolesnikov, "Revisiting the
Minimalist Approach to Offline Reinforcement Learning", NeurIPS 2023, arXiv:2305.09836). Official code:
github.com/tinkoff-ai/ReBRAC (also CORL's ``rebrac.py``).

TD3+BC with a behaviour-cloning penalty on both sides and the design choices the paper found to matter: LayerNorm
in the critics, deeper networks, a large batch, and decoupled penalty weights:

.. math::

    L_\pi(\phi) &= \mathbb{E}_{(s,a)\sim D}\big[\beta_1 \lVert \pi_\phi(s) - a \rVert^2
        - \lambda \min_i Q_i(s, \pi_\phi(s))\big], \quad \lambda = 1 / \mathbb{E}\lvert \min_i Q_i(s, \pi(s))\rvert
        \ (\text{not differentiated}) \\
    y &= r + \gamma (1 - d)\big(\min_i \bar Q_i(s', a') - \beta_2 \lVert a' - a'_D \rVert^2\big),
        \quad a' = \mathrm{clip}(\bar\pi(s') + \mathrm{clip}(\epsilon, -c, c), -1, 1)

where :math:`a'_D` is the dataset's next action (``offrl.data.columns``: at an episode's last row, its own
action). Update order per step (as TD3+BC): the critics; every ``policy_delay`` steps the actor, then the Polyak
update of the target actor and target critics.

Defaults are the paper's (its Table 7 general settings): actor and critic Adam 1e-3, 3x256 MLPs, LayerNorm in the
critics and not in the actor, gamma 0.99, tau 0.005, policy noise 0.2 clipped at 0.5, actor every 2 updates,
Q normalised in the actor loss. The paper tunes beta_1 and beta_2 per dataset (from a grid of 0.0005 to 1.0);
0.01 for both is offrl's middle-of-the-grid default, to be set per dataset. The paper trains with batch 1024: pass
``--batch-size 1024`` (the batch size is the trainer's setting). No observation normalisation, rewards unscaled.

Deviations from the official code:
- Network initialisation is offrl's (orthogonal), not the official EDAC-style one (PyTorch-uniform kernels, biases
  0.1, last layers U(+-1e-3) / U(+-3e-3)).
- ``d`` is the terminal flag only; time-limit truncations bootstrap, and every row is kept (the official code drops
  each episode's last transition to get its next action; offrl uses the row's own action there).
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
from offrl.algos.td3bc import TD3BCState, td3_update
from offrl.nn.networks import Ensemble, QNetwork
from offrl.nn.policies import DeterministicPolicy
from offrl.nn.updates import copy_tree


@dataclass(frozen=True)
class ReBRACConfig:
    actor_bc_coef: float = config_field(0.01, "beta_1: weight of ||pi(s) - a||^2 in the actor loss")
    critic_bc_coef: float = config_field(0.01, "beta_2: weight of ||a' - a'_data||^2 in the critic target")
    normalize_q: bool = config_field(True, "divide Q by its mean absolute value in the actor loss")
    policy_noise: float = config_field(0.2, "std of the target policy smoothing noise")
    noise_clip: float = config_field(0.5, "clip of the target policy smoothing noise")
    policy_delay: int = config_field(2, "critic updates per actor update")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target networks")
    actor_lr: float = config_field(1e-3, "actor learning rate")
    critic_lr: float = config_field(1e-3, "critic learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256, 256), "hidden layer widths of actor and critics")
    actor_layer_norm: bool = config_field(False, "LayerNorm after each hidden layer of the actor")
    critic_layer_norm: bool = config_field(True, "LayerNorm after each hidden layer of the critics")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(min(self.actor_bc_coef, self.critic_bc_coef) >= 0, "the BC coefficients must be >= 0")
        require(self.policy_noise >= 0 and self.noise_clip >= 0, "policy_noise and noise_clip must be >= 0")
        require(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation


@cache
def networks(config: ReBRACConfig, spec: Spec) -> Networks:
    return Networks(
        actor=DeterministicPolicy(config.hidden_dims, spec.action_dim, layer_norm=config.actor_layer_norm),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims, layer_norm=config.critic_layer_norm),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
    )


_ACTOR_METRICS = ("actor/loss", "actor/bc_loss", "actor/lambda", "actor/grad_norm")


def init(key: jax.Array, spec: Spec, config: ReBRACConfig) -> TD3BCState:
    require(not spec.discrete, "ReBRAC is for continuous actions")
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
        actor_metrics={name: jnp.zeros((), jnp.float32) for name in _ACTOR_METRICS},
        config=config,
        spec=spec,
    )


def actor_loss(actor_params: dict, nets: Networks, critic_params: dict, batch: Batch, config: ReBRACConfig):
    pi = nets.actor.apply(actor_params, batch["observations"])
    q = nets.critic.apply(critic_params, batch["observations"], pi).min(axis=0)
    lmbda = jax.lax.stop_gradient(1.0 / jnp.abs(q).mean()) if config.normalize_q else jnp.float32(1.0)
    bc_loss = jnp.square(pi - batch["actions"]).sum(axis=-1).mean()
    loss = config.actor_bc_coef * bc_loss - lmbda * q.mean()
    return loss, {"actor/loss": loss, "actor/bc_loss": bc_loss, "actor/lambda": lmbda}


def next_action_penalty(next_actions: jax.Array, batch: Batch, config: ReBRACConfig):
    """beta_2 * ||a' - a'_D||^2: the critic's BC term, subtracted from the target critics' value at s'."""
    penalty = jnp.square(next_actions - batch["next_actions"]).sum(axis=-1)
    return config.critic_bc_coef * penalty, {"critic/next_action_penalty": penalty.mean()}


def update(state: TD3BCState, batch: Batch) -> tuple[TD3BCState, Metrics]:
    """TD3+BC's update order (``offrl.algos.td3bc.td3_update``) with ReBRAC's networks, actor loss and critic
    penalty."""
    return td3_update(state, batch, actor_loss, networks(state.config, state.spec), next_action_penalty)


def act(state: TD3BCState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    actions = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    if deterministic:
        return actions
    return jnp.clip(actions + 0.1 * jax.random.normal(key, actions.shape), -1.0, 1.0)


ALGORITHM = Algorithm(
    name="rebrac",
    description="ReBRAC (Tarasov et al. 2023): TD3+BC with actor and critic BC penalties and LayerNorm critics",
    config_class=ReBRACConfig,
    init=init,
    update=update,
    act=act,
    extra_columns=("next_actions",),
)
