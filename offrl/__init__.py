"""offrl: data-driven reinforcement learning in JAX.

Learn policies from logged data, judge them, and deploy them. See README.md for a tour.
"""

__version__ = "0.1.0"
