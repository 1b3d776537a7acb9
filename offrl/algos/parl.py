r"""PA-RL: Policy-Agnostic RL (Sobol Mark, Gao, Sferrazza, Kumar & Levine, "Policy Agnostic RL: Offline RL and
Online RL Fine-Tuning of Any Class and Backbone", 2024, arXiv:2412.06685; official code
github.com/MaxSobolMark/PolicyAgnosticRL, ``jaxrl_m/agents/continuous/action_optimization.py``,
``parl_calql.py``, ``train.py`` and ``configs/base_config.py``), registered as ``pa-rl``.

The policy is never trained by a policy gradient. A *base policy* :math:`\pi_\beta` (any generative policy; here a
tanh-Gaussian or a deterministic MLP) is trained by supervised learning only, and the agent acts with the
*optimised policy* :math:`\pi_{opt}` built from it and a critic ensemble :math:`Q_{1..N}` by **action
optimisation**:

1. sample :math:`m` actions :math:`a_1..a_m \sim \pi_\beta(\cdot|s)`;
2. *global* step: keep the :math:`k` with the largest ensemble-mean value :math:`\bar Q(s, a_i)`;
3. *local* step: :math:`T` steps of gradient ascent :math:`a \leftarrow \mathrm{clip}(a + \eta \nabla_a \bar Q(s, a),
   -1, 1)` on each kept action, keeping each one's best iterate;
4. :math:`\pi_{opt}(s)` is the optimised action of largest value (the official ``max_q_value`` strategy, used for
   both acting and evaluation).

The critic is Cal-QL over that policy: a LayerNorm ensemble whose TD target is the minimum over a random 2 of the
target critics at :math:`a' = \pi_{opt}(s')`, and whose conservative penalty (without importance sampling, the
official ``cql_importance_sample=False``) is

.. math::

    \text{gap}_i = \log\tfrac{1}{3n+1}\Big(\textstyle\sum_{j \le n} e^{Q_i(s, u_j)} + e^{Q_i(s, a)}
        + n\, e^{\max(Q_i(s, \pi_{opt}(s)),\, G)} + n\, e^{\max(Q_i(s, \pi_{opt}(s')),\, G)}\Big) - Q_i(s, a)

with :math:`u_j` uniform actions, :math:`G` the data's Monte-Carlo return (the Cal-QL floor; ``calibrated``) and
:math:`n` = ``n_cql_actions`` (the official code draws its ``n`` CQL "policy" samples from the deterministic
:math:`\pi_{opt}`, so they are ``n`` copies of one action); :math:`L_Q = \frac1N\sum_i
\mathbb{E}[(Q_i - y)^2] + \alpha_{cql}\,\frac1M\sum_{i \in \mathcal M} \text{gap}_i` over a random subset
:math:`\mathcal M` of M = ``num_min_critics`` members (the official ``critic_subsample_size``), with the
log-sum-exp less the log of its :math:`3n + 1` terms, as the official code does without importance sampling.

Policy improvement is **distillation**: the base policy is trained with its own supervised loss (negative
log-likelihood, or squared error for the deterministic one) on optimised actions :math:`\tilde a^*`. The candidate set
is the :math:`k` optimised actions with the dataset action in place of the worst one, and :math:`\tilde a^*` is drawn
from :math:`\mathrm{softmax}(\bar Q)` over it (the official ``distill_argmax=False``; ``distill_argmax`` takes the
best). In the official recipe the base policy is first trained by behaviour cloning, the offline phase trains only
the critic, and distillation starts online, one base-policy step per critic step (``base_policy_utd`` =
``critic_utd`` = 1) at a lower learning rate (5e-5). Here ``distill`` selects the base policy's targets: off (the
offline phase) it clones the dataset's actions, on (``online_config`` turns it on for ``offrl finetune``) it distils
the optimised actions, at ``distill_lr``.

Update order per step: the base policy's step (its targets from the current critic), then the critic's step with
action optimisation from the updated base policy and the current critic (``use_target_critic=False``), then the
Polyak step of the target critics (tau 0.005).

Defaults are the official state-based config: N = 10 LayerNorm critics (2x256), minimum over 2, Adam 3e-4,
batch 256, gamma 0.99, ``cql_alpha`` 0.005, 10 CQL actions, Cal-QL on, m = 32, k = 10, T = 10, eta = 3e-4, ensemble
mean (not min) for the optimisation; observations and rewards as they come. Action optimisation makes each update
cost about ``m * N`` critic evaluations per row (the paper caches base-policy samples on accelerators); on a CPU use
a smaller ensemble and fewer samples (e.g. ``--num-critics 2 --num-base-actions 8 --num-keep 4 --opt-steps 3``).

Deviations from the official code:
- The critic is a scalar (MSE) ensemble, not its 128-bin categorical (distributional) critic.
- The base policy is a tanh-Gaussian (state-dependent std, log std >= -5) or a deterministic MLP, not a diffusion
  model or a transformer: what this file shows is the method's claim that the improvement operator does not care.
  A deterministic policy has a single action per state, so its ``m`` samples are its action plus Gaussian noise of
  std ``deterministic_noise`` (the first sample noise-free); with 0 they are ``m`` copies (the literal reading).
- Behaviour cloning and the critic are trained together in the offline phase instead of BC first; the optimiser
  state is not reset at the switch to online (one checkpoint format across the switch).
- ``d`` is the terminal flag only; time-limit truncations bootstrap.
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
from offrl.nn.losses import td_target
from offrl.nn.networks import Ensemble, QNetwork
from offrl.nn.policies import DeterministicPolicy, TanhGaussianPolicy, tanh_gaussian_log_prob
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update

BASE_POLICIES = ("gaussian", "deterministic")


@dataclass(frozen=True)
class PARLConfig:
    base_policy: str = config_field("gaussian", "gaussian (tanh-Gaussian, NLL) | deterministic (MLP, MSE)")
    deterministic_noise: float = config_field(0.1, "std of the noise on a deterministic base policy's samples")
    num_base_actions: int = config_field(32, "actions sampled from the base policy per state (m)")
    num_keep: int = config_field(10, "actions kept by the global step (k)")
    opt_steps: int = config_field(10, "gradient-ascent steps of the local step (T)")
    opt_step_size: float = config_field(3e-4, "step size of the local step (eta)")
    opt_ensemble_min: bool = config_field(False, "optimise the ensemble minimum instead of its mean")
    distill: bool = config_field(False, "train the base policy on optimised actions (on in fine-tuning's online phase)")
    distill_argmax: bool = config_field(False, "distil the best candidate instead of a softmax(Q) sample")
    num_critics: int = config_field(10, "critic ensemble size N")
    num_min_critics: int = config_field(2, "target critics sampled for the minimum")
    critic_layer_norm: bool = config_field(True, "LayerNorm in the critics")
    cql_alpha: float = config_field(0.005, "weight of the conservative penalty")
    cql_alpha_online: float = config_field(-1.0, "fine-tuning: the weight in the online phase; -1 = cql_alpha")
    n_cql_actions: int = config_field(10, "uniform actions (and copies of pi_opt's) in the penalty's logsumexp")
    calibrated: bool = config_field(True, "Cal-QL: floor the penalty's policy values at the Monte-Carlo return")
    discount: float = config_field(0.99, "discount factor gamma")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    critic_lr: float = config_field(3e-4, "critic learning rate")
    bc_lr: float = config_field(3e-4, "base-policy learning rate while cloning the data")
    distill_lr: float = config_field(5e-5, "base-policy learning rate while distilling")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of the critics")
    base_hidden_dims: tuple[int, ...] = config_field((256, 256), "hidden layer widths of the base policy")
    normalize_observations: bool = config_field(False, "standardise observations with dataset mean/std")
    reward_scaling: str = config_field("none", "none | locomotion (r*1000/return range) | antmaze (r-1)")

    def __post_init__(self) -> None:
        require(self.base_policy in BASE_POLICIES, f"base_policy must be one of {BASE_POLICIES}: {self.base_policy}")
        require(self.deterministic_noise >= 0, f"deterministic_noise must be >= 0, got {self.deterministic_noise}")
        require(self.num_base_actions >= 1, f"num_base_actions must be >= 1, got {self.num_base_actions}")
        require(
            1 <= self.num_keep <= self.num_base_actions,
            f"num_keep must be in [1, num_base_actions={self.num_base_actions}], got {self.num_keep}",
        )
        require(self.opt_steps >= 0, f"opt_steps must be >= 0, got {self.opt_steps}")
        require(self.opt_step_size >= 0, f"opt_step_size must be >= 0, got {self.opt_step_size}")
        require(self.num_critics >= 1, f"num_critics must be >= 1, got {self.num_critics}")
        require(
            1 <= self.num_min_critics <= self.num_critics,
            f"num_min_critics must be in [1, num_critics={self.num_critics}], got {self.num_min_critics}",
        )
        require(self.cql_alpha >= 0, f"cql_alpha must be >= 0, got {self.cql_alpha}")
        require(self.cql_alpha_online >= 0 or self.cql_alpha_online == -1, "cql_alpha_online must be >= 0 or -1")
        require(self.n_cql_actions >= 1, f"n_cql_actions must be >= 1, got {self.n_cql_actions}")
        require(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")
        require(min(self.critic_lr, self.bc_lr, self.distill_lr) > 0, "learning rates must be > 0")
        require(self.reward_scaling in ("none", "locomotion", "antmaze"), "reward_scaling: none|locomotion|antmaze")


class PARLState(struct.PyTreeNode):
    base_params: dict
    base_opt: optax.OptState
    critic_params: dict
    critic_opt: optax.OptState
    target_critic_params: dict
    step: jax.Array
    rng: jax.Array
    config: PARLConfig = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class Networks(NamedTuple):
    base: nn.Module
    critic: nn.Module
    target_subset: nn.Module
    base_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation


def _adam(learning_rate: float) -> optax.GradientTransformation:
    # Adam as scale_by_adam then the rate: its state does not depend on the rate, so the base policy's rate can
    # change between the offline phase (cloning) and the online one (distilling) within one checkpoint format.
    return optax.chain(optax.scale_by_adam(), optax.scale(-learning_rate))


@cache
def networks(config: PARLConfig, spec: Spec) -> Networks:
    if config.base_policy == "gaussian":
        base: nn.Module = TanhGaussianPolicy(config.base_hidden_dims, spec.action_dim, log_std_min=-5.0)
    else:
        base = DeterministicPolicy(config.base_hidden_dims, spec.action_dim)
    critic = Ensemble(QNetwork, config.num_critics)(config.hidden_dims, layer_norm=config.critic_layer_norm)
    subset = Ensemble(QNetwork, config.num_min_critics)(config.hidden_dims, layer_norm=config.critic_layer_norm)
    return Networks(
        base=base,
        critic=critic,
        target_subset=subset,
        base_tx=_adam(config.distill_lr if config.distill else config.bc_lr),
        critic_tx=optax.adam(config.critic_lr),
    )


def init(key: jax.Array, spec: Spec, config: PARLConfig) -> PARLState:
    require(not spec.discrete, "PA-RL's action optimisation is for continuous actions")
    nets = networks(config, spec)
    k_base, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, *spec.observation_shape))
    base_params = nets.base.init(k_base, obs)
    critic_params = nets.critic.init(k_critic, obs, jnp.zeros((1, spec.action_dim)))
    return PARLState(
        base_params=base_params,
        base_opt=nets.base_tx.init(base_params),
        critic_params=critic_params,
        critic_opt=nets.critic_tx.init(critic_params),
        target_critic_params=copy_tree(critic_params),
        step=jnp.zeros((), jnp.int32),
        rng=k_state,
        config=config,
        spec=spec,
    )


# ---------------------------------------------------------------------------------------------------------------
# Action optimisation


def base_samples(nets: Networks, config: PARLConfig, base_params: dict, observations: jax.Array, key: jax.Array):
    """``m`` actions per state from the base policy: ``[B, m, A]``."""
    m = config.num_base_actions
    if config.base_policy == "gaussian":
        mean, log_std = nets.base.apply(base_params, observations)
        noise = jax.random.normal(key, (mean.shape[0], m, mean.shape[-1]))
        return jnp.tanh(mean[:, None] + jnp.exp(log_std)[:, None] * noise)
    action = nets.base.apply(base_params, observations)
    noise = config.deterministic_noise * jax.random.normal(key, (action.shape[0], m, action.shape[-1]))
    noise = noise.at[:, 0].set(0.0)  # the policy's own action is always a candidate
    return jnp.clip(action[:, None] + noise, -1.0, 1.0)


def critic_value(nets: Networks, config: PARLConfig, critic_params: dict, observations, actions) -> jax.Array:
    """The value action optimisation climbs: ensemble mean (or min) of Q at ``[B, n, A]`` actions, ``[B, n]``."""
    b, n = actions.shape[:2]
    q = nets.critic.apply(critic_params, jnp.repeat(observations, n, axis=0), actions.reshape(b * n, -1))
    q = q.min(axis=0) if config.opt_ensemble_min else q.mean(axis=0)
    return q.reshape(b, n)


def optimise_actions(nets: Networks, config: PARLConfig, critic_params: dict, observations, candidates):
    """Global then local step on ``[B, m, A]`` candidates: the ``k`` optimised actions ``[B, k, A]``, their values
    ``[B, k]`` and metrics."""

    def value(actions: jax.Array) -> jax.Array:
        return critic_value(nets, config, critic_params, observations, actions)

    before = value(candidates)
    kept_values, kept = jax.lax.top_k(before, config.num_keep)
    actions = jnp.take_along_axis(candidates, kept[..., None], axis=1)

    # one critic pass per iterate gives both its values and the gradient of their sum
    def sum_and_values(a: jax.Array) -> tuple[jax.Array, jax.Array]:
        v = value(a)
        return v.sum(), v

    value_and_gradient = jax.grad(sum_and_values, has_aux=True)

    def local_step(carry, _):
        current, best, best_value = carry
        gradient, current_value = value_and_gradient(current)
        better = current_value > best_value
        best = jnp.where(better[..., None], current, best)
        best_value = jnp.maximum(current_value, best_value)
        current = jnp.clip(current + config.opt_step_size * gradient, -1.0, 1.0)
        return (current, best, best_value), None

    start = (actions, actions, jnp.full(kept_values.shape, -jnp.inf))
    (last, best, best_value), _ = jax.lax.scan(local_step, start, None, length=config.opt_steps)
    last_value = value(last)  # the last iterate competes too
    better = last_value > best_value
    best = jnp.where(better[..., None], last, best)
    best_value = jnp.maximum(last_value, best_value)
    info = {"opt/q_before": kept_values.mean(), "opt/q_gain": (best_value - kept_values).mean()}
    return best, best_value, info


def best_action(actions: jax.Array, values: jax.Array) -> jax.Array:
    """``[B, A]``: each state's optimised action of largest value (the ``max_q_value`` strategy)."""
    return jnp.take_along_axis(actions, jnp.argmax(values, axis=1)[:, None, None], axis=1)[:, 0]


