"""Shared network mechanism: MLPs, ensembles (vmap over parameters), policy heads, distributions, loss helpers and
optimiser/target updates. Algorithms combine these; none of the maths of a specific algorithm lives here."""

from offrl.nn.losses import expectile_loss, huber_loss, td_target
from offrl.nn.networks import MLP, Ensemble, QNetwork, ValueNetwork
from offrl.nn.policies import DeterministicPolicy, GaussianPolicy, TanhGaussianPolicy
from offrl.nn.updates import apply_gradients, copy_tree, global_norm, polyak_update

__all__ = [
    "MLP",
    "DeterministicPolicy",
    "Ensemble",
    "GaussianPolicy",
    "QNetwork",
    "TanhGaussianPolicy",
    "ValueNetwork",
    "apply_gradients",
    "copy_tree",
    "expectile_loss",
    "global_norm",
    "huber_loss",
    "polyak_update",
    "td_target",
]
