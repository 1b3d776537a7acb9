r"""The edge-of-reach diagnostic (Sims, Lu, Foerster & Teh, "The Edge-of-Reach Problem in Offline Model-Based
Reinforcement Learning", NeurIPS 2024; official code github.com/anyasims/edge-of-reach): the extension point
for model-based offline RL.

Model-based methods (MBPO, MOPO, MOBILE, RAVL) train the critic on k-step rollouts of a dynamics model started from
dataset states. A state reached only at the last step, :math:`s_k`, enters the Bellman targets
:math:`r + \gamma Q(s_k, \pi(s_k))` as a next state but is never a state the critic is trained on, so nothing
corrects its value: the critic bootstraps from it, its errors grow, and the policy chases them. This happens even
with the **true** dynamics, so the paper argues the uncertainty penalties of MOPO-style methods work mainly by
pushing these values down. The diagnostic:

- :func:`rollout` runs a policy for ``horizon`` steps in any :class:`DynamicsModel` (a learned ensemble, or the
  true dynamics of ``offrl.envs.dynamics``) from given start states;
- :func:`edge_of_reach` evaluates the critic's value :math:`V(s_t) = Q(s_t, \pi(s_t))` at every step
  :math:`t = 0..k` of the rollouts. The edge is step k; the states the critic trains on are steps 0..k-1 (and the
  dataset's). The report gives the mean value per step, the **gap** between the edge's mean value and the
  trained-on states' mean in units of the latter's standard deviation, and, with ``data_observations``, each step's
  median distance to the nearest dataset state. The edge's values are **inflated** when the gap exceeds
  ``threshold`` (1 standard deviation): the paper's symptom.

**Extension point.** The model-based trainers (their own issue) plug in here: a learned dynamics ensemble implements
:class:`DynamicsModel` (drawing one elite member per sample from ``key``), the trainer calls :func:`rollout` to fill
its model buffer and :func:`edge_of_reach` on a held batch of start states at its logging interval, and logs the
report's ``summary()``. :func:`checkpoint_value` reads the value function of any offrl checkpoint with a critic, so
the diagnostic also runs on finished runs (``offrl.envs.dynamics.PendulumDynamics`` gives true-dynamics rollouts on
Pendulum).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

ValueFn = Callable[[np.ndarray], np.ndarray]  # raw observations [n, d] -> V(s) [n]
PolicyFn = Callable[[np.ndarray], np.ndarray]  # raw observations [n, d] -> raw actions [n, a]


class DynamicsModel(Protocol):
    def step(
        self, key: jax.Array, observations: jax.Array, actions: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """A batch of transitions: (next_observations [n, d], rewards [n], terminals [n] bool)."""
        ...


@dataclass(frozen=True)
class Rollouts:
    observations: np.ndarray  # [n, k + 1, d]: s_0 .. s_k
    actions: np.ndarray  # [n, k, a]
    rewards: np.ndarray  # [n, k]
    terminals: np.ndarray  # [n, k] bool
    alive: np.ndarray  # [n, k + 1] bool: s_t was reached without an earlier terminal

    @property
    def horizon(self) -> int:
        return self.actions.shape[1]


def rollout(model: DynamicsModel, policy: PolicyFn, key: jax.Array, starts: np.ndarray, horizon: int) -> Rollouts:
    """``horizon`` steps of ``policy`` in ``model`` from every row of ``starts``; a rollout that reaches a terminal
    state stops there (its later steps are marked not alive)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    obs = np.asarray(starts, np.float32)
    observations, actions, rewards, terminals = [obs], [], [], []
    alive = [np.ones(len(obs), bool)]
    for t in range(horizon):
        action = np.asarray(policy(obs), np.float32).reshape(len(obs), -1)
        next_obs, reward, terminal = model.step(jax.random.fold_in(key, t), jnp.asarray(obs), jnp.asarray(action))
        obs = np.asarray(next_obs, np.float32)
        observations.append(obs)
        actions.append(action)
        rewards.append(np.asarray(reward, np.float32))
        terminals.append(np.asarray(terminal, bool))
        alive.append(alive[-1] & ~terminals[-1])
    return Rollouts(
        np.stack(observations, 1), np.stack(actions, 1), np.stack(rewards, 1), np.stack(terminals, 1),
        np.stack(alive, 1),
    )  # fmt: skip