def optimised_policy(nets: Networks, config: PARLConfig, base_params, critic_params, observations, key):
    candidates = base_samples(nets, config, base_params, observations, key)
    actions, values, info = optimise_actions(nets, config, critic_params, observations, candidates)
    return best_action(actions, values), info


# ---------------------------------------------------------------------------------------------------------------
# Losses


def base_policy_loss(base_params: dict, nets: Networks, config: PARLConfig, observations, targets):
    """The base policy's own supervised loss on target actions: NLL (gaussian) or squared error (deterministic)."""
    if config.base_policy == "gaussian":
        mean, log_std = nets.base.apply(base_params, observations)
        loss = -tanh_gaussian_log_prob(targets, mean, log_std).mean()
    else:
        loss = jnp.square(nets.base.apply(base_params, observations) - targets).sum(-1).mean()
    return loss, {"base/loss": loss}


def distillation_targets(nets: Networks, config: PARLConfig, state: PARLState, batch: Batch, key: jax.Array):
    """One optimised action per row: the ``k`` optimised actions with the dataset action in place of the worst,
    then a softmax(Q) draw (or the best with ``distill_argmax``)."""
    sample_key, pick_key = jax.random.split(key)
    observations = batch["observations"]
    candidates = base_samples(nets, config, state.base_params, observations, sample_key)
    actions, values, info = optimise_actions(nets, config, state.critic_params, observations, candidates)
    worst = jnp.argmin(values, axis=1)
    data_action = jnp.clip(batch["actions"], -1.0, 1.0)
    data_value = critic_value(nets, config, state.critic_params, observations, data_action[:, None])[:, 0]
    rows = jnp.arange(actions.shape[0])
    actions = actions.at[rows, worst].set(data_action)
    values = values.at[rows, worst].set(data_value)
    if config.distill_argmax:
        choice = jnp.argmax(values, axis=1)
    else:
        choice = jax.random.categorical(pick_key, values, axis=1)
    info["distill/data_chosen"] = (choice == worst).mean()
    targets = jnp.take_along_axis(actions, choice[:, None, None], axis=1)[:, 0]
    return jax.lax.stop_gradient(targets), info


