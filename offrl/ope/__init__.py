"""Off-policy evaluation: the value of a policy estimated from logged data, without running it."""

from offrl.ope.edge_of_reach import EdgeOfReachReport, Rollouts, edge_of_reach, rollout
from offrl.ope.fqe import FQEConfig, FQEResult, discounted_return, fitted_q_evaluation

__all__ = [
    "EdgeOfReachReport",
    "FQEConfig",
    "FQEResult",
    "Rollouts",
    "discounted_return",
    "edge_of_reach",
    "fitted_q_evaluation",
    "rollout",
]
