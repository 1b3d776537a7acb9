"""Off-policy evaluation: the value of a policy estimated from logged data, without running it."""

from offrl.ope.fqe import FQEConfig, FQEResult, discounted_return, fitted_q_evaluation

__all__ = ["FQEConfig", "FQEResult", "discounted_return", "fitted_q_evaluation"]
