"""Measure the reference returns offrl uses for tasks D4RL has no references for (pendulum, cartpole).

    python benchmarks/reference_scores.py

random: uniformly random actions, episode i reset with seed i and its actions drawn from ``default_rng(i)``.
expert (pendulum): the scripted swing-up controller of ``offrl.data.builtin``. cartpole's expert reference is the
maximum return, 500. 100 episodes, seeds 0-99. The printed numbers are the ones in ``offrl/envs/registry.py``.
"""

from __future__ import annotations

import numpy as np

from offrl.data.builtin import pendulum_swing_up
from offrl.envs.registry import get_task


def mean_return(task_name: str, policy, episodes: int = 100) -> float:
    env = get_task(task_name).make()
    returns = []
    for seed in range(episodes):
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs, rng, env))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def random_action(obs, rng, env):
    space = env.action_space
    if hasattr(space, "n"):
        return int(rng.integers(space.n))
    return rng.uniform(space.low, space.high).astype(np.float32)


def main() -> None:
    print(f"pendulum random {mean_return('pendulum', random_action):.2f}")
    print(f"pendulum expert {mean_return('pendulum', lambda obs, rng, env: pendulum_swing_up(obs)):.2f}")
    print(f"pendulum-sparse random {mean_return('pendulum-sparse', random_action):.2f}")
    print(f"pendulum-sparse expert {mean_return('pendulum-sparse', lambda obs, rng, env: pendulum_swing_up(obs)):.2f}")
    print(f"cartpole random {mean_return('cartpole', random_action):.2f}")


if __name__ == "__main__":
    main()
