"""Train a d3rlpy algorithm on a D4RL-layout dataset and evaluate it exactly as offrl's runs are evaluated.

    python benchmarks/peer_d3rlpy.py --algo iql --dataset ../shared/data/hopper-medium.hdf5 --task hopper \
        --steps 200000 --seed 0 --out benchmarks/results/peers/iql-hopper-medium-s0.json

The peer answers the question "is this result a property of the data or of offrl's implementation?". Settings are
those of d3rlpy's own reproduction scripts (``reproductions/offline/*.py``):

- IQL: Adam 3e-4, batch 256, expectile 0.7, inverse temperature 3.0, weights clipped at 100, rewards scaled by
  ``1000 / (max episode return - min episode return)`` (``ReturnBasedRewardScaler``), cosine decay of the actor's
  learning rate over the run.
- TD3+BC: Adam 3e-4, batch 256, alpha 2.5, target smoothing 0.2 clipped at 0.5, actor every 2 updates, standardised
  observations.
- CQL: 2x256 actor and critics, actor 1e-4, critic 3e-4, temperature 1e-4, Lagrange alpha 3e-4 from e with
  threshold 10, conservative weight 5 (the script's value for D4RL v2 data), 10 sampled actions, batch 256.
- AWAC: 4x256 actor and critics, actor Adam with weight decay 1e-4, lambda 1, batch 1024.
- PRDC: TD3+BC's settings with alpha 2.5 and beta 2, standardised observations (the script uses alpha 2.5
  everywhere; here halfcheetah gets the paper's 40, as offrl's config does, so both run the paper's setting).
- ReBRAC: 3x256 actor, 3x256 LayerNorm critics, Adam 1e-3, batch 1024, actor/critic betas per dataset from the
  paper's table (d3rlpy's script carries the same table; 0.01/0.01 otherwise), standardised observations.

- Cal-QL: CQL's settings, with the Monte-Carlo lower bound on the pushed-down values (d3rlpy computes each sampled
  transition's discounted return to the end of its episode; a truncated episode's unseen remainder counts as zero).

The dataset is read with offrl's loader (so both libraries see the same transitions, terminals and timeouts) and
the policy is evaluated with ``offrl.envs.evaluate``: ``--eval-episodes`` episodes every ``--eval-interval`` updates
(environment seeds 10000 + 1000 * seed + i, those of offrl's evaluations during training; runs made before
2026-11-27 05:30 used seeds 0..9), and ``--final-episodes`` episodes at the end on environment seeds 100000.., the seeds
``benchmarks/scores.py`` uses for its final column. Needs ``pip install 'offrl[bench]'``.

With ``--resume-dir DIR`` a run saves d3rlpy's model (networks, optimisers, learning-rate schedule) and its curve at
every evaluation, and a run started again with the same directory continues from the last one instead of from
scratch. d3rlpy has no way to save its random streams, so a resumed run is reseeded with ``seed + step`` and is not
bit-identical to an uninterrupted one; the record counts its resumes (``resumed``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np

#: ReBRAC's (actor_beta, critic_beta) per D4RL dataset, from the paper (as in d3rlpy's reproduction script)
REBRAC_BETAS: dict[str, tuple[float, float]] = {
    "halfcheetah-random": (0.001, 0.1),
    "halfcheetah-medium": (0.001, 0.01),
    "halfcheetah-expert": (0.01, 0.01),
    "halfcheetah-medium-replay": (0.01, 0.001),
    "hopper-random": (0.001, 0.01),
    "hopper-medium": (0.01, 0.001),
    "hopper-expert": (0.1, 0.001),
    "hopper-medium-expert": (0.1, 0.01),
    "hopper-medium-replay": (0.05, 0.5),
    "walker2d-random": (0.01, 0.0),
    "walker2d-medium": (0.05, 0.1),
    "walker2d-expert": (0.01, 0.5),
    "walker2d-medium-expert": (0.01, 0.01),
    "walker2d-medium-replay": (0.05, 0.01),
}
PEER_ALGOS = ("iql", "td3bc", "cql", "cal-ql", "awac", "prdc", "rebrac")


def build_algo(name: str, seed: int, steps: int, dataset_name: str = "", task: str = ""):
    import d3rlpy

    d3rlpy.seed(seed)
    if name == "iql":
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            batch_size=256,
            expectile=0.7,
            weight_temp=3.0,
            max_weight=100.0,
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)
            ),
        ).create(device="cpu:0")
    if name == "td3bc":
        return d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            batch_size=256,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            alpha=2.5,
            update_actor_interval=2,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        ).create(device="cpu:0")
    if name in ("cql", "cal-ql"):
        # d3rlpy's reproduction settings for CQL; Cal-QL is the same with its Monte-Carlo lower bound (d3rlpy
        # computes each sampled transition's discounted return-to-go to the end of its episode, a truncated
        # episode's unseen remainder counted as zero)
        two = d3rlpy.models.VectorEncoderFactory([256, 256])
        config = d3rlpy.algos.CQLConfig if name == "cql" else d3rlpy.algos.CalQLConfig
        return config(
            actor_learning_rate=1e-4,
            critic_learning_rate=3e-4,
            temp_learning_rate=1e-4,
            alpha_learning_rate=3e-4,
            initial_alpha=math.e,
            actor_encoder_factory=two,
            critic_encoder_factory=two,
            batch_size=256,
            n_action_samples=10,
            alpha_threshold=10,
            conservative_weight=5.0,
        ).create(device="cpu:0")
    if name == "awac":
        four = d3rlpy.models.VectorEncoderFactory([256, 256, 256, 256])
        return d3rlpy.algos.AWACConfig(
            actor_learning_rate=3e-4,
            actor_encoder_factory=four,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(weight_decay=1e-4),
            critic_learning_rate=3e-4,
            critic_encoder_factory=four,
            batch_size=1024,
            lam=1.0,
        ).create(device="cpu:0")
    if name == "prdc":
        return d3rlpy.algos.PRDCConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            batch_size=256,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            alpha=40.0 if task == "halfcheetah" else 2.5,
            beta=2.0,
            update_actor_interval=2,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        ).create(device="cpu:0")
    if name == "rebrac":
        actor_beta, critic_beta = REBRAC_BETAS.get(dataset_name, (0.01, 0.01))
        return d3rlpy.algos.ReBRACConfig(
            actor_learning_rate=1e-3,
            critic_learning_rate=1e-3,
            batch_size=1024,
            gamma=0.99,
            actor_encoder_factory=d3rlpy.models.VectorEncoderFactory([256, 256, 256]),
            critic_encoder_factory=d3rlpy.models.VectorEncoderFactory([256, 256, 256], use_layer_norm=True),
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            update_actor_interval=2,
            actor_beta=actor_beta,
            critic_beta=critic_beta,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        ).create(device="cpu:0")
    raise ValueError(f"no d3rlpy peer for {name!r}: {' | '.join(PEER_ALGOS)}")


def train_and_evaluate(
    algo_name: str,
    dataset_path: str,
    task_name: str,
    steps: int,
    seed: int,
    eval_interval: int = 25_000,
    eval_episodes: int = 10,
    final_episodes: int = 100,
    threads: int = 1,
    resume_dir: str | Path | None = None,
    save_interval: int = 0,
) -> dict:
    """Train d3rlpy's algorithm on the dataset and evaluate it as offrl's runs are evaluated; returns the record.

    With ``resume_dir`` the model and the curve are saved there every ``save_interval`` updates (default: at every
    evaluation; it must divide the evaluation interval), and a run that finds them continues from that step."""
    import d3rlpy
    import torch

    from offrl.data import load_dataset
    from offrl.envs import evaluate, get_task

    torch.set_num_threads(threads)
    began = time.perf_counter()
    data = load_dataset(dataset_path)
    fingerprint = data.fingerprint()
    task = get_task(task_name)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=np.asarray(data.observations),
        actions=np.asarray(data.actions),
        rewards=np.asarray(data.rewards),
        terminals=np.asarray(data.terminals, dtype=np.float32),
        timeouts=np.asarray(data.timeouts, dtype=np.float32),
    )
    algo = build_algo(algo_name, seed, steps, Path(dataset_path).stem, task_name)
    env = task.make()
    low, high = env.action_space.low, env.action_space.high
    env.close()

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.clip(algo.predict(obs.astype(np.float32)), low, high)

    curve: list[dict[str, float]] = []
    train_seconds, done, resumed, earlier_wall = 0.0, 0, 0, 0.0
    epoch_rates: list[float] = []  # updates/s of each epoch (their median ignores an epoch stretched by a pause)
    saved = Path(resume_dir) if resume_dir is not None else None
    if saved is not None and (saved / "progress.json").exists():
        progress = json.loads((saved / "progress.json").read_text())
        theirs = (progress["algo"], progress["seed"], progress["steps"], progress.get("eval_interval", eval_interval))
        if theirs != (algo_name, seed, steps, eval_interval):
            raise ValueError(
                f"{saved} holds another run (algo, seed, steps, eval interval = {theirs}; this one: "
                f"{(algo_name, seed, steps, eval_interval)}): remove it to start this one from scratch"
            )
        if (progress.get("fingerprint") or fingerprint) != fingerprint:
            raise ValueError(
                f"{saved} was trained on other data (fingerprint {progress['fingerprint'][:12]}...) than "
                f"{dataset_path} ({fingerprint[:12]}...): remove it to start this run from scratch on this data"
            )
        from d3rlpy.algos.utility import build_scalers_with_transition_picker

        build_scalers_with_transition_picker(algo, dataset)  # as fit() does before building the networks
        algo.build_with_dataset(dataset)
        algo.load_model(str(saved / progress["model"]))
        done, curve = progress["step"], progress["curve"]
        train_seconds, earlier_wall = progress["train_seconds"], progress["wall_seconds"]
        epoch_rates = list(progress.get("epoch_rates", []))
        resumed = progress["resumed"] + 1
        algo.set_grad_step(done)
        d3rlpy.seed(seed + done)
        print(f"d3rlpy {algo_name} s{seed}: resuming at step {done}", flush=True)
    start = time.perf_counter()

    # one d3rlpy "epoch" per save; an evaluation every eval_interval steps
    epoch = save_interval if saved is not None and save_interval and eval_interval % save_interval == 0 else 0
    epoch = epoch if epoch and (steps - done) % epoch == 0 else eval_interval

    last = {"step": done}

    def on_epoch(algo_, epoch_index: int, total_step: int) -> None:
        nonlocal train_seconds, start
        seconds = time.perf_counter() - start
        train_seconds += seconds
        step = done + total_step
        if seconds > 0:
            epoch_rates.append((step - last["step"]) / seconds)
        last["step"] = step
        if step % eval_interval == 0 or step == steps:
            # the environment seeds of offrl's evaluations during training (offrl.train.offline)
            result = evaluate(policy, task, episodes=eval_episodes, seed=10_000 + 1000 * seed)
            curve.append({"step": step, "normalized_score": result.normalized_mean})
            print(f"d3rlpy {algo_name} s{seed} step {step}: score {result.normalized_mean:.1f}", flush=True)
        if saved is not None:
            _save_progress(
                algo_,
                saved,
                algo_name,
                seed,
                steps,
                eval_interval,
                step,
                curve,
                train_seconds,
                earlier_wall + time.perf_counter() - began,
                resumed,
                epoch_rates,
                fingerprint,
            )
        start = time.perf_counter()

    if done < steps:
        algo.fit(
            dataset,
            n_steps=steps - done,
            n_steps_per_epoch=epoch,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
            show_progress=False,
            epoch_callback=on_epoch,
        )
    final = evaluate(policy, task, episodes=final_episodes, seed=100_000)
    return {
        "library": "d3rlpy",
        "version": d3rlpy.__version__,
        "algo": algo_name,
        "dataset": str(dataset_path),
        "fingerprint": fingerprint,  # of the data's contents (Dataset.fingerprint)
        "task": task_name,
        "steps": steps,
        "seed": seed,
        "torch_threads": threads,
        "updates_per_second": steps / train_seconds if train_seconds else 0.0,
        "median_rate": statistics.median(epoch_rates) if epoch_rates else None,  # of its epochs' updates/s
        "curve": curve,
        "final_score": curve[-1]["normalized_score"] if curve else None,
        "final_100": final.normalized_mean,
        "final_episodes": final_episodes,
        "final_100_returns": final.returns.tolist(),
        "wall_seconds": earlier_wall + time.perf_counter() - began,
        "resumed": resumed,
    }


def _save_progress(
    algo,
    saved: Path,
    algo_name: str,
    seed: int,
    steps: int,
    eval_interval: int,
    step: int,
    curve: list,
    train_seconds: float,
    wall_seconds: float,
    resumed: int,
    epoch_rates: list[float] | None = None,
    fingerprint: str | None = None,
) -> None:
    """Save the model as ``model-STEP.d3``, then replace ``progress.json`` (which names it) atomically, then remove
    older models: a run killed at any point leaves a progress file and the model it names."""
    saved.mkdir(parents=True, exist_ok=True)
    model = f"model-{step}.d3"
    algo.save_model(str(saved / model))
    progress = {
        "algo": algo_name,
        "seed": seed,
        "steps": steps,
        "eval_interval": eval_interval,
        "step": step,
        "model": model,
        "curve": curve,
        "train_seconds": train_seconds,
        "wall_seconds": wall_seconds,
        "resumed": resumed,
        "epoch_rates": epoch_rates or [],
        "fingerprint": fingerprint,
    }
    (saved / "progress.json.tmp").write_text(json.dumps(progress))
    os.replace(saved / "progress.json.tmp", saved / "progress.json")
    for old in saved.glob("model-*.d3"):
        if old.name != model:
            old.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", required=True, choices=list(PEER_ALGOS))
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-interval", type=int, default=25_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--final-episodes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("TORCH_THREADS", "1")))
    parser.add_argument("--resume-dir", help="save the model here and continue from it if found")
    parser.add_argument("--save-interval", type=int, default=0, help="updates between saves; 0 = every evaluation")
    parser.add_argument("--out", required=True, help="JSON file for the result")
    args = parser.parse_args(argv)
    result = train_and_evaluate(
        args.algo,
        args.dataset,
        args.task,
        args.steps,
        args.seed,
        args.eval_interval,
        args.eval_episodes,
        args.final_episodes,
        args.threads,
        args.resume_dir,
        args.save_interval,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"{args.algo} seed {args.seed}: final {result['final_score']:.1f}, {args.final_episodes} episodes "
        f"{result['final_100']:.1f}, {result['updates_per_second']:.1f} updates/s"
    )


if __name__ == "__main__":
    main()
