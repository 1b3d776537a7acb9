"""Data corruption for robustness tests: the protocol of RIQL (Yang et al., ICLR 2024, ``attack.py``).

A fraction ``rate`` of the transitions, chosen uniformly by ``seed``, has one part corrupted at ``scale`` epsilon:

- ``observations``: random ``s += U(-eps, eps) * std(s)`` per dimension; adversarial: ``s`` moved inside
  ``+- eps * std`` to lower Q(s, a).
- ``actions``: random ``a += U(-eps, eps) * std(a)``, clipped to the bounds; adversarial: ``a`` moved inside
  ``+- eps * std`` to lower Q(s, a).
- ``rewards``: random ``r <- U(-30 eps, 30 eps)``; adversarial ``r <- -eps * r``.
- ``dynamics``: random ``s' += U(-eps, eps) * std(s')``; adversarial: ``s'`` moved inside ``+- eps * std`` to lower
  V(s').

The adversarial attacks on states, actions and next states are projected gradient descent (``attack_steps`` signed
steps of ``eps * std / attack_steps * 2``, projected back into the box) on a critic the caller provides: ``q(s, a)``
for states and actions, ``v(s')`` for next states; the paper attacks a pre-trained EDAC critic. Which rows were
corrupted and how is recorded in the result's metadata (``corruption``), so a run trained on it says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from offrl.data.dataset import FLOAT, Dataset

KINDS = ("observations", "actions", "rewards", "dynamics")
MODES = ("random", "adversarial")


@dataclass(frozen=True)
class Corruption:
    kind: str
    mode: str = "random"
    rate: float = 0.3
    scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"corruption kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.mode not in MODES:
            raise ValueError(f"corruption mode must be random or adversarial; got {self.mode!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"corruption rate must be in [0, 1]; got {self.rate}")
        if self.scale < 0:
            raise ValueError(f"corruption scale must be >= 0; got {self.scale}")

    @staticmethod
    def parse(text: str, seed: int = 0) -> Corruption:
        """``KIND[:MODE[:RATE[:SCALE]]]``, e.g. ``rewards``, ``observations:random:0.3:1.0``."""
        parts = text.split(":")
        if not 1 <= len(parts) <= 4:
            raise ValueError(f"corruption {text!r}: expected KIND[:MODE[:RATE[:SCALE]]]")
        try:
            rate = float(parts[2]) if len(parts) > 2 else 0.3
            scale = float(parts[3]) if len(parts) > 3 else 1.0
        except ValueError as e:
            raise ValueError(f"corruption {text!r}: RATE and SCALE must be numbers") from e
        return Corruption(parts[0], parts[1] if len(parts) > 1 else "random", rate, scale, seed)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def corrupt(
    dataset: Dataset,
    corruption: Corruption,
    *,
    q_function: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    value_function: Callable[[np.ndarray], np.ndarray] | None = None,
    gradient: Callable[..., np.ndarray] | None = None,
    attack_steps: int = 10,
) -> Dataset:
    """A corrupted copy of ``dataset`` (the input is not modified).

    Adversarial state / action / next-state corruption needs ``gradient``: a function returning the gradient of the
    attacked quantity with respect to the corrupted input, ``gradient(kind, observations, actions,
    next_observations)`` (``offrl.train`` builds one from a trained critic); ``q_function`` / ``value_function``
    are only used to report how much the attack lowered them.
    """
    c = corruption
    rng = np.random.default_rng(c.seed)
    n = dataset.size
    rows = np.sort(rng.choice(n, size=int(round(c.rate * n)), replace=False))
    obs, actions = dataset.observations.copy(), dataset.actions.copy()
    rewards, next_obs = dataset.rewards.copy(), dataset.next_observations.copy()
    info: dict[str, Any] = {**c.to_json(), "rows": int(len(rows))}
    if c.kind == "rewards":
        if c.mode == "random":
            rewards[rows] = rng.uniform(-30 * c.scale, 30 * c.scale, len(rows)).astype(FLOAT)
        else:
            rewards[rows] = (-c.scale * rewards[rows]).astype(FLOAT)
    else:
        target = {"observations": obs, "actions": actions, "dynamics": next_obs}[c.kind]
        std = target.reshape(n, -1).std(axis=0).reshape(target.shape[1:])
        if c.mode == "random":
            noise = rng.uniform(-c.scale, c.scale, (len(rows), *target.shape[1:])) * std
            target[rows] = (target[rows] + noise).astype(FLOAT)
        else:
            if gradient is None:
                raise ValueError(
                    f"adversarial {c.kind} corruption needs a critic to attack (gradient=...); random corruption "
                    "does not"
                )
            target[rows] = _projected_attack(c, rows, obs, actions, next_obs, std, gradient, attack_steps)
        if c.kind == "actions" and not dataset.discrete:
            space = dataset.action_space
            assert space is not None
            np.clip(actions, np.asarray(space.low, FLOAT), np.asarray(space.high, FLOAT), out=actions)
    if q_function is not None and c.kind in ("observations", "actions"):
        before = q_function(dataset.observations[rows], dataset.actions[rows])
        info["q_drop"] = float(np.mean(before - q_function(obs[rows], actions[rows])))
    if value_function is not None and c.kind == "dynamics":
        before = value_function(dataset.next_observations[rows])
        info["v_drop"] = float(np.mean(before - value_function(next_obs[rows])))
    corrupted = dataset.replace(
        observations=obs,
        actions=actions,
        rewards=rewards,
        next_observations=next_obs,
        metadata={**dataset.metadata, "corruption": info},
    )
    return corrupted


def _projected_attack(c: Corruption, rows, obs, actions, next_obs, std, gradient, steps: int) -> np.ndarray:
    """Signed-gradient descent on the attacked quantity inside the box ``original +- scale * std``."""
    columns = {"observations": obs, "actions": actions, "dynamics": next_obs}
    original = columns[c.kind][rows].astype(np.float64)
    x = original.copy()
    bound = c.scale * std
    step = 2.0 * bound / max(steps, 1)
    for _ in range(steps):
        inputs = {"observations": obs[rows], "actions": actions[rows], "next_observations": next_obs[rows]}
        inputs[{"observations": "observations", "actions": "actions", "dynamics": "next_observations"}[c.kind]] = x
        g = np.asarray(gradient(c.kind, inputs["observations"], inputs["actions"], inputs["next_observations"]))
        x = np.clip(x - step * np.sign(g), original - bound, original + bound)
    return x.astype(FLOAT)
