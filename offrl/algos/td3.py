r"""TD3: Twin Delayed DDPG (Fujimoto, van Hoof & Meger, "Addressing Function Approximation Error in Actor-Critic
Methods", ICML 2018, arXiv:1802.09477). Official code: github.com/sfujim/TD3.

.. math::

    y &= r + \gamma (1 - d) \min_{i=1,2} \bar Q_i(s', \mathrm{clip}(\bar\pi(s') + \epsilon, -1, 1)),
        \quad \epsilon = \mathrm{clip}(\mathcal N(0, \sigma^2), -c, c) \\
    L_Q(\theta_i) &= \mathbb{E}\big[(Q_{\theta_i}(s, a) - y)^2\big] \\
    L_\pi(\phi) &= -\mathbb{E}\big[Q_{\theta_1}(s, \pi_\phi(s))\big]

It shares everything but the actor loss with TD3+BC (``offrl/algos/td3bc.py``): the state, the networks, the update
order (both critics every step; every ``policy_delay`` steps the actor, then the Polyak update of all targets).
Exploration adds N(0, 0.1^2) to the actor's action (``act(..., deterministic=False)``). Defaults are the paper's:
sigma 0.2, c 0.5, delay 2, discount 0.99, tau 0.005, Adam 3e-4, 2x256 ReLU MLPs (the paper used 400x300; its later
official code uses 256x256), batch 256.

Deviations: ``d`` is the terminal flag only (time-limit truncations bootstrap, as the paper does); actions live in
[-1, 1] and the trainer maps them onto the environment's bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from offrl.algos.base import Algorithm, Batch, Spec, config_field, require
from offrl.algos.td3bc import Networks, TD3BCState, init_state, make_update, networks
from offrl.nn.networks import NETWORK_INITS, ensemble_member


@dataclass(frozen=True)
class TD3Config:
    policy_noise: float = config_field(0.2, "std of the target policy smoothing noise")
    noise_clip: float = config_field(0.5, "clip of the target policy smoothing noise")
    policy_delay: int = config_field(2, "critic updates per actor (and target) update")
    exploration_noise: float = config_field(0.1, "std of the Gaussian noise added to actions when exploring")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target networks")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of actor and critics")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std (offline use)")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")
    network_init: str = config_field(
        "orthogonal", "orthogonal | pytorch (PyTorch's default uniform init, as the paper's code and d3rlpy)"
    )

    def __post_init__(self) -> None:
        require(
            self.network_init in NETWORK_INITS,
            f"network_init must be one of {NETWORK_INITS}, got {self.network_init!r}",
        )
        require(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")
        require(self.exploration_noise >= 0, f"exploration_noise must be >= 0, got {self.exploration_noise}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


_ACTOR_METRICS = ("actor/loss", "actor/q", "actor/grad_norm")


def actor_loss(actor_params: dict, nets: Networks, critic_params: dict, batch: Batch, config: TD3Config):
    pi = nets.actor.apply(actor_params, batch["observations"])
    q = nets.q1.apply(ensemble_member(critic_params, 0), batch["observations"], pi)  # Q1 only, as in the paper
    loss = -q.mean()
    return loss, {"actor/loss": loss, "actor/q": q.mean()}


def init(key: jax.Array, spec: Spec, config: TD3Config) -> TD3BCState:
    return init_state(key, spec, config, _ACTOR_METRICS)


update = make_update(actor_loss)


def act(state: TD3BCState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    actions = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    if deterministic:
        return actions
    noise = state.config.exploration_noise * jax.random.normal(key, actions.shape)
    return jnp.clip(actions + noise, -1.0, 1.0)


ALGORITHM = Algorithm(
    name="td3",
    description="TD3 (Fujimoto et al. 2018): twin critics, target policy smoothing, delayed deterministic actor",
    config_class=TD3Config,
    init=init,
    update=update,
    act=act,
)
