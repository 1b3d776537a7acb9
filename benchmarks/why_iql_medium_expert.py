"""Why does IQL fail on hopper-medium-expert while BC does well?  Measurements behind BENCHMARKS.md.

    python benchmarks/why_iql_medium_expert.py --runs RUN_DIR [RUN_DIR ...] \
        --medium-actor ../shared/experts/sac_hopper.npz --expert-actor ../shared/experts/tqc_hopper.npz \
        --episodes 20 --json out.json

The medium-expert file mixes two behaviour policies whose actors we have. For every run (its final checkpoint) this
rolls out the deterministic policy and, on the states it visits, compares its action a_pi with the two behaviour
actors' deterministic actions a_M = tanh(mean_M(s)) and a_E = tanh(mean_E(s)):

- how far a_pi is from each (mean squared distance), and on what fraction of states it is nearer the expert's;
- for runs with critics (IQL, TD3+BC), the run's own critic min(Q1, Q2) at a_pi, a_E and a_M: does the critic rank
  the expert's action above the medium one on the states the policy reaches, and is the policy's own action valued
  below both (the signature of an actor that fails to follow its critic)?

Statistics are reported over all visited states and over the first 50 steps of each episode (the start state
distribution is shared by both behaviour policies).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from offrl.envs import evaluate, get_task
from offrl.train.offline import load_policy

try:  # run as a script from the repository root
    from why_bc_ties import behaviour_actor
except ImportError:  # pragma: no cover
    from benchmarks.why_bc_ties import behaviour_actor


def rollout_states(policy, task, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Deterministic episodes; returns the visited observations, their time index, and the score."""
    seen: list[np.ndarray] = []

    def recording(obs: np.ndarray) -> np.ndarray:
        seen.append(np.array(obs))
        return policy(obs)

    result = evaluate(recording, task, episodes=episodes, seed=seed)
    obs, steps = [], []
    for t, batch in enumerate(seen):
        active = result.lengths > t
        obs.append(batch[active])
        steps.append(np.full(int(active.sum()), t))
    return (
        np.concatenate(obs),
        np.concatenate(steps),
        {
            "score": result.normalized_mean,
            "length_mean": float(result.lengths.mean()),
        },
    )


def critic_values(loaded, obs: np.ndarray, actions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    agent, transforms = loaded.agent, loaded.transforms
    module = importlib.import_module(f"offrl.algos.{loaded.algo.name}")
    nets = module.networks(agent.config, agent.spec)
    x = transforms.normalize_observations(jnp.asarray(obs))
    return {
        name: np.asarray(nets.critic.apply(agent.critic_params, x, transforms.normalize_actions(jnp.asarray(a))).min(0))
        for name, a in actions.items()
    }


def summarise(mask: np.ndarray, pi, a_med, a_exp, q: dict[str, np.ndarray] | None) -> dict[str, float]:
    d_exp = np.square(pi - a_exp).sum(-1)[mask]
    d_med = np.square(pi - a_med).sum(-1)[mask]
    out = {
        "states": int(mask.sum()),
        "dist_to_expert": float(d_exp.mean()),
        "dist_to_medium": float(d_med.mean()),
        "expert_vs_medium_dist": float(np.square(a_exp - a_med).sum(-1)[mask].mean()),
        "fraction_nearer_expert": float((d_exp < d_med).mean()),
    }
    if q is not None:
        out.update(
            {
                "q_policy": float(q["policy"][mask].mean()),
                "q_expert": float(q["expert"][mask].mean()),
                "q_medium": float(q["medium"][mask].mean()),
                "fraction_q_expert_above_medium": float((q["expert"] > q["medium"])[mask].mean()),
                "fraction_q_policy_below_both": float(
                    ((q["policy"] < q["expert"]) & (q["policy"] < q["medium"]))[mask].mean()
                ),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run directories (final checkpoint of each)")
    parser.add_argument("--medium-actor", required=True)
    parser.add_argument("--expert-actor", required=True)
    parser.add_argument("--task", default="hopper")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    task = get_task(args.task)
    medium, expert = behaviour_actor(Path(args.medium_actor)), behaviour_actor(Path(args.expert_actor))
    results: dict[str, dict] = {}
    for run in args.runs:
        loaded = load_policy(run)
        obs, steps, score = rollout_states(loaded, task, args.episodes, args.seed)
        pi = np.asarray(loaded(obs))
        a_med, a_exp = np.tanh(medium(obs)[0]), np.tanh(expert(obs)[0])
        q = None
        if hasattr(loaded.agent, "critic_params"):
            q = critic_values(loaded, obs, {"policy": pi, "expert": a_exp, "medium": a_med})
        results[Path(run).name] = {
            "algo": loaded.algo.name,
            **score,
            "all_states": summarise(np.ones(len(obs), bool), pi, a_med, a_exp, q),
            "first_50_steps": summarise(steps < 50, pi, a_med, a_exp, q),
        }
        print(json.dumps({Path(run).name: results[Path(run).name]}, indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