def subset_target_q(nets: Networks, config: PARLConfig, target_params: dict, key, observations, actions):
    """The minimum over ``num_min_critics`` target critics drawn without replacement."""
    members = jax.random.choice(key, config.num_critics, (config.num_min_critics,), replace=False)
    subset = jax.tree_util.tree_map(lambda p: p[members], target_params)
    return nets.target_subset.apply(subset, observations, actions).min(axis=0)


def critic_loss(critic_params: dict, nets: Networks, config: PARLConfig, batch: Batch, target, proposals, members):
    random_actions, policy_action, next_policy_action = proposals
    obs, n = batch["observations"], config.n_cql_actions
    q_data = nets.critic.apply(critic_params, obs, batch["actions"])  # [N, B]
    td_loss = jnp.square(q_data - target).mean()
    b = obs.shape[0]
    q_random = nets.critic.apply(critic_params, jnp.repeat(obs, n, axis=0), random_actions.reshape(b * n, -1))
    q_random = q_random.reshape(-1, b, n)
    q_policy = nets.critic.apply(critic_params, obs, policy_action)  # [N, B]
    q_next = nets.critic.apply(critic_params, obs, next_policy_action)
    info = {}
    if config.calibrated:
        bound = batch["mc_returns"][None]
        info["cql/bound_active"] = ((q_policy < bound).mean() + (q_next < bound).mean()) / 2
        q_policy, q_next = jnp.maximum(q_policy, bound), jnp.maximum(q_next, bound)
    # n copies of each policy action: log(n e^q) = q + log n; the official code subtracts the log of the number of
    # terms (3n + 1) without importance sampling
    log_n = jnp.log(float(n))
    stacked = jnp.concatenate(
        [q_random, q_data[..., None], (q_policy + log_n)[..., None], (q_next + log_n)[..., None]], axis=-1
    )
    soft_max = jax.scipy.special.logsumexp(stacked, axis=-1) - jnp.log(3.0 * n + 1.0)
    gap = (soft_max - q_data).mean(axis=1)  # [N]
    # as the official code, the penalty is on a random subset of num_min_critics members (critic_subsample_size)
    loss = td_loss + config.cql_alpha * gap[members].mean()
    info |= {
        "critic/loss": loss,
        "critic/td_loss": td_loss,
        "critic/q_mean": q_data.mean(),
        "cql/gap": gap.mean(),
        "cql/q_random": q_random.mean(),
        "cql/q_policy": q_policy.mean(),
    }
    return loss, info


