r"""Fitted Q Evaluation (Le, Voloshin & Yue, "Batch Policy Learning under Constraints", ICML 2019; as benchmarked in
Voloshin et al. 2019 and Fu et al., "Benchmarks for Deep Off-Policy Evaluation", ICLR 2021): the value of a fixed
policy :math:`\pi` estimated from logged data alone, without running it.

.. math::

    Q_{k+1} = \arg\min_Q \mathbb{E}_D\big[(Q(s, a) - r - \gamma (1 - d)\, \bar Q_k(s', \pi(s')))^2\big], \qquad
    \hat J(\pi) = \mathbb{E}_{s_0}\big[Q(s_0, \pi(s_0))\big]

over the dataset's episode starts :math:`s_0`, with :math:`\bar Q` a Polyak-averaged target, so
:math:`\hat J` estimates the **discounted** return of :math:`\pi` from the data's start states (compare it with the
discounted return of online rollouts, :func:`discounted_return`). Time-limit ends bootstrap, as in training.

**Steps and tau**: the target follows the critic with a time constant of 1/tau steps, so ``steps * tau`` is roughly
the number of Bellman backups, and a value with horizon 1/(1 - gamma) needs several times that many
(after n backups only 1 - gamma^n of a constant reward's value is there). The defaults, 20,000 steps at tau 0.02,
give 400 backups: 98% at gamma 0.99. The TD-learning default tau 0.005 gives only 100 in those steps, 63% of the value:
on hopper-medium it estimated a TD3+BC policy's discounted return at 143 against 267 online; tau 0.02 gave 272
(BENCHMARKS.md, "Off-policy evaluation"). A warning says when ``steps * tau`` is under 3/(1 - gamma).

**Confidence interval**: ``members`` critics are fitted at once (vmapped): member 0 on the data as it is (the point
estimate), the others on bootstrap resamples of the data's episodes (each episode weighted by how often a resample
draws it, in the loss and in the start states). The interval is the percentile interval of the bootstrap members'
estimates. Only the data's sampling error is covered, not the error of the function class.

The policy is any callable from raw observations to raw actions (e.g. an offrl checkpoint's
``offrl.train.load_policy``); its actions at every next state and start state are computed once. Observations are
standardised with the dataset's statistics and continuous actions scaled to [-1, 1] by the action bounds (discrete
actions become one-hot) before the critic sees them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from offrl.algos.base import config_field, require
from offrl.data.dataset import Dataset
from offrl.nn.networks import Ensemble, QNetwork
from offrl.nn.updates import copy_tree, polyak_update


@dataclass(frozen=True)
class FQEConfig:
    discount: float = config_field(0.99, "discount factor of the estimated value")
    steps: int = config_field(20_000, "gradient steps")
    batch_size: int = config_field(256, "transitions per step")
    learning_rate: float = config_field(3e-4, "Adam learning rate")
    hidden_dims: tuple[int, ...] = config_field((256, 256), "critic hidden widths")
    layer_norm: bool = config_field(True, "LayerNorm in the critic")
    tau: float = config_field(0.02, "Polyak rate of the target critic (steps * tau ~ Bellman backups)")
    members: int = config_field(10, "critics: one on the data, the rest on bootstrap resamples")
    confidence: float = config_field(0.95, "level of the bootstrap interval")
    steps_per_call: int = config_field(1000, "steps per jitted call")
    seed: int = config_field(0, "seed of the bootstrap resamples, batches and initialisation")

    def __post_init__(self) -> None:
        require(0.0 <= self.discount < 1.0, f"discount must be in [0, 1), got {self.discount}")
        require(self.steps >= 1 and self.batch_size >= 1, "steps and batch_size must be >= 1")
        require(self.members >= 1, f"members must be >= 1, got {self.members}")
        require(0.0 < self.confidence < 1.0, f"confidence must be in (0, 1), got {self.confidence}")
        require(self.steps_per_call >= 1, "steps_per_call must be >= 1")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}")


@dataclass(frozen=True)
class FQEResult:
    estimate: float  # member 0: the fit on the data itself
    low: float
    high: float
    member_estimates: np.ndarray  # [members]; [1:] are the bootstrap fits
    td_loss: float  # member 0's mean squared TD error on the last batch; far above other policies' on the same
    # data, it marks a fit that has not settled, whose estimate is not to be trusted
    discount: float
    seconds: float

    def summary(self) -> dict[str, float]:
        return {"fqe/estimate": self.estimate, "fqe/low": self.low, "fqe/high": self.high,
                "fqe/td_loss": self.td_loss, "fqe/discount": self.discount}  # fmt: skip


def _inputs(dataset: Dataset) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The observation and action encodings the critic sees."""
    obs = dataset.observations.reshape(dataset.size, -1).astype(np.float64)
    mean, std = obs.mean(0), obs.std(0) + 1e-3

    def encode_obs(o: np.ndarray) -> np.ndarray:
        return ((np.asarray(o).reshape(len(o), -1) - mean) / std).astype(np.float32)

    space = dataset.action_space
    if dataset.discrete:

        def encode_actions(a: np.ndarray) -> np.ndarray:
            return np.eye(space.n, dtype=np.float32)[np.asarray(a).astype(np.int64).reshape(-1)]

    else:
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        finite = np.isfinite(low) & np.isfinite(high) & (high > low)
        data = dataset.actions.reshape(dataset.size, -1)
        low = np.where(finite, low, data.min(0))
        high = np.where(finite, high, np.maximum(data.max(0), data.min(0) + 1e-6))

        def encode_actions(a: np.ndarray) -> np.ndarray:
            return (2.0 * (np.asarray(a).reshape(len(a), -1) - low) / (high - low) - 1.0).astype(np.float32)

    return encode_obs, encode_actions


