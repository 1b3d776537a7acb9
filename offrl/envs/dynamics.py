"""True dynamics of tasks as pure JAX functions, for model rollouts with the real model.

Model-based offline methods roll a learned model out from dataset states; running the same rollouts with the true
dynamics separates the errors of the model from those of the value function (Sims et al. 2024 show that the
edge-of-reach problem remains with the true model, ``offrl.ope.edge_of_reach``). A dynamics model here is anything
with ``step(key, observations, actions) -> (next_observations, rewards, terminals)`` on batches
(:class:`offrl.ope.edge_of_reach.DynamicsModel`); a learned ensemble draws its member from ``key``, the true dynamics
ignore it.

- :class:`PendulumDynamics`: Gymnasium's Pendulum-v1 (``gymnasium/envs/classic_control/pendulum.py``), from the
  observation ``[cos th, sin th, th_dot]``: torque clipped to [-2, 2], reward
  ``-(angle_normalize(th)^2 + 0.1 th_dot^2 + 0.001 u^2)`` of the state before the step, velocity clipped to [-8, 8],
  ``th += th_dot' * dt``. Never terminal (episodes end by the time limit).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class PendulumDynamics:
    gravity: float = 10.0
    mass: float = 1.0
    length: float = 1.0
    dt: float = 0.05
    max_speed: float = 8.0
    max_torque: float = 2.0

    def step(self, key: jax.Array, observations: jax.Array, actions: jax.Array):
        del key  # deterministic
        theta = jnp.arctan2(observations[..., 1], observations[..., 0])
        theta_dot = observations[..., 2]
        u = jnp.clip(actions[..., 0], -self.max_torque, self.max_torque)
        normalized = ((theta + jnp.pi) % (2 * jnp.pi)) - jnp.pi
        rewards = -(normalized**2 + 0.1 * theta_dot**2 + 0.001 * u**2)
        g, m, length = self.gravity, self.mass, self.length
        new_dot = theta_dot + (3 * g / (2 * length) * jnp.sin(theta) + 3.0 / (m * length**2) * u) * self.dt
        new_dot = jnp.clip(new_dot, -self.max_speed, self.max_speed)
        new_theta = theta + new_dot * self.dt
        next_observations = jnp.stack([jnp.cos(new_theta), jnp.sin(new_theta), new_dot], axis=-1)
        return next_observations, rewards, jnp.zeros_like(rewards, dtype=bool)