# ---------------------------------------------------------------------------------------------------------------


def update(state: PARLState, batch: Batch) -> tuple[PARLState, Metrics]:
    config, nets = state.config, networks(state.config, state.spec)
    rng, distill_key, policy_key, next_key, random_key, subset_key, penalty_key = jax.random.split(state.rng, 7)

    # 1. The base policy: clone the data's actions, or distil optimised ones.
    if config.distill:
        targets, base_info = distillation_targets(nets, config, state, batch, distill_key)
    else:
        targets, base_info = jnp.clip(batch["actions"], -1.0, 1.0), {}
    (_, info), grads = jax.value_and_grad(base_policy_loss, has_aux=True)(
        state.base_params, nets, config, batch["observations"], targets
    )
    base_params, base_opt = apply_gradients(nets.base_tx, state.base_params, state.base_opt, grads)
    base_info |= {**info, "base/grad_norm": global_norm(grads)}

    # 2. The critic, with pi_opt from the updated base policy and the current critic.
    policy_action, opt_info = optimised_policy(
        nets, config, base_params, state.critic_params, batch["observations"], policy_key
    )
    next_action, _ = optimised_policy(
        nets, config, base_params, state.critic_params, batch["next_observations"], next_key
    )
    next_q = subset_target_q(
        nets, config, state.target_critic_params, subset_key, batch["next_observations"], next_action
    )
    target = td_target(batch["rewards"], batch["terminals"], next_q, config.discount)
    b, a = batch["actions"].shape
    random_actions = jax.random.uniform(random_key, (b, config.n_cql_actions, a), minval=-1.0, maxval=1.0)
    proposals = jax.lax.stop_gradient((random_actions, policy_action, next_action))
    members = jax.random.choice(penalty_key, config.num_critics, (config.num_min_critics,), replace=False)
    (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic_params, nets, config, batch, target, proposals, members
    )
    critic_params, critic_opt = apply_gradients(nets.critic_tx, state.critic_params, state.critic_opt, grads)
    critic_info["critic/grad_norm"] = global_norm(grads)
    target_critic_params = polyak_update(state.target_critic_params, critic_params, config.tau)

    new_state = state.replace(
        base_params=base_params,
        base_opt=base_opt,
        critic_params=critic_params,
        critic_opt=critic_opt,
        target_critic_params=target_critic_params,
        step=state.step + 1,
        rng=rng,
    )
    return new_state, {**base_info, **critic_info, **opt_info}