@dataclass(frozen=True)
class EdgeOfReachReport:
    step_values: np.ndarray  # [k + 1]: mean V(s_t) over the rollouts alive at t
    gap: float  # (mean V at the edge - mean V at steps 0..k-1) / std of V at steps 0..k-1
    inflated: bool
    step_distances: np.ndarray | None  # [k + 1]: median distance of s_t to the nearest dataset state
    explanation: str

    def summary(self) -> dict[str, float]:
        out = {"edge_of_reach/gap": self.gap, "edge_of_reach/edge_value": float(self.step_values[-1]),
               "edge_of_reach/reach_value": float(self.step_values[:-1].mean())}  # fmt: skip
        if self.step_distances is not None:
            out["edge_of_reach/edge_distance"] = float(self.step_distances[-1])
        return out


def edge_of_reach(
    rollouts: Rollouts, value: ValueFn, data_observations: np.ndarray | None = None, threshold: float = 1.0
) -> EdgeOfReachReport:
    """Compare the critic's values at the rollouts' last states (the edge of reach) with those at the states it
    trains on."""
    n, k1, d = rollouts.observations.shape
    values = np.asarray(value(rollouts.observations.reshape(n * k1, d)), np.float64).reshape(n, k1)
    if not np.isfinite(values[rollouts.alive]).all():
        raise ValueError("the value function returned non-finite values on the rollouts")
    step_values = np.array([values[rollouts.alive[:, t], t].mean() if rollouts.alive[:, t].any() else np.nan
                            for t in range(k1)])  # fmt: skip
    inner = values[:, :-1][rollouts.alive[:, :-1]]
    edge = values[:, -1][rollouts.alive[:, -1]]
    if len(edge) == 0:
        raise ValueError("every rollout ended before the edge of reach; use a shorter horizon")
    gap = float((edge.mean() - inner.mean()) / max(inner.std(), 1e-8))
    distances = None
    if data_observations is not None:
        from scipy.spatial import cKDTree

        tree = cKDTree(np.asarray(data_observations, np.float64))
        distances = np.array([np.median(tree.query(rollouts.observations[rollouts.alive[:, t], t])[0])
                              for t in range(k1)])  # fmt: skip
    inflated = gap > threshold
    explanation = (
        f"the critic values the rollouts' last states (step {k1 - 1}, never trained on) at {edge.mean():.4g}, "
        f"{gap:+.2f} standard deviations from the states it trains on ({inner.mean():.4g})"
        + (": inflated, the edge-of-reach symptom" if inflated else ": not inflated")
    )
    return EdgeOfReachReport(step_values, gap, inflated, distances, explanation)


def checkpoint_value(path: str | Path) -> tuple[ValueFn, PolicyFn]:
    """The value function V(s) = Q(s, pi(s)) (mean over the critic ensemble, in training units) and the policy of
    an offrl checkpoint (a file, or a run directory's newest)."""
    from offrl.ope.workflow import critic_values
    from offrl.train import load_policy

    policy = load_policy(path)

    @jax.jit
    def _value(obs: jax.Array) -> jax.Array:
        actions = policy.algo.act(policy.agent, obs, jax.random.PRNGKey(0), True)
        return critic_values(policy.algo.name, policy.agent, obs, actions)

    def value(observations: np.ndarray) -> np.ndarray:
        return np.asarray(_value(jnp.asarray(policy.transforms.normalize_observations(np.asarray(observations)))))

    return value, policy
