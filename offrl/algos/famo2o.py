r"""FamO2O on IQL (Wang, Wu, Zhu, Lou & Chen, "Train Once, Get a Family: State-Adaptive Balances for
Offline-to-Online Reinforcement Learning", NeurIPS 2023, arXiv:2310.17966; official code github.com/LeapLabTHU/FamO2O,
``jax_iql/family_learner.py``, ``family_actor.py``, ``family_utils.py``), registered as ``famo2o``.

IQL's actor trades policy improvement against staying near the data through one inverse temperature
:math:`\beta`. FamO2O learns a **family** of policies, one per :math:`\beta`, and a **balance model** that picks
:math:`\beta` per state:

- the **universal actor** :math:`\pi(a \mid s, e(\beta))` takes a sinusoidal encoding :math:`e(\beta)` (dimension
  6, base 10000, as a transformer's positions) next to the state, and is trained with IQL's advantage weights at
  that :math:`\beta`:
  :math:`L_\pi = -\mathbb{E}\big[\min(e^{\beta (Q(s,a) - V(s))}, 100)\,\log \pi(a \mid s, e(\beta))\big]`, where
  :math:`\beta \sim U[\beta_{min}, \beta_{max}]` per sample offline and :math:`\beta \sim \pi_b(\cdot \mid s)`
  (no gradient) online;
- the **balance model** :math:`\pi_b(\tilde\beta \mid s)`, a tanh-Gaussian on [-1, 1] with a state-independent
  std mapped linearly onto :math:`[\beta_{min}, \beta_{max}]`, is trained SAC-style to pick the balance whose policy
  the critic values most: :math:`L_b = \mathbb{E}_s\big[\alpha_b \log\pi_b(\tilde\beta \mid s) -
  \min_i \bar Q_i(s, \tilde a)\big]`, :math:`\tilde a \sim \pi(\cdot \mid s, e(\beta))` reparameterised (the
  gradient flows through the frozen universal actor), with :math:`\alpha_b` tuned to entropy :math:`-1/2`;
- V and Q are IQL's.

Update order per step (the official ``_family_update_jit``): V (expectile onto the target critics), the balance
model and its temperature, the universal actor (with the *previous* balance model's :math:`\beta` online, the new
V), the critics (from the new V), the targets. Acting: :math:`\beta` = the balance model's deterministic output,
then the universal actor's action (its mean when evaluating, a sample when exploring).

Fine-tuning: offline, :math:`\beta` is drawn uniformly; the online phase switches to the balance model's
:math:`\beta` (``online_config``); no learning-rate decay in either phase (the official fine-tuning configs, as
IQL). Defaults: IQL's MuJoCo settings, :math:`\beta \in [1, 5]` (the official default range; AntMaze uses [8, 14]),
Adam 3e-4 for everything, temperature of the balance model initialised at 1.

Deviations from the official code:
- The universal actor is offrl's IQL ``GaussianPolicy`` (tanh on the mean, state-independent log std clipped to
  [-5, 2]), as the official ``NormalTanhPolicy(tanh_squash_distribution=False, state_dependent_std=False)``; its
  initialisation is offrl's. The balance model's log std is a free parameter clipped to [-5, 2].
- ``d`` is the terminal flag only; time-limit truncations bootstrap (as IQL here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from offrl.algos.base import Algorithm, Batch, Metrics, Spec, config_field, require
from offrl.algos.iql import actor_optimizer, configure_for_finetuning, configure_for_training, value_loss
from offrl.nn.losses import critic_ensemble_loss, td_target
from offrl.nn.networks import MLP, Ensemble, QNetwork, ValueNetwork, default_init
from offrl.nn.policies import GaussianPolicy, gaussian_act, gaussian_log_prob, tanh_gaussian_sample
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update


@dataclass(frozen=True)
class FamO2OConfig:
    beta_min: float = config_field(1.0, "lower end of the inverse temperatures of the family")
    beta_max: float = config_field(5.0, "upper end (AntMaze: 8 to 14)")
    random_beta: bool = config_field(True, "train the actor at uniform betas (offline); off = the balance model's")
    encoding_dim: int = config_field(6, "dimension of the sinusoidal encoding of beta")
    encoding_base: float = config_field(10000.0, "base n of the sinusoidal encoding")
    balance_lr: float = config_field(3e-4, "learning rate of the balance model")
    balance_init_alpha: float = config_field(1.0, "initial entropy temperature of the balance model")
    balance_alpha_lr: float = config_field(3e-4, "learning rate of that temperature")
    balance_target_entropy: float = config_field(-0.5, "entropy target of the balance model")
    expectile: float = config_field(0.7, "expectile tau of the value loss")
    max_weight: float = config_field(100.0, "clip of exp(beta * advantage)")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate (start of the cosine decay)")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    value_lr: float = config_field(3e-4, "value learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of every network")
    cosine_decay: bool = config_field(True, "cosine-decay the actor learning rate over an offline run")
    decay_steps: int = config_field(0, "horizon of the cosine decay; 0 = the run's length")
    log_std_min: float = config_field(-5.0, "lower clip of the policies' log std")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("locomotion", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(
            0 < self.beta_min < self.beta_max, f"need 0 < beta_min < beta_max, got {self.beta_min}, {self.beta_max}"
        )
        require(self.encoding_dim >= 2 and self.encoding_dim % 2 == 0, "encoding_dim must be even and >= 2")
        require(0.0 < self.expectile < 1.0, f"expectile must be in (0, 1), got {self.expectile}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        rates = (self.actor_lr, self.critic_lr, self.value_lr, self.balance_lr, self.balance_alpha_lr)
        require(min(rates) > 0, "learning rates must be > 0")
        require(self.balance_init_alpha > 0, "balance_init_alpha must be > 0")
        require(self.decay_steps >= 0, "decay_steps must be >= 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class FamO2OState(struct.PyTreeNode):
    actor_params: dict
    actor_opt: optax.OptState
    balance_params: dict
    balance_opt: optax.OptState
    balance_log_alpha: jax.Array
    balance_alpha_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    value_params: dict
    value_opt: optax.OptState
    rng: jax.Array
    config: FamO2OConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class BalanceModel(nn.Module):
    """``(mean, log_std)`` of the pre-tanh Gaussian over the balance; the log std is state-independent."""

    hidden_dims: tuple[int, ...]
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        features = MLP(self.hidden_dims)(observations)
        mean = nn.Dense(1, kernel_init=default_init(1.0))(features)
        log_std = jnp.clip(self.param("log_std", nn.initializers.zeros, (1,)), self.log_std_min, self.log_std_max)
        return mean, jnp.broadcast_to(log_std, mean.shape)


class Networks(NamedTuple):
    actor: nn.Module  # the universal actor on [s, e(beta)]
    balance: nn.Module
    critic: nn.Module
    value: nn.Module
    actor_tx: optax.GradientTransformation
    balance_tx: optax.GradientTransformation
    balance_alpha_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    value_tx: optax.GradientTransformation


@cache
def networks(config: FamO2OConfig, spec: Spec) -> Networks:
    return Networks(
        actor=GaussianPolicy(config.hidden_dims, spec.action_dim, log_std_min=config.log_std_min),
        balance=BalanceModel(config.hidden_dims, log_std_min=config.log_std_min),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        value=ValueNetwork(config.hidden_dims),
        actor_tx=actor_optimizer(config),
        balance_tx=optax.adam(config.balance_lr),
        balance_alpha_tx=optax.adam(config.balance_alpha_lr),
        critic_tx=optax.adam(config.critic_lr),
        value_tx=optax.adam(config.value_lr),
    )


def encode(beta: jax.Array, dim: int, base: float) -> jax.Array:
    """``[sin(beta / base^(2i/d)), cos(beta / base^(2i/d))]`` interleaved, i = 0..d/2-1 (``sin_cos_skill_func``)."""
    k = beta.reshape(-1, 1)
    inner = k / base ** (2.0 * jnp.arange(dim // 2) / dim)
    return jnp.stack([jnp.sin(inner), jnp.cos(inner)], axis=-1).reshape(k.shape[0], dim)


def to_beta(squashed: jax.Array, config: FamO2OConfig) -> jax.Array:
    """The balance model's output in [-1, 1] mapped onto [beta_min, beta_max]."""
    return (squashed + 1.0) / 2.0 * (config.beta_max - config.beta_min) + config.beta_min


