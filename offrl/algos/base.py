"""The small interface every algorithm exposes, so the trainer never needs to know which one it runs.

An algorithm module (one file under ``offrl/algos/``) defines:

- a frozen config dataclass (paper defaults, a ``help`` metadata entry per field, validation in ``__post_init__``)
  with two fields the trainer reads: ``normalize_observations`` and ``reward_scaling``;
- an agent state: a ``flax.struct.PyTreeNode`` holding parameters, target parameters, optimiser states and RNG key,
  with the config and the :class:`Spec` as static fields;
- ``init(key, spec, config) -> state``, ``update(state, batch) -> (state, metrics)`` (pure, jit-able, the only place
  the update order is written), ``act(state, observations, key, deterministic) -> actions``;
- ``ALGORITHM = Algorithm(...)``, registered in ``offrl/algos/__init__.py``.

A batch is a dict of arrays: ``observations, actions, rewards, terminals, next_observations`` (terminals as float
0/1; timeouts never reach an algorithm, they only delimit episodes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


@dataclass(frozen=True)
class Spec:
    """What an algorithm must know about the data to build its networks."""

    observation_shape: tuple[int, ...]
    action_dim: int
    discrete: bool = False

    @property
    def observation_dim(self) -> int:
        size = 1
        for d in self.observation_shape:
            size *= d
        return size

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> Spec:
        return Spec(tuple(d["observation_shape"]), int(d["action_dim"]), bool(d["discrete"]))


def _same_config(config: Any, total_steps: int) -> Any:
    return config


@dataclass(frozen=True)
class Algorithm:
    """The entry points of one algorithm."""

    name: str
    description: str
    config_class: type
    init: Callable[[jax.Array, Spec, Any], Any]
    update: Callable[[Any, Batch], tuple[Any, Metrics]]
    act: Callable[[Any, jax.Array, jax.Array, bool], jax.Array]
    #: Fill in anything that depends on the length of training (e.g. a learning-rate schedule's horizon).
    configure_for_training: Callable[[Any, int], Any] = _same_config
    supports_discrete: bool = False
    supports_continuous: bool = True
    #: Derived per-transition columns the update reads besides ``(s, a, r, s', d)`` (see ``offrl.data.columns``).
    extra_columns: tuple[str, ...] = ()


def config_field(default: Any, help: str, **kwargs: Any) -> Any:  # noqa: A002 (the CLI's word)
    """A dataclass field whose ``help`` becomes the CLI's help text."""
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def require(condition: bool, message: str) -> None:
    """Config validation: raise ``ValueError(message)`` when the condition fails."""
    if not condition:
        raise ValueError(message)
