r"""IQL: Implicit Q-Learning (Kostrikov, Nair & Levine, "Offline Reinforcement Learning with Implicit Q-Learning",
ICLR 2022, arXiv:2110.06169). Official code: github.com/ikostrikov/implicit_q_learning.

IQL never queries Q at actions outside the dataset. It fits V to an upper expectile of the target critics' values of
dataset actions, backs Q up from V, and extracts a policy by advantage-weighted regression:

.. math::

    L_V(\psi) &= \mathbb{E}_{(s,a)\sim D}\big[L_2^\tau(\min_i \bar Q_i(s,a) - V_\psi(s))\big],
        \quad L_2^\tau(u) = |\tau - \mathbb{1}(u<0)|\,u^2 \\
    L_Q(\theta_i) &= \mathbb{E}_{(s,a,r,s')\sim D}\big[(r + \gamma (1 - d) V_\psi(s') - Q_{\theta_i}(s,a))^2\big] \\
    L_\pi(\phi) &= -\mathbb{E}_{(s,a)\sim D}\big[\min(e^{\beta (\min_i \bar Q_i(s,a) - V_\psi(s))}, 100)
        \log \pi_\phi(a|s)\big]

Update order per step (as in the official ``learner.py``): V against the target critics, then the actor with the
new V, then both critics bootstrapping from the new V, then the Polyak update of the target critics
(:math:`\bar\theta \leftarrow \tau\theta + (1-\tau)\bar\theta`). The actor's learning rate follows a cosine decay
over the whole run.

Defaults are the paper's MuJoCo locomotion settings: expectile 0.7, inverse temperature 3.0, discount 0.99, target
rate 0.005, Adam 3e-4 everywhere, 2x256 MLPs, rewards scaled by ``1000 / (max return - min return)``.

Fine-tuning (``offrl finetune``): the official fine-tuning config (``configs/antmaze_finetune_config.py``) turns
the learning-rate decay off, so a fine-tuning run trains without it in both phases (``configure_for_finetuning``);
its antmaze values (expectile 0.9, temperature 10) are per-task settings, not defaults.

Deviations from the paper:
- ``d`` is the *terminal* flag only; time-limit truncations bootstrap (the official code does the same through
  D4RL's timeouts).
- Observation normalisation is off by default (the official code does not normalise; CORL does); turn it on with
  ``normalize_observations``.
- The actor's mean layer is initialised orthogonal with gain 1.0 (the official code: sqrt(2); d3rlpy: PyTorch's
  default uniform init); hidden layers use orthogonal sqrt(2) as the official code does.
- The value of a batch's observations and next observations under the new V is computed in one network call (same
  numbers, fewer dispatches).
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
from offrl.nn.losses import critic_ensemble_loss, expectile_loss, td_target
from offrl.nn.networks import Ensemble, QNetwork, ValueNetwork
from offrl.nn.policies import GaussianPolicy, gaussian_act, gaussian_log_prob
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class IQLConfig:
    expectile: float = config_field(0.7, "expectile tau of the value loss (0.5 = mean, -> 1 = max)")
    beta: float = config_field(3.0, "inverse temperature of the advantage weights")
    max_weight: float = config_field(100.0, "clip of exp(beta * advantage)")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate (start of the cosine decay)")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    value_lr: float = config_field(3e-4, "value learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of every network")
    dropout_rate: float = config_field(0.0, "actor dropout (0.1 on Kitchen/Adroit in the paper)")
    cosine_decay: bool = config_field(True, "cosine-decay the actor learning rate over the run")
    decay_steps: int = config_field(0, "horizon of the cosine decay; 0 = the run's length")
    log_std_min: float = config_field(-5.0, "lower clip of the policy log std")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("locomotion", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(0.0 < self.expectile < 1.0, f"expectile must be in (0, 1), got {self.expectile}")
        require(self.beta >= 0.0, f"beta must be >= 0, got {self.beta}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(0.0 <= self.dropout_rate < 1.0, f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        require(min(self.actor_lr, self.critic_lr, self.value_lr) > 0, "learning rates must be > 0")
        require(self.decay_steps >= 0, "decay_steps must be >= 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class IQLState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    value_params: dict
    value_opt: optax.OptState
    rng: jax.Array
    config: IQLConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    value: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    value_tx: optax.GradientTransformation


def actor_optimizer(config) -> optax.GradientTransformation:
    """Adam for the actor, with the cosine decay of its learning rate when ``config.cosine_decay`` (IQL family)."""
    if not config.cosine_decay:
        return optax.adam(config.actor_lr)
    require(config.decay_steps > 0, "the actor's cosine decay needs decay_steps (set from the run length)")
    return optax.adam(optax.cosine_decay_schedule(config.actor_lr, config.decay_steps))


@cache
def networks(config: IQLConfig, spec: Spec) -> Networks:
    return Networks(
        actor=GaussianPolicy(
            config.hidden_dims, spec.action_dim, log_std_min=config.log_std_min, dropout_rate=config.dropout_rate
        ),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        value=ValueNetwork(config.hidden_dims),
        actor_tx=actor_optimizer(config),
        critic_tx=optax.adam(config.critic_lr),
        value_tx=optax.adam(config.value_lr),
    )


def init(key: jax.Array, spec: Spec, config: IQLConfig) -> IQLState:
    require(not spec.discrete, "IQL here is for continuous actions")
    return init_state(key, spec, config, networks(config, spec))


def init_state(key: jax.Array, spec: Spec, config, nets) -> IQLState:
    """The state of an IQL-family agent (actor, twin or ensemble critics with targets, V) built from ``nets``."""
    k_actor, k_critic, k_value, k_state = jax.random.split(key, 4)
    obs = jnp.zeros((1, *spec.observation_shape))
    act = jnp.zeros((1, spec.action_dim))
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = nets.critic.init(k_critic, obs, act)
    value_params = nets.value.init(k_value, obs)
    return IQLState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        value_params=value_params,
        value_opt=nets.value_tx.init(value_params),
        rng=k_state,
        config=config,
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------------------------
# Losses: pure functions of the parameters being trained, returning (loss, metrics).


def value_loss(value_params: dict, nets: Networks, batch: Batch, target_q: jax.Array, config: IQLConfig):
    v = nets.value.apply(value_params, batch["observations"])
    loss = expectile_loss(target_q - v, config.expectile).mean()
    return loss, {"value/loss": loss, "value/v_mean": v.mean()}


def actor_loss(
    actor_params: dict, nets: Networks, batch: Batch, advantage: jax.Array, key: jax.Array, config: IQLConfig
):
    weights = jnp.minimum(jnp.exp(config.beta * advantage), config.max_weight)
    mean, log_std = nets.actor.apply(
        actor_params, batch["observations"], deterministic=config.dropout_rate == 0.0, rngs={"dropout": key}
    )
    log_prob = gaussian_log_prob(batch["actions"], mean, log_std)
    loss = -(weights * log_prob).mean()
    return loss, {
        "actor/loss": loss,
        "actor/weight_mean": weights.mean(),
        "actor/log_std": log_std.mean(),
        "actor/advantage_mean": advantage.mean(),
    }


# ---------------------------------------------------------------------------------------------------------------


def update(state: IQLState, batch: Batch) -> tuple[IQLState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, actor_key = jax.random.split(state.rng)
    batch_size = batch["observations"].shape[0]

    # 1. V: expectile regression onto the target critics' min.
    target_q = nets.critic.apply(state.target_critic_params, batch["observations"], batch["actions"]).min(axis=0)
    (_, value_info), grads = jax.value_and_grad(value_loss, has_aux=True)(
        state.value_params, nets, batch, target_q, config
    )
    value_params, value_opt = apply_gradients(nets.value_tx, state.value_params, state.value_opt, grads)
    value_info["value/grad_norm"] = global_norm(grads)

    # The new V at s (actor) and at s' (critic targets), in one call.
    both = jnp.concatenate([batch["observations"], batch["next_observations"]], axis=0)
    v_both = nets.value.apply(value_params, both)
    v, next_v = v_both[:batch_size], v_both[batch_size:]

    # 2. Actor: advantage-weighted regression with the new V.
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, batch, target_q - v, actor_key, config
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 3. Critics: bootstrap from the new V (terminals stop it; timeouts do not).
    target = td_target(batch["rewards"], batch["terminals"], next_v, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_ensemble_loss, has_aux=True)(
        state.critic_params, nets.critic, batch, target
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
        value_params=value_params,
        value_opt=value_opt,
        rng=rng,
    )
    return new_state, {**value_info, **actor_info, **critic_info}


def act(state: IQLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return gaussian_act(mean, log_std, key, deterministic)


def configure_for_training(config: IQLConfig, total_steps: int) -> IQLConfig:
    if config.cosine_decay and config.decay_steps == 0:
        from dataclasses import replace

        return replace(config, decay_steps=max(int(total_steps), 1))
    return config


def configure_for_finetuning(config, offline_steps: int, online_steps: int):
    """IQL's published fine-tuning setting: no learning-rate decay in either phase (the official
    ``configs/antmaze_finetune_config.py``: ``opt_decay_schedule = None``), unless a decay horizon is given
    explicitly (``decay_steps`` > 0), which is kept; used by the IQL family."""
    from dataclasses import replace

    if config.cosine_decay and config.decay_steps > 0:
        return config
    return replace(config, cosine_decay=False)


ALGORITHM = Algorithm(
    name="iql",
    description="Implicit Q-Learning (Kostrikov et al. 2022): expectile V, Q from V, advantage-weighted actor",
    config_class=IQLConfig,
    init=init,
    update=update,
    act=act,
    configure_for_training=configure_for_training,
    configure_for_finetuning=configure_for_finetuning,
)
