r"""ReCOIL: offline imitation from arbitrary data plus a few expert demonstrations (Sikchi, Zheng, Zhang & Niekum,
"Dual RL: Unification and New Methods for Reinforcement and Imitation Learning", ICLR 2024, arXiv:2302.08560).
Official code: github.com/hari-sikchi/ReCOIL (``critic.py``, ``actor.py``, ``train_offline.py``).

ReCOIL matches the mixture :math:`d^\pi_{mix} = \beta d^\pi + (1-\beta) d^R` to
:math:`d^E_{mix} = \beta d^E + (1-\beta) d^R`, where :math:`d^R` is the replay (arbitrary, unlabelled) data and
:math:`d^E` the expert's. Mixing both sides with the same data keeps the divergence defined wherever the data
covers, so no discriminator is needed and the dataset's rewards are never used. The official code solves its dual
as an IQL-like learner with two batches per update, a *mixture* batch :math:`M` drawn uniformly from the union of
the data and the demonstrations, and an *expert* batch :math:`E` drawn from the demonstrations alone:

.. math::

    L_V(\psi) &= \mathbb{E}_{(s,a) \sim M}\big[e^{x - m} - x e^{-m} - e^{-m}\big],
        \quad x = \min\big((\min_i \bar Q_i(s, a) - V_\psi(s)) / T,\ c\big),
        \quad m = \mathrm{sg}\big(\max(\max_M x, -1)\big) \\
    L_Q(\theta_i) &= \tfrac12\, \mathbb{E}_{E}\big[(Q_{\theta_i}(s, a) - \tfrac{r_E}{1-\gamma})^2\big]
        + \tfrac12\, \mathbb{E}_{M}\big[(Q_{\theta_i}(s, a) - y)^2\big],
        \quad y = r_M + \gamma (1 - d) V_\psi(s') + \gamma d \tfrac{r_M}{1-\gamma} \\
    L_\pi(\phi) &= -\mathbb{E}_{M}\big[\min(e^{\beta (\min_i \bar Q_i(s, a) - V_\psi(s))}, w_{max})
        \log \pi_\phi(a \mid s)\big]

The value loss is Dual RL's stabilised reverse-KL (Gumbel) form (``offrl.nn.losses.reverse_kl_value_loss``,
f-DVL's): V is a soft maximum of Q over the mixture's actions. The critic loss is the least-squares form with
bounded targets that the official code takes from LS-IQ (Al-Hafez et al. 2023): expert pairs are regressed to the
value of earning :math:`r_E` forever, mixture pairs bootstrap with reward :math:`r_M`, and a terminal state is
absorbing at :math:`r_M` forever (the official constants: :math:`r_E = 2`, :math:`r_M = -2`, i.e. targets 200 and
-200 at gamma 0.99). Q therefore grows along expert-like behaviour and V carries it backwards through the data,
and the actor is advantage-weighted regression on the mixture.

Update order per step (IQL's): V from the target critics; the actor with the new V; the critics bootstrapping
from the new V; Polyak update of the target critics. Defaults are the official script's where it gives them: loss
temperature 1, clip 7, twin critics with the minimum, batch 1024 (the trainer's ``--batch-size``; the expert batch
has the same size), Adam 3e-4, 2x256 MLPs, gamma 0.99, tau 0.005; no random actions in the value loss
(``sample_random_times`` 0). The actor's inverse temperature is not in the script's flags (it sits in a config file
we could not read); 3.0 (IQL's MuJoCo value) is offrl's choice, as is the weight clip 100 from the official actor.

How to train: ``offrl train --algo recoil --dataset ARBITRARY_DATA --expert-dataset DEMOS [--expert-episodes N]``.
The demonstrations are appended to the data (so the mixture contains them, as in the paper's
:math:`d^E_{mix}`) and marked (``offrl.data.columns``: ``is_expert``); the expert batch is drawn from those rows
inside the update (``bind_dataset``).

Deviations: the official script's ``alpha`` (0.8) and ``beta`` (0.1) flags are passed to its learner, whose file
we could not read, but do not enter the critic or value losses of its ``critic.py``; offrl has no counterpart. The
official gradient penalty and action noise options (off by default) are not implemented. ``d`` is the terminal
flag only (time-limit truncations bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.algos.base import Algorithm, Batch, DataUpdate, Metrics, Spec, config_field, require
from offrl.algos.iql import IQLState, init_state
from offrl.nn.losses import reverse_kl_value_loss
from offrl.nn.networks import Ensemble, QNetwork, ValueNetwork
from offrl.nn.policies import GaussianPolicy, gaussian_act, gaussian_log_prob
from offrl.nn.updates import apply_gradients, global_norm, polyak_update


@dataclass(frozen=True)
class ReCOILConfig:
    loss_temp: float = config_field(1.0, "temperature T of the reverse-KL value loss")
    max_clip: float = config_field(7.0, "clip c of (Q - V) / T in the value loss")
    expert_reward: float = config_field(2.0, "r_E: expert pairs are regressed to r_E / (1 - gamma)")
    mixture_reward: float = config_field(-2.0, "r_M: the reward mixture pairs bootstrap with (and terminals keep)")
    beta: float = config_field(3.0, "inverse temperature of the actor's advantage weights")
    max_weight: float = config_field(100.0, "clip of exp(beta * advantage)")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    actor_lr: float = config_field(3e-4, "actor learning rate")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    value_lr: float = config_field(3e-4, "value learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of every network")
    log_std_min: float = config_field(-5.0, "lower clip of the policy log std")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none (the dataset's rewards are not used)")

    def __post_init__(self) -> None:
        require(self.loss_temp > 0, f"loss_temp must be > 0, got {self.loss_temp}")
        require(self.max_clip > 0, f"max_clip must be > 0, got {self.max_clip}")
        require(self.expert_reward > self.mixture_reward, "expert_reward must be above mixture_reward")
        require(self.beta >= 0.0, f"beta must be >= 0, got {self.beta}")
        require(0.0 <= self.discount < 1.0, f"discount must be in [0, 1), got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.actor_lr, self.critic_lr, self.value_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling == "none", "ReCOIL does not use rewards: reward_scaling must be none")


class Networks(NamedTuple):
    actor: nn.Module
    critic: nn.Module
    value: nn.Module
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    value_tx: optax.GradientTransformation


@cache
def networks(config: ReCOILConfig, spec: Spec) -> Networks:
    return Networks(
        actor=GaussianPolicy(config.hidden_dims, spec.action_dim, log_std_min=config.log_std_min),
        critic=Ensemble(QNetwork, 2)(config.hidden_dims),
        value=ValueNetwork(config.hidden_dims),
        actor_tx=optax.adam(config.actor_lr),
        critic_tx=optax.adam(config.critic_lr),
        value_tx=optax.adam(config.value_lr),
    )


def init(key: jax.Array, spec: Spec, config: ReCOILConfig) -> IQLState:
    require(not spec.discrete, "ReCOIL here is for continuous actions")
    return init_state(key, spec, config, networks(config, spec))


# ---------------------------------------------------------------------------------------------------------------
# Losses


def value_loss(value_params: dict, nets: Networks, mixture: Batch, target_q: jax.Array, config: ReCOILConfig):
    v = nets.value.apply(value_params, mixture["observations"])
    loss = reverse_kl_value_loss(target_q - v, config.loss_temp, config.max_clip).mean()
    return loss, {"value/loss": loss, "value/v_mean": v.mean()}


def actor_loss(actor_params: dict, nets: Networks, mixture: Batch, advantage: jax.Array, config: ReCOILConfig):
    weights = jnp.minimum(jnp.exp(config.beta * advantage), config.max_weight)
    mean, log_std = nets.actor.apply(actor_params, mixture["observations"])
    loss = -(weights * gaussian_log_prob(mixture["actions"], mean, log_std)).mean()
    return loss, {"actor/loss": loss, "actor/weight_mean": weights.mean(), "actor/advantage_mean": advantage.mean()}


def critic_loss(critic_params: dict, nets: Networks, mixture: Batch, expert: Batch, target: jax.Array, config):
    q_mixture = nets.critic.apply(critic_params, mixture["observations"], mixture["actions"])  # [2, B]
    q_expert = nets.critic.apply(critic_params, expert["observations"], expert["actions"])
    expert_target = config.expert_reward / (1.0 - config.discount)
    per_critic = 0.5 * jnp.square(q_expert - expert_target).mean(-1) + 0.5 * jnp.square(q_mixture - target).mean(-1)
    loss = per_critic.sum()
    flags = mixture["is_expert"]
    seen = jnp.maximum(flags.sum(), 1.0), jnp.maximum((1.0 - flags).sum(), 1.0)
    return loss, {
        "critic/loss": loss,
        "critic/q_expert_batch": q_expert.mean(),
        "critic/q_mixture_expert_rows": (q_mixture[0] * flags).sum() / seen[0],
        "critic/q_mixture_other_rows": (q_mixture[0] * (1.0 - flags)).sum() / seen[1],
    }


def mixture_target(next_v: jax.Array, terminals: jax.Array, config: ReCOILConfig) -> jax.Array:
    """``r_M + gamma * V(s')``, or at a terminal ``r_M + gamma * r_M / (1 - gamma) = r_M / (1 - gamma)`` (absorbing)."""
    absorbing = config.mixture_reward / (1.0 - config.discount)
    return config.mixture_reward + config.discount * ((1.0 - terminals) * next_v + terminals * absorbing)


def expert_batch(key: jax.Array, expert_rows: jax.Array, data: Batch, size: int) -> Batch:
    """``size`` rows drawn uniformly (with replacement) from the demonstration rows of the training set."""
    picked = expert_rows[jax.random.randint(key, (size,), 0, expert_rows.shape[0])]
    return {name: data[name][picked] for name in ("observations", "actions")}


# ---------------------------------------------------------------------------------------------------------------


def recoil_update(state: IQLState, mixture: Batch, expert_rows: jax.Array, data: Batch) -> tuple[IQLState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, expert_key = jax.random.split(state.rng)
    batch_size = mixture["observations"].shape[0]
    expert = expert_batch(expert_key, expert_rows, data, batch_size)

    # 1. V: soft maximum (reverse-KL) of the target critics' min over the mixture.
    target_q = nets.critic.apply(state.target_critic_params, mixture["observations"], mixture["actions"]).min(0)
    (_, value_info), grads = jax.value_and_grad(value_loss, has_aux=True)(
        state.value_params, nets, mixture, target_q, config
    )
    value_params, value_opt = apply_gradients(nets.value_tx, state.value_params, state.value_opt, grads)
    value_info["value/grad_norm"] = global_norm(grads)
    both = jnp.concatenate([mixture["observations"], mixture["next_observations"]], axis=0)
    v_both = nets.value.apply(value_params, both)
    v, next_v = v_both[:batch_size], v_both[batch_size:]

    # 2. Actor: advantage-weighted regression on the mixture.
    (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, nets, mixture, target_q - v, config
    )
    actor_params, actor_opt = apply_gradients(nets.actor_tx, state.actor_params, state.actor_opt, grads)
    actor_info["actor/grad_norm"] = global_norm(grads)

    # 3. Critics: expert pairs to r_E / (1 - gamma); mixture pairs bootstrap with r_M (terminals absorb at r_M).
    target = mixture_target(next_v, mixture["terminals"], config)
    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, mixture, expert, target, config
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


def bind_dataset(config: ReCOILConfig, arrays: dict[str, np.ndarray]) -> DataUpdate:
    """The expert rows of the training set (``is_expert``), from which each update draws its expert batch."""
    flags = np.asarray(arrays["is_expert"])
    if not flags.any():
        raise ValueError("ReCOIL needs expert demonstrations: no row of the training set is marked as expert")
    expert_rows = jnp.asarray(np.flatnonzero(flags), jnp.int32)

    def update_with_data(state: IQLState, batch: Batch, data: Batch) -> tuple[IQLState, Metrics]:
        return recoil_update(state, batch, expert_rows, data)

    return update_with_data


def update(state: IQLState, batch: Batch) -> tuple[IQLState, Metrics]:
    raise TypeError(
        "ReCOIL draws expert batches from the whole training set: build its update with "
        "offrl.algos.base.training_update(ALGORITHM, config, arrays) and call update(state, batch, data)"
    )


def act(state: IQLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = networks(state.config, state.spec).actor.apply(state.actor_params, observations)
    return gaussian_act(mean, log_std, key, deterministic)


ALGORITHM = Algorithm(
    name="recoil",
    description="ReCOIL (Sikchi et al. 2024): offline imitation from arbitrary data plus expert demonstrations",
    config_class=ReCOILConfig,
    init=init,
    update=update,
    act=act,
    extra_columns=("is_expert",),
    bind_dataset=bind_dataset,
)
