"""Why do TD3+BC and IQL not beat BC on ../shared/data/hopper-medium.hdf5?  Measurements behind BENCHMARKS.md.

    python benchmarks/why_bc_ties.py --runs /work/runs/hopper-medium \
        --dataset ../shared/data/hopper-medium.hdf5 --actor ../shared/experts/sac_hopper.npz --json out.json

1. The behaviour actor itself (the npz the dataset was sampled from): its deterministic action tanh(mean) and its
   stochastic action tanh(mean + std * N(0, I)), the way the dataset was collected.
2. The behaviour noise in the data: per action dimension, the std of (dataset action - tanh(mean(s))).
3. Every finished run under ``--runs``: its deterministic score, and its score when Gaussian noise with the
   behaviour's per-dimension std is added to its actions (clipped to the bounds).
4. For TD3+BC and IQL runs, their critics on the dataset: how far the policy's action is from the data action, how
   much higher the critic values the policy action than the data action (mean of min(Q1, Q2) over the dataset), and
   whether Q(s, a_data) matches the discounted Monte-Carlo return-to-go of the data (on episodes that end in a true
   terminal, where that return is exact; rewards scaled as the run scaled them).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from offrl.data import load_dataset
from offrl.envs import evaluate, get_task
from offrl.train.offline import load_policy


def behaviour_actor(path: Path):
    w = dict(np.load(path, allow_pickle=False))

    def mean_and_std(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.maximum(obs @ w["hidden0_w"] + w["hidden0_b"], 0)
        h = np.maximum(h @ w["hidden1_w"] + w["hidden1_b"], 0)
        log_std = np.clip(h @ w["log_std_w"] + w["log_std_b"], -20, 2)
        return h @ w["mean_w"] + w["mean_b"], np.exp(log_std)

    return mean_and_std


def noisy_actor(actor, seed: int):
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        mean, std = actor(obs)
        return np.tanh(mean + std * rng.standard_normal(mean.shape))

    return act


def noisy(policy, std: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        actions = np.asarray(policy(obs))
        return np.clip(actions + std * rng.standard_normal(actions.shape), -1.0, 1.0)

    return act


def returns_to_go(dataset, discount: float) -> tuple[np.ndarray, np.ndarray]:
    """Discounted return-to-go of every transition, and a mask of the episodes that end in a true terminal."""
    rewards = dataset.rewards.astype(np.float64)
    ends = np.asarray(dataset.terminals, bool) | np.asarray(dataset.timeouts, bool)
    to_go, exact = np.zeros_like(rewards), np.zeros(len(rewards), bool)
    running, terminal = 0.0, False
    for i in range(len(rewards) - 1, -1, -1):
        if ends[i]:
            running, terminal = 0.0, bool(dataset.terminals[i])
        running = rewards[i] + discount * running
        to_go[i], exact[i] = running, terminal
    return to_go, exact


def critic_view(loaded, dataset) -> dict[str, float]:
    """Policy action vs data action under the run's own critics (normalised observations, as in training)."""
    agent, transforms = loaded.agent, loaded.transforms
    module = importlib.import_module(f"offrl.algos.{loaded.algo.name}")
    nets = module.networks(agent.config, agent.spec)
    obs = transforms.normalize_observations(jnp.asarray(dataset.observations))
    data_actions = transforms.normalize_actions(jnp.asarray(dataset.actions))
    pi = loaded.algo.act(agent, obs, jax.random.PRNGKey(0), True)
    q_pi = nets.critic.apply(agent.critic_params, obs, pi).min(axis=0)
    q_data = nets.critic.apply(agent.critic_params, obs, data_actions).min(axis=0)
    to_go, exact = returns_to_go(dataset, agent.config.discount)
    to_go = to_go * transforms.reward_scale + transforms.reward_shift / (1 - agent.config.discount)
    q = np.asarray(q_data)[exact]
    return {
        "q_data_minus_monte_carlo": float((q - to_go[exact]).mean()),
        "q_data_corr_monte_carlo": float(np.corrcoef(q, to_go[exact])[0, 1]),
        "action_mse_to_data": float(jnp.square(pi - data_actions).mean()),
        "q_policy_mean": float(q_pi.mean()),
        "q_data_mean": float(q_data.mean()),
        "q_policy_minus_data": float((q_pi - q_data).mean()),
        "fraction_policy_action_valued_higher": float((q_pi > q_data).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="folder of run directories (benchmarks/scores.py --out)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--actor", required=True, help="the behaviour actor npz the dataset was sampled from")
    parser.add_argument("--task", default="hopper")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    task = get_task(args.task)
    dataset = load_dataset(args.dataset, task=args.task)
    actor = behaviour_actor(Path(args.actor))
    results: dict[str, dict] = {}

    def score(policy) -> float:
        return round(evaluate(policy, task, args.episodes, args.seed).normalized_mean, 1)

    mean, std = actor(dataset.observations)
    residual = dataset.actions - np.tanh(mean)
    noise_std = residual.std(axis=0)
    results["behaviour"] = {
        "dataset_normalized_score": round(float(np.mean(task.normalized_score(dataset.episode_returns()))), 1),
        "actor_deterministic": score(lambda o: np.tanh(actor(o)[0])),
        "actor_stochastic": score(noisy_actor(actor, args.seed)),
        "actor_mean_plus_data_noise": score(noisy(lambda o: np.tanh(actor(o)[0]), noise_std, args.seed)),
        "data_noise_std_per_dim": [round(float(s), 3) for s in noise_std],
        "actor_std_mean_per_dim": [round(float(s), 3) for s in std.mean(axis=0)],
    }
    print(json.dumps({"behaviour": results["behaviour"]}), flush=True)

    for run in sorted(p for p in Path(args.runs).iterdir() if (p / "summary.json").exists()):
        loaded = load_policy(run)
        row = {
            "deterministic": score(loaded),
            "with_behaviour_noise": score(noisy(loaded, noise_std, args.seed)),
            "action_mse_to_behaviour_mean": float(np.square(loaded(dataset.observations) - np.tanh(mean)).mean()),
        }
        if loaded.algo.name in ("td3bc", "iql"):
            row.update(critic_view(loaded, dataset))
        results[run.name] = row
        print(json.dumps({run.name: row}), flush=True)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