def with_beta(observations: jax.Array, beta: jax.Array, config: FamO2OConfig) -> jax.Array:
    return jnp.concatenate([observations, encode(beta, config.encoding_dim, config.encoding_base)], axis=-1)


def init(key: jax.Array, spec: Spec, config: FamO2OConfig) -> FamO2OState:
    require(not spec.discrete, "FamO2O is for continuous actions")
    nets = networks(config, spec)
    k_actor, k_balance, k_critic, k_value, k_state = jax.random.split(key, 5)
    obs = jnp.zeros((1, *spec.observation_shape))
    actor_params = nets.actor.init(k_actor, with_beta(obs, jnp.ones((1,)), config))
    balance_params = nets.balance.init(k_balance, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    value_params = nets.value.init(k_value, obs)
    log_alpha = jnp.asarray(math.log(config.balance_init_alpha), jnp.float32)
    return FamO2OState(
        actor_params=actor_params,
        actor_opt=nets.actor_tx.init(actor_params),
        balance_params=balance_params,
        balance_opt=nets.balance_tx.init(balance_params),
        balance_log_alpha=log_alpha,
        balance_alpha_opt=nets.balance_alpha_tx.init(log_alpha),
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
# Losses


def balance_loss(balance_params: dict, state: FamO2OState, nets: Networks, batch: Batch, key: jax.Array):
    config, obs = state.config, batch["observations"]
    beta_key, action_key = jax.random.split(key)
    mean, log_std = nets.balance.apply(balance_params, obs)
    squashed, log_prob = tanh_gaussian_sample(beta_key, mean, log_std)
    beta = to_beta(squashed, config)[:, 0]
    a_mean, a_log_std = nets.actor.apply(state.actor_params, with_beta(obs, beta, config))
    actions = a_mean + jnp.exp(a_log_std) * jax.random.normal(action_key, a_mean.shape)  # reparameterised
    q = nets.critic.apply(state.target_critic_params, obs, actions).min(axis=0)
    alpha = jnp.exp(state.balance_log_alpha)
    loss = (alpha * log_prob - q).mean()
    return loss, ({"balance/loss": loss, "balance/beta_mean": beta.mean(), "balance/beta_std": beta.std()}, log_prob)


def actor_loss(actor_params: dict, nets: Networks, batch: Batch, beta, advantage, config: FamO2OConfig):
    weights = jnp.minimum(jnp.exp(beta * advantage), config.max_weight)
    mean, log_std = nets.actor.apply(actor_params, with_beta(batch["observations"], beta, config))
    loss = -(weights * gaussian_log_prob(batch["actions"], mean, log_std)).mean()
    return loss, {"actor/loss": loss, "actor/weight_mean": weights.mean(), "actor/advantage_mean": advantage.mean()}


# ---------------------------------------------------------------------------------------------------------------


def update(state: FamO2OState, batch: Batch) -> tuple[FamO2OState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, balance_key, beta_key = jax.random.split(state.rng, 3)
    obs = batch["observations"]
    batch_size = obs.shape[0]

    # 1. V: expectile regression onto the target critics' min (IQL).
    target_q = nets.critic.apply(state.target_critic_params, obs, batch["actions"]).min(axis=0)
    (_, value_info), grads = jax.value_and_grad(value_loss, has_aux=True)(
        state.value_params, nets, batch, target_q, config
    )
    value_params, value_opt = apply_gradients(nets.value_tx, state.value_params, state.value_opt, grads)

    # 2. The balance model (SAC-style on the frozen universal actor and target critics), then its temperature.
    (_, (balance_info, log_prob)), grads = jax.value_and_grad(balance_loss, has_aux=True)(
        state.balance_params, state, nets, batch, balance_key
    )
    balance_params, balance_opt = apply_gradients(nets.balance_tx, state.balance_params, state.balance_opt, grads)
    entropy = -log_prob.mean()

    def alpha_loss(log_alpha):
        return jnp.exp(log_alpha) * jax.lax.stop_gradient(entropy - config.balance_target_entropy)

    grad = jax.grad(alpha_loss)(state.balance_log_alpha)
    log_alpha, alpha_opt = apply_gradients(
        nets.balance_alpha_tx, state.balance_log_alpha, state.balance_alpha_opt, grad
    )
    balance_info.update({"balance/entropy": entropy, "balance/alpha": jnp.exp(log_alpha)})

    # 3. The universal actor at uniform betas (offline) or the previous balance model's (online), with the new V.
    if config.random_beta:
        beta = jax.random.uniform(beta_key, (batch_size,), minval=config.beta_min, maxval=config.beta_max)
    else:
        mean, log_std = nets.balance.apply(state.balance_params, obs)
        beta = jax.lax.stop_gradient(to_beta(tanh_gaussian_sample(beta_key, mean, log_std)[0], config)[:, 0])
    both = jnp.concatenate([obs, batch["next_observations"]], axis=0)
    v_both = nets.value.apply(value_params, both)
    v, next_v = v_both[:batch_size], v_both[batch_size:]
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, batch, beta, target_q - v, config
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 4. Critics from the new V; 5. targets.
    target = td_target(batch["rewards"], batch["terminals"], next_v, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_ensemble_loss, has_aux=True)(
        state.critic_params, nets.critic, batch, target
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    target_critic_params = polyak_update(state.target_critic_params, critic_params, config.tau)

    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        balance_params=balance_params,
        balance_opt=balance_opt,
        balance_log_alpha=log_alpha,
        balance_alpha_opt=alpha_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=target_critic_params,
        value_params=value_params,
        value_opt=value_opt,
        rng=rng,
    )
    return new_state, {**value_info, **balance_info, **actor_info, **critic_info}


def balance(state: FamO2OState, observations: jax.Array) -> jax.Array:
    """The balance model's (deterministic) beta for each observation."""
    mean, _ = networks(state.config, state.spec).balance.apply(state.balance_params, observations)
    return to_beta(jnp.tanh(mean), state.config)[:, 0]


def act(state: FamO2OState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    nets = networks(state.config, state.spec)
    beta = balance(state, observations)
    mean, log_std = nets.actor.apply(state.actor_params, with_beta(observations, beta, state.config))
    return gaussian_act(mean, log_std, key, deterministic)


def online_config(config: FamO2OConfig) -> FamO2OConfig:
    """Online, the actor trains at the balance model's betas."""
    return replace(config, random_beta=False)


ALGORITHM = Algorithm(
    name="famo2o",
    description="FamO2O (Wang et al. 2023): IQL with a family of policies and a state-adaptive balance model",
    config_class=FamO2OConfig,
    init=init,
    update=update,
    act=act,
    configure_for_training=configure_for_training,
    configure_for_finetuning=configure_for_finetuning,
    online_config=online_config,
)
