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

An algorithm whose update must search the whole training set (PRDC's nearest dataset action) also sets
``bind_dataset``: given its config and the training arrays it returns the update the trainer runs, called as
``update(state, batch, data)`` with ``data`` the device arrays batches are drawn from. :func:`training_update` gives
that three-argument form for every algorithm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
#: ``update(state, batch, data) -> (state, metrics)``: an update that may read the whole (device) training set.
DataUpdate = Callable[[Any, Batch, Batch], tuple[Any, Metrics]]


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


def _unchanged(config: Any) -> Any:
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
    #: For updates that read the whole training set: ``(config, host arrays) -> update(state, batch, data)``, built
    #: once per run (e.g. a KD-tree over the rows). ``update`` then raises, naming this.
    bind_dataset: Callable[[Any, dict[str, np.ndarray]], DataUpdate] | None = None
    #: Offline-to-online fine-tuning (``offrl.train.finetune``): the config for ``offline_steps`` updates on the data
    #: followed by ``online_steps`` environment steps, where the method's published fine-tuning setting differs
    #: from its offline one (e.g. IQL without its learning-rate decay). ``None``: ``configure_for_training`` over both.
    configure_for_finetuning: Callable[[Any, int, int], Any] | None = None
    #: The config the online phase of fine-tuning trains with (e.g. another conservative weight online). It may
    #: change what the update computes, not the shapes of the state (the checkpoint format stays one).
    online_config: Callable[[Any], Any] = _unchanged


def finetuning_configs(algo: Algorithm, config: Any, offline_steps: int, online_steps: int) -> tuple[Any, Any]:
    """The configs of the offline and the online phase of a fine-tuning run of ``algo``."""
    if algo.configure_for_finetuning is not None:
        offline = algo.configure_for_finetuning(config, offline_steps, online_steps)
    else:
        offline = algo.configure_for_training(config, offline_steps + online_steps)
    return offline, algo.online_config(offline)


def training_update(algo: Algorithm, config: Any, arrays: dict[str, np.ndarray]) -> DataUpdate:
    """The update to train ``algo`` with on these (host) training arrays, as ``update(state, batch, data)``."""
    if algo.bind_dataset is not None:
        return algo.bind_dataset(config, arrays)
    update = algo.update

    def without_data(state: Any, batch: Batch, data: Batch) -> tuple[Any, Metrics]:
        return update(state, batch)

    return without_data


def config_field(default: Any, help: str, **kwargs: Any) -> Any:  # noqa: A002 (the CLI's word)
    """A dataclass field whose ``help`` becomes the CLI's help text."""
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


def require(condition: bool, message: str) -> None:
    """Config validation: raise ``ValueError(message)`` when the condition fails."""
    if not condition:
        raise ValueError(message)
