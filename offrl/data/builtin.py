"""Built-in datasets that offrl makes on first use and caches: no download, no external file.

``pendulum-mixed`` (the default of ``offrl train``): 200 episodes of Pendulum-v1 (40,000 steps) from a scripted
swing-up controller (energy shaping far from the top, a PD balance near it) whose torque, in each episode, is
replaced by a uniformly random one with probability ``p`` drawn from U(0, 1) per episode, plus Gaussian noise of
std 0.2 on the controller's own torque. The mean behaviour is mediocre (normalised score about 55) but good
actions are in the data, so an offline RL algorithm that weighs actions by their advantage can beat it clearly.

``pendulum-random``: 100 episodes of uniformly random torque. ``pendulum-expert``: 100 episodes of the controller
with noise std 0.2 only.

The cache lives in ``$OFFRL_CACHE_DIR`` or ``~/.cache/offrl``; files are rebuilt when missing, and generation is
deterministic (fixed seeds), so every machine builds the same data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offrl.data.dataset import Dataset
from offrl.data.loaders import from_arrays, load_npz, save_dataset

PENDULUM_MAX_TORQUE = 2.0


def pendulum_swing_up(obs: np.ndarray) -> np.ndarray:
    """A scripted controller for Pendulum-v1 (about -145 mean return over seeds 0-99).

    Far from the top it pumps energy with bang-bang torque in the direction of motion until the energy of the
    upright rest state is reached; near the top (cos theta > 0.85) it balances with a PD law.
    """
    cos, sin, velocity = float(obs[0]), float(obs[1]), float(obs[2])
    angle = np.arctan2(sin, cos)
    if cos > 0.85:
        torque = -(12.0 * angle + 2.5 * velocity)
    else:
        energy = 0.5 * velocity * velocity + 15.0 * (cos - 1.0)  # 0 at upright rest
        torque = -PENDULUM_MAX_TORQUE * np.sign(velocity * energy) if abs(velocity) > 1e-3 else PENDULUM_MAX_TORQUE
    return np.clip(np.array([torque], np.float32), -PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)


def collect_pendulum(
    episodes: int, seed: int, random_prob: Callable[[np.random.Generator], float], noise_std: float
) -> Dataset:
    """Roll out the noisy controller on Pendulum-v1 and return the transitions (time-limit ends are timeouts)."""
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "next", "term", "tout")}
    for episode in range(episodes):
        p = random_prob(rng)
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        done = False
        while not done:
            if rng.random() < p:
                action = rng.uniform(-PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE, size=1).astype(np.float32)
            else:
                action = pendulum_swing_up(obs) + noise_std * rng.standard_normal(1).astype(np.float32)
                action = np.clip(action, -PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            cols["obs"].append(obs)
            cols["act"].append(action)
            cols["rew"].append(reward)
            cols["next"].append(next_obs)
            cols["term"].append(terminated)
            cols["tout"].append(truncated and not terminated)
            obs = next_obs
            done = terminated or truncated
    env.close()
    return from_arrays(
        np.array(cols["obs"]),
        np.array(cols["act"]),
        np.array(cols["rew"]),
        np.array(cols["term"]),
        np.array(cols["tout"]),
        np.array(cols["next"]),
        metadata={"env_id": "Pendulum-v1", "task": "pendulum"},
    )


def sparse_pendulum_demos() -> Dataset:
    """Poor (noisy, partly random) swing-up demonstrations with the sparse ``upright`` reward (task pendulum-sparse)."""
    from offrl.envs.rewards import relabel

    data = collect_pendulum(20, seed=4, random_prob=lambda rng: float(rng.uniform(0.3, 0.8)), noise_std=1.0)
    metadata = {**data.metadata, "task": "pendulum-sparse", "reward": "upright"}
    return data.replace(rewards=relabel("upright", data.next_observations), metadata=metadata)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    task: str
    description: str
    make: Callable[[], Dataset]
    version: int = 1


BUILTIN: dict[str, BuiltinDataset] = {
    d.name: d
    for d in [
        BuiltinDataset(
            "pendulum-mixed",
            "pendulum",
            "swing-up controller mixed with random torque (per-episode probability ~ U(0, 1)); 40k steps",
            lambda: collect_pendulum(200, seed=1, random_prob=lambda rng: float(rng.uniform()), noise_std=0.2),
        ),
        BuiltinDataset(
            "pendulum-random",
            "pendulum",
            "uniformly random torque; 20k steps",
            lambda: collect_pendulum(100, seed=2, random_prob=lambda rng: 1.0, noise_std=0.0),
        ),
        BuiltinDataset(
            "pendulum-expert",
            "pendulum",
            "swing-up controller with Gaussian torque noise (std 0.2); 20k steps",
            lambda: collect_pendulum(100, seed=3, random_prob=lambda rng: 0.0, noise_std=0.2),
        ),
        BuiltinDataset(
            "pendulum-sparse-demos",
            "pendulum-sparse",
            "20 poor swing-up demonstrations: torque noise std 1.0, random torque with per-episode probability"
            " ~ U(0.3, 0.8); sparse upright reward; 4k steps",
            sparse_pendulum_demos,
        ),
    ]
}


def cache_dir() -> Path:
    return Path(os.environ.get("OFFRL_CACHE_DIR", Path.home() / ".cache" / "offrl"))


def builtin_path(name: str) -> Path:
    spec = BUILTIN[name]
    return cache_dir() / "datasets" / f"{spec.name}-v{spec.version}.npz"


def load_builtin(name: str) -> tuple[Dataset, Path]:
    """Load a built-in dataset, building and caching it on first use. Returns the dataset and its cache file."""
    if name not in BUILTIN:
        raise KeyError(f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(sorted(BUILTIN))}")
    path = builtin_path(name)
    if not path.exists():
        dataset = BUILTIN[name].make()
        meta = {**dataset.metadata, "builtin": name, "description": BUILTIN[name].description}
        save_dataset(dataset.replace(metadata=meta), path, overwrite=True)
    return load_npz(path), path
