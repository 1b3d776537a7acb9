"""Shared fixtures. Built-in datasets are cached in a per-session temporary folder, never in the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"


def pytest_configure(config):
    os.environ.setdefault("OFFRL_CACHE_DIR", str(Path(config.rootpath) / ".pytest-offrl-cache"))


needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not beside this checkout")


def make_arrays(n: int = 200, obs_dim: int = 3, action_dim: int = 2, episode_length: int = 50, seed: int = 0):
    """A small well-formed set of transitions: episodes of ``episode_length`` ending in timeouts."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, obs_dim)).astype(np.float32)
    next_obs = np.concatenate([obs[1:], rng.standard_normal((1, obs_dim)).astype(np.float32)])
    timeouts = np.zeros(n, bool)
    timeouts[episode_length - 1 :: episode_length] = True
    return {
        "observations": obs,
        "actions": rng.uniform(-1, 1, (n, action_dim)).astype(np.float32),
        "rewards": rng.standard_normal(n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": timeouts,
        "next_observations": next_obs,
    }


def leaves_equal(a, b) -> bool:
    """Two pytrees hold bitwise-equal leaves."""
    import jax

    left, right = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(left) == len(right) and all(np.array_equal(x, y) for x, y in zip(left, right, strict=True))
