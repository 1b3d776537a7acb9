r"""f-DVL: Dual-RL value learning (Sikchi, Zheng, Zhang & Niekum, "Dual RL: Unification and New Methods for
Reinforcement and Imitation Learning", ICLR 2024, arXiv:2302.08560). Official code: github.com/hari-sikchi/DVL
(``offline/critic.py``, ``learner.py``).

IQL's skeleton with the implicit value loss replaced by the dual of an f-divergence, on :math:`z = \min_i \bar
Q_i(s,a) - V(s)` over dataset actions and ``sample_random_times`` uniform actions per state (the official code's
:math:`\tfrac12(\rho + \mathrm{Unif})`):

.. math::

    \chi^2: &\ \ a \max(z + z^2/4, 0) - (1-a) z \qquad
    \text{TV}: \ \ a \max(z, 0) - (1-a) z \\
    \text{reverse KL (XQL, stabilised)}: &\ \ e^{x - m} - x e^{-m} - e^{-m}, \quad x = \min(z/a, c),\
        m = \mathrm{sg}(\max(\max_{batch} x, -1)) \\
    L_Q(\theta_i) &= \mathbb{E}\big[\mathrm{Huber}_{20}(Q_{\theta_i}(s,a) - r - \gamma(1-d) V(s'))\big] \\
    L_\pi(\phi) &= -\mathbb{E}_D\big[\min(e^{\beta(\min_i \bar Q_i(s,a) - V(s))}, 100) \log\pi_\phi(a|s)\big]

with :math:`a` = ``temp``; ``f = "expectile"`` gives IQL's loss (``temp`` as the expectile) in the same skeleton.
Update order per step (the official ``learner.py``): V against the target critics, the actor with the new V and
the target critics, the critics from the new V, then the Polyak update of the target critics.

Defaults: the paper's MuJoCo settings (the official README): f = chi-square, temp 1.0, one random action per
state, LayerNorm in V, Huber delta 20 for Q, beta 3, Adam 3e-4 (cosine decay for the actor), 2x256 MLPs, gamma 0.99,
tau 0.005, rewards scaled by 1000 / return range; the paper's batch is 1024 (the trainer's ``--batch-size``).
AntMaze: total-variation, temp 0.8, beta 10; Kitchen / Adroit: reverse-kl, temp 8.

Deviations: ``d`` is the terminal flag only (time-limit truncations bootstrap); the Gaussian actor is offrl's
(tanh on the mean, state-independent log std), the official one a Gaussian without tanh; orthogonal initialisation.
ReCOIL (offline imitation in the same paper) is not here yet.
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
from offrl.algos.iql import (
    IQLState,
    actor_loss,
    actor_optimizer,
    configure_for_finetuning,
    configure_for_training,
    init_state,
)
from offrl.nn.losses import (
    chi_square_value_loss,
    expectile_loss,
    huber_loss,
    reverse_kl_value_loss,
    td_target,
    total_variation_value_loss,
)
from offrl.nn.networks import Ensemble, QNetwork, ValueNetwork
from offrl.nn.policies import GaussianPolicy, gaussian_act
from offrl.nn.updates import apply_gradients, global_norm, polyak_update

DIVERGENCES = ("chi-square", "total-variation", "reverse-kl", "expectile")


@dataclass(frozen=True)
class FDVLConfig:
    f: str = config_field("chi-square", "value loss: chi-square | total-variation | reverse-kl | expectile")
    temp: float = config_field(1.0, "the loss's alpha (expectile for f = expectile)")
    max_clip: float = config_field(5.0, "clip of z / temp in the reverse-KL loss")
    sample_random_times: int = config_field(1, "uniform random actions per state added to the V loss")
    huber_delta: float = config_field(20.0, "Huber threshold of the Q loss")
    value_layer_norm: bool = config_field(True, "LayerNorm in the value network")
    beta: float = config_field(3.0, "inverse temperature of the advantage weights")
    max_weight: float = config_field(100.0, "clip of exp(beta * advantage)")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate (start of the cosine decay)")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    value_lr: float = config_field(3e-4, "value learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of every network")
    dropout_rate: float = config_field(0.0, "actor dropout")
    cosine_decay: bool = config_field(True, "cosine-decay the actor learning rate over the run")
    decay_steps: int = config_field(0, "horizon of the cosine decay; 0 = the run's length")
    log_std_min: float = config_field(-5.0, "lower clip of the policy log std")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("locomotion", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.f in DIVERGENCES, f"f must be one of {', '.join(DIVERGENCES)}; got {self.f!r}")
        require(self.temp > 0, f"temp must be > 0, got {self.temp}")
        require(self.f != "expectile" or self.temp < 1, "with f = expectile, temp is the expectile: in (0, 1)")
        require(self.sample_random_times >= 0, "sample_random_times must be >= 0")
        require(self.huber_delta > 0, f"huber_delta must be > 0, got {self.huber_delta}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr, self.value_lr) > 0, "learning rates must be > 0")
        require(self.decay_steps >= 0, "decay_steps must be >= 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    value: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    value_tx: optax.GradientTransformation


@cache
def networks(config: FDVLConfig, spec: Spec) -> Networks:
    return Networks(
        actor=GaussianPolicy(
            config.hidden_dims, spec.action_dim, log_std_min=config.log_std_min, dropout_rate=config.dropout_rate
        ),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        value=ValueNetwork(config.hidden_dims, layer_norm=config.value_layer_norm),
        actor_tx=actor_optimizer(config),
        critic_tx=optax.adam(config.critic_lr),
        value_tx=optax.adam(config.value_lr),
    )


def init(key: jax.Array, spec: Spec, config: FDVLConfig) -> IQLState:
    require(not spec.discrete, "f-DVL here is for continuous actions")
    return init_state(key, spec, config, networks(config, spec))


def f_loss(z: jax.Array, config: FDVLConfig) -> jax.Array:
    if config.f == "chi-square":
        return chi_square_value_loss(z, config.temp)
    if config.f == "total-variation":
        return total_variation_value_loss(z, config.temp)
    if config.f == "reverse-kl":
        return reverse_kl_value_loss(z, config.temp, config.max_clip)
    return expectile_loss(z, config.temp)


def value_loss(value_params: dict, nets: Networks, observations: jax.Array, q: jax.Array, config: FDVLConfig):
    v = nets.value.apply(value_params, observations)
    loss = f_loss(q - v, config).mean()
    return loss, {"value/loss": loss, "value/v_mean": v.mean()}


def critic_loss(critic_params: dict, nets: Networks, batch: Batch, target: jax.Array, delta: float):
    q = nets.critic.apply(critic_params, batch["observations"], batch["actions"])
    loss = huber_loss(q - target[None], delta).mean(axis=1).sum()
    return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/q_min": q.min(), "critic/q_max": q.max()}


def update(state: IQLState, batch: Batch) -> tuple[IQLState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, random_key, actor_key = jax.random.split(state.rng, 3)
    obs, actions = batch["observations"], batch["actions"]
    batch_size = obs.shape[0]

    # 1. V on dataset actions plus uniform ones, against the target critics.
    if config.sample_random_times:
        k = config.sample_random_times
        uniform = jax.random.uniform(random_key, (k * batch_size, actions.shape[1]), minval=-1.0, maxval=1.0)
        v_obs = jnp.concatenate([obs, jnp.repeat(obs, k, axis=0)])
        v_actions = jnp.concatenate([actions, uniform])
    else:
        v_obs, v_actions = obs, actions
    q_v = nets.critic.apply(state.target_critic_params, v_obs, v_actions).min(axis=0)
    (_, value_info), grads = jax.value_and_grad(value_loss, has_aux=True)(state.value_params, nets, v_obs, q_v, config)
    value_params, value_opt = apply_gradients(nets.value_tx, state.value_params, state.value_opt, grads)
    value_info["value/grad_norm"] = global_norm(grads)
    v_both = nets.value.apply(value_params, jnp.concatenate([obs, batch["next_observations"]]))
    v, next_v = v_both[:batch_size], v_both[batch_size:]

    # 2. Actor: advantage-weighted likelihood with the target critics and the new V (IQL's loss).
    target_q = q_v[:batch_size]
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, batch, target_q - v, actor_key, config
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 3. Critics: Huber regression onto r + gamma (1 - d) V(s').
    target = td_target(batch["rewards"], batch["terminals"], next_v, config.discount)
    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, batch, target, config.huber_delta
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)

    new_state = state.replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=polyak_update(state.target_critic_params, critic_params, config.tau),
        value_params=value_params,
        value_opt=value_opt,
        rng=rng,
    )
    return new_state, {**value_info, **actor_info, **critic_info}


def act(state: IQLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return gaussian_act(mean, log_std, key, deterministic)


ALGORITHM = Algorithm(
    name="f-dvl",
    description="f-DVL (Sikchi et al. 2024): IQL with an f-divergence dual value loss (chi^2, TV, reverse KL)",
    config_class=FDVLConfig,
    init=init,
    update=update,
    act=act,
    configure_for_training=configure_for_training,
    configure_for_finetuning=configure_for_finetuning,
)