def act(state: PARLState, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """pi_opt: the best of the optimised base-policy samples. Acting and evaluation both take the best (the official
    ``max_q_value`` strategy); the base policy's sampling is where exploration comes from. Deterministic acting
    draws the base samples with one fixed key, so that the policy is a function of the state (the official
    evaluation draws fresh samples)."""
    nets = networks(state.config, state.spec)
    if deterministic:
        key = jax.random.PRNGKey(0)
    action, _ = optimised_policy(nets, state.config, state.base_params, state.critic_params, observations, key)
    return action


def online_config(config: PARLConfig) -> PARLConfig:
    """Fine-tuning's online phase: the base policy distils optimised actions (at ``distill_lr``), and the
    conservative weight becomes ``cql_alpha_online`` when set."""
    alpha = config.cql_alpha if config.cql_alpha_online < 0 else config.cql_alpha_online
    return dataclasses.replace(config, distill=True, cql_alpha=alpha, cql_alpha_online=-1.0)


ALGORITHM = Algorithm(
    name="pa-rl",
    description="PA-RL (Sobol Mark et al. 2024): any base policy, improved by action optimisation and distillation",
    config_class=PARLConfig,
    init=init,
    update=update,
    act=act,
    extra_columns=("mc_returns",),
    online_config=online_config,
)
