r"""HNPG: hybrid natural policy gradient (Zhou, Sekhari, Song & Sun, "Offline Data Enhanced On-Policy Policy Gradient
with Provable Guarantees", ICLR 2024, arXiv:2311.08384; official code github.com/YifeiZhou02/HNPG, ``trpo.py``,
``main.py``), registered for its own runner (:func:`train_hnpg`): it is on-policy, so it does not take the
off-policy ``update(state, batch)`` of the other algorithms.

Finite horizon H, one Gaussian policy :math:`\pi_h` and one critic :math:`Q_h` per step (stacked and vmapped over h),
undiscounted. Each iteration rolls out the current policies for ``batch_size`` environment steps, then:

1. **Hybrid fitted policy evaluation** (HPE), for :math:`h = H-1, \dots, 0`: ``q_steps`` Adam steps (a fresh
   optimiser each iteration, learning rate 3e-4) on

   .. math::

       L(Q_h) = \mathbb{E}_{\text{on}}\big[(Q_h(s, a) - G)^2\big]
           + \mathbb{E}_{\text{off}}\big[(Q_h(s, a) - r - Q_{h+1}(s', a'))^2\big], \quad a' \sim \pi_{h+1}(s')

   with G the on-policy return-to-go and the offline target :math:`r` alone at :math:`h = H-1`; the offline batch
   at step h has ``batch_size / H`` rows.
2. Advantages: on-policy by GAE (:math:`\lambda` = 0.97) with :math:`V_h(s) = \mathbb{E}_{a \sim \pi_h} Q_h(s, a)`
   estimated from 10 actions; on offline states a fresh :math:`a' \sim \pi_h(s)` with :math:`A = Q_h(s, a') -
   V_h(s)`.
3. One **NPG/TRPO step** per h on the on-policy and offline rows together: surrogate
   :math:`-\mathbb{E}[A\,\pi/\pi_{old}]`, KL trust region ``max_kl`` 0.01, Fisher-vector products with damping 0.1,
   10 conjugate-gradient iterations, a backtracking line search of 10 halvings accepting an improvement of at
   least 0.1 of the expected one.

``hybrid=False`` drops every offline term: on-policy NPG (TRPO) with the same critics, the method's baseline.

Networks (official): policy MLP 16-16 tanh, its mean layer initialised at 0.1 of the usual scale, a learned
state-independent log std starting at 0; critic MLP 64-64 tanh. Defaults: ``batch_size`` 1000, ``q_steps`` 30,
``max_kl`` 0.01, damping 0.1, lambda 0.97, gamma 1.

Deviations: the conjugate gradient always runs its 10 iterations (the official stops below a residual of 1e-10,
which only saves time); the critic's L2 penalty (default 0) is not offered; initialisation is flax's (orthogonal for
the hidden layers) rather than PyTorch's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from offrl.algos.base import config_field, require
from offrl.nn.networks import default_init
from offrl.nn.policies import gaussian_log_prob


@dataclass(frozen=True)
class HNPGConfig:
    hybrid: bool = config_field(True, "use the offline data (off: on-policy NPG, the baseline)")
    batch_size: int = config_field(1000, "environment steps per iteration")
    q_steps: int = config_field(30, "Adam steps per critic and iteration")
    q_lr: float = config_field(3e-4, "critic learning rate")
    max_kl: float = config_field(0.01, "trust region of each policy step")
    damping: float = config_field(0.1, "damping of the Fisher-vector products")
    cg_iterations: int = config_field(10, "conjugate-gradient iterations")
    backtracks: int = config_field(10, "halvings tried by the line search")
    accept_ratio: float = config_field(0.1, "least share of the expected improvement the line search accepts")
    gae_lambda: float = config_field(0.97, "GAE lambda")
    value_samples: int = config_field(10, "actions sampled to estimate V_h(s) from Q_h")
    policy_hidden: tuple[int, ...] = config_field((16, 16), "policy hidden widths (tanh)")
    critic_hidden: tuple[int, ...] = config_field((64, 64), "critic hidden widths (tanh)")

    def __post_init__(self) -> None:
        require(self.batch_size >= 1 and self.q_steps >= 1, "batch_size and q_steps must be >= 1")
        require(self.max_kl > 0 and self.damping >= 0, "max_kl must be > 0 and damping >= 0")
        require(self.cg_iterations >= 1 and self.backtracks >= 1, "cg_iterations and backtracks must be >= 1")
        require(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        require(self.value_samples >= 1, "value_samples must be >= 1")


class Policy(nn.Module):
    hidden: tuple[int, ...]
    action_dim: int

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = observations
        for width in self.hidden:
            x = jnp.tanh(nn.Dense(width, kernel_init=default_init(1.0))(x))
        mean = nn.Dense(self.action_dim, kernel_init=default_init(0.1), bias_init=nn.initializers.zeros)(x)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return mean, jnp.broadcast_to(log_std, mean.shape)


class Critic(nn.Module):
    hidden: tuple[int, ...]

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([observations, actions], axis=-1)
        for width in self.hidden:
            x = jnp.tanh(nn.Dense(width, kernel_init=default_init(1.0))(x))
        return nn.Dense(1)(x)[..., 0]


def per_step(module: type[nn.Module], horizon: int) -> type[nn.Module]:
    """``horizon`` copies of ``module``, copy h applied to input slice h (inputs ``[H, ...]``)."""
    return nn.vmap(module, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=0, out_axes=0,
                   axis_size=horizon)  # fmt: skip


class HNPGState(struct.PyTreeNode):
    policy_params: dict  # stacked over h
    critic_params: dict  # stacked over h
    iteration: jax.Array
    rng: jax.Array
    config: HNPGConfig = struct.field(pytree_node=False)
    horizon: int = struct.field(pytree_node=False)
    observation_dim: int = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)

    @property
    def policy(self) -> Policy:
        return Policy(self.config.policy_hidden, self.action_dim)

    @property
    def critic(self) -> Critic:
        return Critic(self.config.critic_hidden)


def init(key: jax.Array, horizon: int, observation_dim: int, action_dim: int, config: HNPGConfig) -> HNPGState:
    k_policy, k_critic, key = jax.random.split(key, 3)
    obs, act = jnp.zeros((horizon, 1, observation_dim)), jnp.zeros((horizon, 1, action_dim))
    policies = per_step(Policy, horizon)(config.policy_hidden, action_dim)
    critics = per_step(Critic, horizon)(config.critic_hidden)
    return HNPGState(
        policy_params=policies.init(k_policy, obs),
        critic_params=critics.init(k_critic, obs, act),
        iteration=jnp.zeros((), jnp.int32),
        rng=key,
        config=config,
        horizon=horizon,
        observation_dim=observation_dim,
        action_dim=action_dim,
    )


def _at(params: Any, h: jax.Array | int) -> Any:
    return jax.tree_util.tree_map(lambda p: p[h], params)


@jax.jit
def act(state: HNPGState, observations: jax.Array, h: jax.Array, key: jax.Array) -> jax.Array:
    """Actions of policy h (a Gaussian sample, unbounded, as the official policies)."""
    mean, log_std = state.policy.apply(_at(state.policy_params, h), observations)
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def _values(policy: Policy, critic: Critic, policy_params, critic_params, observations, key, samples: int):
    """V_h(s) = E_{a ~ pi_h} Q_h(s, a) from ``samples`` actions, for one step h: ``[n]``."""
    mean, log_std = policy.apply(policy_params, observations)
    noise = jax.random.normal(key, (samples, *mean.shape))
    actions = mean[None] + jnp.exp(log_std)[None] * noise
    q = jax.vmap(lambda a: critic.apply(critic_params, observations, a))(actions)
    return q.mean(axis=0)


def gae(rewards: jax.Array, values: jax.Array, lam: float) -> tuple[jax.Array, jax.Array]:
    """Undiscounted returns-to-go and GAE advantages of ``[H, N]`` episodes that all last H steps."""

    def backward(carry, inputs):
        next_return, next_value, next_advantage = carry
        r, v = inputs
        ret = r + next_return
        advantage = r + next_value - v + lam * next_advantage
        return (ret, v, advantage), (ret, advantage)

    zeros = jnp.zeros(rewards.shape[1])
    _, (returns, advantages) = jax.lax.scan(backward, (zeros, zeros, zeros), (rewards, values), reverse=True)
    return returns, advantages


def _npg_step(policy: Policy, config: HNPGConfig, params, observations, actions, advantages):
    """One TRPO step of one policy (flat parameters, conjugate gradient on Fisher-vector products, line search)."""
    flat, unravel = ravel_pytree(params)
    mean_old, log_std_old = jax.lax.stop_gradient(policy.apply(params, observations))
    log_prob_old = gaussian_log_prob(actions, mean_old, log_std_old)

    def loss(x):
        mean, log_std = policy.apply(unravel(x), observations)
        return -(advantages * jnp.exp(gaussian_log_prob(actions, mean, log_std) - log_prob_old)).mean()

    def kl(x):
        mean, log_std = policy.apply(unravel(x), observations)
        std_old, std = jnp.exp(log_std_old), jnp.exp(log_std)
        return (log_std - log_std_old + (std_old**2 + (mean_old - mean) ** 2) / (2 * std**2) - 0.5).sum(-1).mean()

    def fisher_vector(v):
        return jax.jvp(jax.grad(kl), (flat,), (v,))[1] + config.damping * v

    grad = jax.grad(loss)(flat)

    def cg_iteration(carry, _):
        x, r, p, rdotr = carry
        ap = fisher_vector(p)
        alpha = rdotr / jnp.maximum(jnp.dot(p, ap), 1e-30)
        x, r = x + alpha * p, r - alpha * ap
        new_rdotr = jnp.dot(r, r)
        p = r + new_rdotr / jnp.maximum(rdotr, 1e-30) * p
        return (x, r, p, new_rdotr), None

    b = -grad
    (step_dir, _, _, _), _ = jax.lax.scan(
        cg_iteration, (jnp.zeros_like(b), b, b, jnp.dot(b, b)), None, length=config.cg_iterations
    )
    shs = 0.5 * jnp.dot(step_dir, fisher_vector(step_dir))
    lagrange = jnp.sqrt(jnp.maximum(shs, 1e-30) / config.max_kl)
    full_step = step_dir / lagrange
    expected = jnp.dot(-grad, step_dir) / lagrange
    before = loss(flat)
    fractions = 0.5 ** jnp.arange(config.backtracks)
    after = jax.vmap(lambda f: loss(flat + f * full_step))(fractions)
    improvement = before - after
    ok = (improvement / (expected * fractions) > config.accept_ratio) & (improvement > 0)
    first = jnp.argmax(ok)
    new_flat = jnp.where(ok.any(), flat + fractions[first] * full_step, flat)
    return unravel(new_flat), {"npg/accepted": ok.any().astype(jnp.float32), "npg/loss_before": before}


@jax.jit
def update(state: HNPGState, on: dict, off: dict) -> tuple[HNPGState, dict]:
    """One HNPG iteration on ``on`` (``[H, N]`` on-policy rows: observations, actions, rewards) and ``off``
    (``[H, M]`` offline rows: observations, actions, rewards, next_observations)."""
    config, policy, critic = state.config, state.policy, state.critic
    horizon = state.horizon
    keys = jax.random.split(state.rng, 6)
    rng, value_key, target_key, value_key2, off_action_key, off_value_key = keys

    def all_values(critic_params, observations, key):
        ks = jax.random.split(key, horizon)
        return jax.vmap(lambda pp, cp, o, k: _values(policy, critic, pp, cp, o, k, config.value_samples))(
            state.policy_params, critic_params, observations, ks
        )

    values = all_values(state.critic_params, on["observations"], value_key)
    returns, _ = gae(on["rewards"], values, config.gae_lambda)

    # 1. Hybrid fitted policy evaluation, last step first.
    tx = optax.adam(config.q_lr)

    def fit(h, critic_params):
        params_h = _at(critic_params, h)
        next_h = jnp.minimum(h + 1, horizon - 1)
        mean, log_std = policy.apply(_at(state.policy_params, next_h), off["next_observations"][h])
        next_actions = mean + jnp.exp(log_std) * jax.random.normal(jax.random.fold_in(target_key, h), mean.shape)
        next_q = critic.apply(_at(critic_params, next_h), off["next_observations"][h], next_actions)
        off_target = off["rewards"][h] + jnp.where(h == horizon - 1, 0.0, next_q)

        def q_loss(p):
            on_loss = jnp.square(critic.apply(p, on["observations"][h], on["actions"][h]) - returns[h]).mean()
            off_loss = jnp.square(critic.apply(p, off["observations"][h], off["actions"][h]) - off_target).mean()
            return on_loss + (off_loss if config.hybrid else 0.0), (on_loss, off_loss)

        def adam_step(_, carry):
            p, opt = carry
            grads, _ = jax.grad(q_loss, has_aux=True)(p)
            updates, opt = tx.update(grads, opt, p)
            return optax.apply_updates(p, updates), opt

        params_h, _ = jax.lax.fori_loop(0, config.q_steps, adam_step, (params_h, tx.init(params_h)))
        _, (on_loss, off_loss) = q_loss(params_h)
        critic_params = jax.tree_util.tree_map(lambda all_, one: all_.at[h].set(one), critic_params, params_h)
        return critic_params, (on_loss, off_loss)

    def fit_backward(critic_params, h):
        return fit(h, critic_params)

    critic_params, (on_losses, off_losses) = jax.lax.scan(
        fit_backward, state.critic_params, jnp.arange(horizon - 1, -1, -1)
    )

    # 2. Advantages with the refitted critics: on-policy by GAE, offline from fresh actions.
    values = all_values(critic_params, on["observations"], value_key2)
    _, advantages = gae(on["rewards"], values, config.gae_lambda)
    mean, log_std = jax.vmap(policy.apply)(state.policy_params, off["observations"])
    off_actions = mean + jnp.exp(log_std) * jax.random.normal(off_action_key, mean.shape)
    off_q = jax.vmap(critic.apply)(critic_params, off["observations"], off_actions)
    off_advantages = off_q - all_values(critic_params, off["observations"], off_value_key)

    # 3. One NPG step per step h, on the on-policy and (hybrid) offline rows together.
    if config.hybrid:
        observations = jnp.concatenate([on["observations"], off["observations"]], axis=1)
        actions = jnp.concatenate([on["actions"], jax.lax.stop_gradient(off_actions)], axis=1)
        all_advantages = jnp.concatenate([advantages, off_advantages], axis=1)
    else:
        observations, actions, all_advantages = on["observations"], on["actions"], advantages
    policy_params, info = jax.vmap(lambda p, o, a, adv: _npg_step(policy, config, p, o, a, adv))(
        state.policy_params, observations, actions, jax.lax.stop_gradient(all_advantages)
    )
    metrics = {
        "hpe/on_loss": on_losses.mean(),
        "hpe/off_loss": off_losses.mean(),
        "npg/accepted": info["npg/accepted"].mean(),
        "train/return": on["rewards"].sum(0).mean(),
    }
    new_state = state.replace(
        policy_params=policy_params, critic_params=critic_params, iteration=state.iteration + 1, rng=rng
    )
    return new_state, metrics


def rollout(state: HNPGState, lock: Any, episodes: int, key: jax.Array, seed: int) -> dict[str, np.ndarray]:
    """``episodes`` on-policy episodes of the current policies: ``[H, N]`` arrays."""
    obs = lock.reset(episodes, seed=seed)
    columns: dict[str, list] = {"observations": [], "actions": [], "rewards": []}
    done, h = False, 0
    while not done:
        actions = np.asarray(act(state, jnp.asarray(obs), jnp.asarray(h), jax.random.fold_in(key, h)))
        next_obs, rewards, done = lock.step(actions)
        columns["observations"].append(obs)
        columns["actions"].append(actions)
        columns["rewards"].append(rewards)
        obs, h = next_obs, h + 1
    return {name: np.stack(values) for name, values in columns.items()}


def train_hnpg(
    lock: Any, offline: dict[str, np.ndarray] | None, config: HNPGConfig, iterations: int, seed: int = 0
) -> tuple[HNPGState, list[dict[str, float]]]:
    """Run HNPG (or NPG with ``hybrid=False``) on a :class:`~offrl.envs.combination_lock.VectorLock` for
    ``iterations`` iterations; ``offline`` is ``[H, N_off, ...]`` data (``collect_offline``). Returns the final state
    and one record per iteration (the mean return of its on-policy episodes, the critics' losses, wall time)."""
    if config.hybrid and offline is None:
        raise ValueError("hybrid HNPG needs offline data; use hybrid=False for on-policy NPG")
    horizon = lock.horizon
    episodes = max(config.batch_size // horizon, 1)
    state = init(jax.random.PRNGKey(seed), horizon, lock.observation_dim, lock.num_actions, config)
    rng = np.random.default_rng(seed)
    history = []
    start = time.perf_counter()
    for i in range(iterations):
        on = rollout(state, lock, episodes, jax.random.fold_in(jax.random.PRNGKey(seed + 1), i), seed * 1_000_003 + i)
        if offline is not None:
            rows = rng.integers(0, offline["rewards"].shape[1], (horizon, episodes))
            off = {k: np.take_along_axis(v, rows.reshape(horizon, episodes, *([1] * (v.ndim - 2))), 1)
                   for k, v in offline.items()}  # fmt: skip
        else:
            off = {
                "observations": np.zeros((horizon, 1, lock.observation_dim), np.float32),
                "actions": np.zeros((horizon, 1, lock.num_actions), np.float32),
                "rewards": np.zeros((horizon, 1), np.float32),
                "next_observations": np.zeros((horizon, 1, lock.observation_dim), np.float32),
            }
        state, metrics = update(state, on, off)
        record = {k: float(v) for k, v in metrics.items()}
        record |= {"iteration": i + 1, "seconds": time.perf_counter() - start}
        history.append(record)
    return state, history
