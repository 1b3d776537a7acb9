"""The continuous combination lock of HNPG (Zhou, Sekhari, Song & Sun 2023; official ``lock_continuous.py``): a
hard-exploration, rich-observation benchmark for hybrid (offline + online) policy gradients.

Latent states A, B and a dead state C; horizon H. At step h the agent's action (a ``num_actions``-vector) becomes a
discrete choice by a softmax with temperature 0.1. In A (B) the one right choice ``opt_a[h]`` (``opt_b[h]``) keeps the
agent alive, moving it to A or B with probability 1/2 each; any other choice sends it to C for good, where dying
pays a distracting ``anti_reward`` 0.1 with probability 1/2. Only a right choice at the last step pays 1. So a
random policy reaches the reward with probability ``num_actions^-H``.

Observations: a noisy one-hot of (latent state, h) in ``2^ceil(log2(H + 4))`` dimensions, rotated by a Hadamard
matrix. Episodes last exactly H steps. :class:`VectorLock` steps ``n`` independent episodes together (numpy);
the lock itself (the right sequences) is drawn from ``lock_seed``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

A, B, DEAD = 0, 1, 2


class VectorLock:
    def __init__(
        self,
        horizon: int = 10,
        num_actions: int = 10,
        *,
        lock_seed: int = 0,
        p_switch: float = 0.5,
        p_anti_reward: float = 0.5,
        anti_reward: float = 0.1,
        noise: float = 0.1,
        temperature: float = 0.1,
    ):
        if horizon < 1 or num_actions < 2:
            raise ValueError(f"need horizon >= 1 and num_actions >= 2, got {horizon} and {num_actions}")
        self.horizon, self.num_actions = horizon, num_actions
        self.p_switch, self.p_anti_reward, self.anti_reward = p_switch, p_anti_reward, anti_reward
        self.noise, self.temperature = noise, temperature
        self.observation_dim = 2 ** int(math.ceil(math.log2(horizon + 4)))
        self.rotation = scipy.linalg.hadamard(self.observation_dim).astype(np.float64)
        lock = np.random.default_rng(lock_seed)
        self.opt_a = lock.integers(0, num_actions, horizon)
        self.opt_b = lock.integers(0, num_actions, horizon)
        self.rng = np.random.default_rng(0)
        self.state = np.zeros(0, np.int64)
        self.h = 0

    def observe(self) -> np.ndarray:
        n = len(self.state)
        x = np.zeros((n, self.observation_dim))
        x[:, : self.horizon + 3] = self.rng.normal(0.0, self.noise, (n, self.horizon + 3))
        x[np.arange(n), self.state] += 1.0
        x[:, 3 + min(self.h, self.horizon)] += 1.0
        return (x @ self.rotation.T).astype(np.float32)

    def reset(self, n: int, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.h = 0
        self.state = np.where(self.rng.random(n) < self.p_switch, A, B)
        return self.observe()

    def choices(self, actions: np.ndarray) -> np.ndarray:
        """The discrete choices the action vectors become (softmax with the temperature, then a draw)."""
        logits = np.asarray(actions, np.float64) / self.temperature
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        u = self.rng.random((len(probs), 1))
        return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), self.num_actions - 1)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(observations, rewards, done)``; ``done`` after H steps (every episode has length H)."""
        if self.h >= self.horizon:
            raise RuntimeError("the episode is over: reset first")
        choice = self.choices(actions)
        alive = self.state != DEAD
        right = np.where(self.state == A, choice == self.opt_a[self.h], choice == self.opt_b[self.h]) & alive
        dies = alive & ~right
        anti = dies & (self.rng.random(len(choice)) < self.p_anti_reward)
        last = self.h == self.horizon - 1
        rewards = np.where(anti, self.anti_reward, 0.0)
        if last:
            rewards = np.where(right, 1.0, rewards)
            next_state = np.where(right, self.state, DEAD)
        else:
            switch = self.rng.random(len(choice)) < self.p_switch
            next_state = np.where(right, np.where(switch, 1 - self.state, self.state), DEAD)
        self.state = next_state
        self.h += 1
        return self.observe(), rewards.astype(np.float32), self.h == self.horizon

    def optimal_actions(self, epsilon: float = 0.0) -> np.ndarray:
        """Action vectors of HNPG's data-collection policy at the current step: one-hot on the right choice, or
        with probability ``epsilon`` a uniform random vector in [0, 1]^num_actions (official ``eps_greedy_actions``)."""
        h = min(self.h, self.horizon - 1)
        right = np.where(self.state == B, self.opt_b[h], self.opt_a[h])
        actions = np.zeros((len(right), self.num_actions), np.float32)
        actions[np.arange(len(right)), right] = 1.0
        explore = self.rng.random(len(right)) < epsilon
        actions[explore] = self.rng.random((int(explore.sum()), self.num_actions))
        return actions


def collect_offline(lock: VectorLock, episodes: int, epsilon: float, seed: int) -> dict[str, np.ndarray]:
    """Episodes of the epsilon-greedy optimal policy (HNPG's offline data: epsilon = 1/H), as ``[H, N, ...]``
    arrays: observations, actions, rewards, next_observations."""
    obs = lock.reset(episodes, seed=seed)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "rewards", "next_observations")}
    done = False
    while not done:
        actions = lock.optimal_actions(epsilon)
        next_obs, rewards, done = lock.step(actions)
        for name, value in zip(columns, (obs, actions, rewards, next_obs), strict=True):
            columns[name].append(value)
        obs = next_obs
    return {name: np.stack(values) for name, values in columns.items()}
