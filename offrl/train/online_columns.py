"""The derived columns of online transitions (``offrl.data.columns`` computes them for a dataset), for fine-tuning
algorithms that read more than ``(s, a, r, s', d)``.

- ``next_actions`` (ReBRAC): the action the agent takes at the next step of the same episode. It is chosen in
  the same jitted call that stores the transition (after that call's updates), and written into the row there; at
  an episode's last row, as offline, the row's own action. While a row waits for it (during the updates of the call
  that stored it) it holds its own action.
- ``from_data``: 0.0 (the dataset's rows have 1.0): an online row is not logged data.
- ``mc_returns`` (Cal-QL): the discounted return-to-go from the row to the end of its episode, computed on the host
  when the episode ends, from the rewards the algorithm sees, and written into the episode's rows. An episode cut by
  a time limit or a checkpoint counts its unknown tail as zero, as offline. Until its episode ends a row holds the
  lowest float32, so the bound ``max(Q, G)`` leaves Q unchanged (the official Cal-QL collects whole trajectories
  before training on them; offrl updates at every environment step, so rows of a running episode can be sampled).

``is_expert`` has no online meaning: fine-tuning refuses algorithms that read it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from offrl.train import replay
from offrl.train.replay import ReplayBuffer

ONLINE_COLUMNS = ("mc_returns", "next_actions", "from_data")
NO_RETURN_YET = float(np.finfo(np.float32).min)


def check_supported(columns: tuple[str, ...], algo_name: str) -> None:
    unsupported = [name for name in columns if name not in ONLINE_COLUMNS]
    if unsupported:
        raise ValueError(
            f"{algo_name} reads {', '.join(unsupported)}, which online transitions do not have "
            f"(fine-tuning computes {', '.join(ONLINE_COLUMNS)} for them)"
        )


def extra_shapes(columns: tuple[str, ...], action_dim: int) -> dict[str, tuple[int, ...]]:
    return {name: ((action_dim,) if name == "next_actions" else ()) for name in columns}


def with_placeholders(rows: dict[str, np.ndarray], columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """New online rows with their derived columns' values before they are known."""
    out = dict(rows)
    if "next_actions" in columns:
        out["next_actions"] = np.asarray(rows["actions"], np.float32)
    if "mc_returns" in columns:
        out["mc_returns"] = np.full(len(rows["rewards"]), NO_RETURN_YET, np.float32)
    if "from_data" in columns:
        out["from_data"] = np.zeros(len(rows["rewards"]), np.float32)
    return out


def write_next_actions(buffer: ReplayBuffer, start: jax.Array, rows: dict, actions: jax.Array) -> ReplayBuffer:
    """Inside the jitted step: the rows just added at ``start`` get the actions chosen at their next observations,
    except rows that ended an episode (their next observation is a reset), which keep their own action."""
    n = rows["rewards"].shape[0]
    index = (start + jnp.arange(n)) % buffer.capacity
    done = (rows["terminals"] + rows["timeouts"]) > 0
    values = jnp.where(done[:, None], rows["actions"], actions)
    return replay.write(buffer, "next_actions", index, values)


def reset_next_actions(buffer: ReplayBuffer, rows: int) -> ReplayBuffer:
    """The newest ``rows`` rows end their episodes (a checkpoint cuts them): their next action is their own."""
    index = (buffer.position - 1 - jnp.arange(rows)) % buffer.capacity
    return replay.write(buffer, "next_actions", index, buffer.data["actions"][index])


class EpisodeReturns:
    """Host-side bookkeeping of the running episodes' rows and rewards, one stream per environment, to write their
    Monte-Carlo returns into the buffer when they end."""

    def __init__(self, num_envs: int, discount: float, capacity: int):
        self.discount = discount
        self.capacity = capacity
        self.rows_added = 0  # ordinal of the next row (counts every row ever added in this process)
        self.positions: list[list[int]] = [[] for _ in range(num_envs)]
        self.ordinals: list[list[int]] = [[] for _ in range(num_envs)]
        self.rewards: list[list[float]] = [[] for _ in range(num_envs)]
        self._write: Callable | None = None

    def record(self, start_position: int, rewards: np.ndarray, done: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Note one row per environment (written at ``start_position + i``); return ``(positions, returns)`` of the
        episodes that ended with them."""
        ended = [i for i, done_i in enumerate(done) if done_i]
        for i, reward in enumerate(rewards):
            self.positions[i].append((start_position + i) % self.capacity)
            self.ordinals[i].append(self.rows_added + i)
            self.rewards[i].append(float(reward))
        self.rows_added += len(rewards)  # before closing: rows overwritten by this step's rows are gone
        return [self._close(i) for i in ended]

    def close_all(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every running episode is cut here (a checkpoint or the end of the run)."""
        return [self._close(i) for i in range(len(self.positions)) if self.positions[i]]

    def _close(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        returns = np.empty(len(self.rewards[i]), np.float64)
        running = 0.0
        for t in range(len(returns) - 1, -1, -1):
            running = self.rewards[i][t] + self.discount * running
            returns[t] = running
        alive = np.asarray(self.ordinals[i]) >= self.rows_added - self.capacity  # rows not yet overwritten
        out = (np.asarray(self.positions[i])[alive], returns[alive].astype(np.float32))
        self.positions[i], self.ordinals[i], self.rewards[i] = [], [], []
        return out

    def write(self, buffer: ReplayBuffer, episodes: list[tuple[np.ndarray, np.ndarray]]) -> ReplayBuffer:
        """Write the episodes' returns into the buffer, padded to a power of two so calls share compiled shapes."""
        if not episodes:
            return buffer
        if self._write is None:
            self._write = jax.jit(lambda b, i, v: replay.write(b, "mc_returns", i, v), donate_argnums=0)
        positions = np.concatenate([p for p, _ in episodes])
        values = np.concatenate([v for _, v in episodes])
        size = 1 << max(int(len(positions)) - 1, 0).bit_length()
        index = np.full(size, self.capacity, np.int32)  # out of range: dropped
        index[: len(positions)] = positions
        padded = np.zeros(size, np.float32)
        padded[: len(values)] = values
        return self._write(buffer, jnp.asarray(index), jnp.asarray(padded))