def bootstrap_weights(dataset: Dataset, members: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per member, the weight of every row and of every episode: member 0 all ones; the others the number of times
    a resample of the episodes (with replacement) draws the row's episode."""
    episodes = dataset.num_episodes
    counts = np.ones((members, episodes))
    for m in range(1, members):
        counts[m] = np.bincount(rng.integers(0, episodes, episodes), minlength=episodes)
    lengths = dataset.episode_ends - dataset.episode_starts + 1
    return np.repeat(counts, lengths, axis=1).astype(np.float32), counts.astype(np.float32)


def fitted_q_evaluation(
    dataset: Dataset, policy: Callable[[np.ndarray], np.ndarray], config: FQEConfig | None = None
) -> FQEResult:
    """Estimate the discounted return of ``policy`` from its episode starts in ``dataset``, with an interval."""
    config = config or FQEConfig()
    check = getattr(policy, "check_data", None)  # an offrl policy names what does not fit
    if check is not None:
        check(dataset)
    horizon = 1.0 / (1.0 - config.discount)
    if config.steps * config.tau < 3.0 * horizon:
        warnings.warn(
            f"FQE: steps * tau = {config.steps * config.tau:.0f} Bellman backups for a horizon of {horizon:.0f} "
            f"steps (discount {config.discount}): the estimate will miss part of the value; raise steps or tau "
            f"(so that steps * tau >= {3.0 * horizon:.0f})",
            stacklevel=2,
        )
    start = time.perf_counter()
    encode_obs, encode_actions = _inputs(dataset)
    rng = np.random.default_rng(config.seed)
    row_weights, episode_weights = bootstrap_weights(dataset, config.members, rng)
    starts = dataset.observations[dataset.episode_starts]
    data = {
        "observations": jnp.asarray(encode_obs(dataset.observations)),
        "actions": jnp.asarray(encode_actions(dataset.actions)),
        "rewards": jnp.asarray(dataset.rewards, jnp.float32),
        "terminals": jnp.asarray(dataset.terminals, jnp.float32),
        "next_observations": jnp.asarray(encode_obs(dataset.next_observations)),
        "next_actions": jnp.asarray(encode_actions(policy(dataset.next_observations))),
        "weights": jnp.asarray(row_weights.T),  # [N, members]
    }
    start_obs = jnp.asarray(encode_obs(starts))
    start_actions = jnp.asarray(encode_actions(policy(starts)))

    critic = Ensemble(QNetwork, config.members)(config.hidden_dims, layer_norm=config.layer_norm)
    tx = optax.adam(config.learning_rate)
    key = jax.random.PRNGKey(config.seed)
    params = critic.init(key, data["observations"][:1], data["actions"][:1])
    state = (params, copy_tree(params), tx.init(params), jax.random.fold_in(key, 1))

    def step(carry, _):
        params, target, opt, key = carry
        key, batch_key = jax.random.split(key)
        idx = jax.random.randint(batch_key, (config.batch_size,), 0, dataset.size)
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        next_q = critic.apply(target, batch["next_observations"], batch["next_actions"])  # [M, B]
        y = batch["rewards"][None] + config.discount * (1.0 - batch["terminals"][None]) * next_q
        w = batch["weights"].T  # [M, B]

        def loss(p):
            q = critic.apply(p, batch["observations"], batch["actions"])
            per_member = (w * jnp.square(q - jax.lax.stop_gradient(y))).sum(1) / jnp.maximum(w.sum(1), 1.0)
            return per_member.sum(), per_member[0]

        (_, member0_loss), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, updates)
        return (params, polyak_update(target, params, config.tau), opt, key), member0_loss

    run = jax.jit(lambda s, n: jax.lax.scan(step, s, None, length=n), static_argnums=1)
    done, losses = 0, []
    while done < config.steps:
        n = min(config.steps_per_call, config.steps - done)
        state, chunk = run(state, n)
        losses.append(float(chunk[-1]))
        done += n
    values = np.asarray(critic.apply(state[0], start_obs, start_actions))  # [M, episodes]
    estimates = (values * episode_weights).sum(1) / episode_weights.sum(1)
    alpha = (1.0 - config.confidence) / 2.0
    bootstrap = estimates[1:] if config.members > 1 else estimates
    low, high = np.quantile(bootstrap, [alpha, 1.0 - alpha])
    return FQEResult(
        estimate=float(estimates[0]),
        low=float(low),
        high=float(high),
        member_estimates=estimates,
        td_loss=losses[-1],
        discount=config.discount,
        seconds=time.perf_counter() - start,
    )


def discounted_return(rewards: np.ndarray, discount: float) -> float:
    """sum_t discount^t r_t of one episode (to compare an online rollout with an FQE estimate)."""
    rewards = np.asarray(rewards, np.float64)
    return float((rewards * discount ** np.arange(len(rewards))).sum())
