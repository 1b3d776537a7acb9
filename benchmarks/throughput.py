"""Updates per second of offrl's IQL, TD3+BC and CQL (and d3rlpy's, when installed) on Hopper shapes.

Setting: batch 256, each algorithm's default networks (2x256 MLPs; CQL 3x256), observation 11, action 3, a
synthetic dataset of 100k transitions held on the device (the update cost does not depend on the values). offrl
runs ``--updates-per-call`` updates per jitted call;
compile time is measured separately. Each measurement is the median over ``--repeats`` timed blocks of
``--updates`` updates, after a warm-up block. d3rlpy (``pip install 'offrl[bench]'``) is timed in the same process
on the same data through its public ``update(batch)``, batch sampling included for both.

    python benchmarks/throughput.py                 # offrl, plus d3rlpy when it is installed
    python benchmarks/throughput.py --no-peer       # offrl only
    python benchmarks/throughput.py --json out.json
    python benchmarks/throughput.py --algos cql --updates 500 --peer-updates 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

OBS_DIM, ACTION_DIM, SIZE, BATCH = 11, 3, 100_000, 256


def synthetic_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((SIZE, OBS_DIM)).astype(np.float32)
    terminals = np.zeros(SIZE, np.float32)
    terminals[rng.choice(SIZE, SIZE // 200, replace=False)] = 1.0
    return {
        "observations": obs,
        "actions": np.tanh(rng.standard_normal((SIZE, ACTION_DIM))).astype(np.float32),
        "rewards": rng.standard_normal(SIZE).astype(np.float32),
        "terminals": terminals,
        "next_observations": (obs + 0.1 * rng.standard_normal(obs.shape)).astype(np.float32),
    }


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_offrl(
    algo_name: str, arrays: dict[str, np.ndarray], updates: int, repeats: int, updates_per_call: int
) -> dict[str, float]:
    import jax

    from offrl.algos import get_algorithm
    from offrl.algos.base import Spec
    from offrl.train.engine import UpdateLoop, metric_names

    algo = get_algorithm(algo_name)
    config = algo.configure_for_training(algo.config_class(), 1_000_000)
    spec = Spec((OBS_DIM,), ACTION_DIM)
    agent = algo.init(jax.random.PRNGKey(0), spec, config)
    key = jax.random.PRNGKey(1)
    data = jax.device_put(arrays)
    loop = UpdateLoop(algo.update, BATCH)
    names = metric_names(algo.update, agent, data, BATCH)
    start = time.perf_counter()
    loop.compile(agent, key, data, updates_per_call)
    compile_seconds = time.perf_counter() - start
    agent, key, _ = loop.run(agent, key, data, updates_per_call, names)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(max(1, updates // updates_per_call)):
            agent, key, _ = loop.run(agent, key, data, updates_per_call, names)
        elapsed = time.perf_counter() - start
        rates.append(max(1, updates // updates_per_call) * updates_per_call / elapsed)
    return {
        "updates_per_second": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "compile_seconds": compile_seconds,
    }


def bench_d3rlpy(algo_name: str, arrays: dict[str, np.ndarray], updates: int, repeats: int) -> dict[str, float]:
    import d3rlpy
    import torch

    ends = np.zeros(SIZE, np.float32)
    ends[999::1000] = 1.0  # episode boundaries for the replay buffer
    dataset = d3rlpy.dataset.MDPDataset(
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        terminals=arrays["terminals"],
        timeouts=np.maximum(ends - arrays["terminals"], 0.0),
    )
    if algo_name == "iql":
        algo = d3rlpy.algos.IQLConfig(batch_size=BATCH).create(device="cpu:0")
    elif algo_name == "cql":
        # offrl's CQL defaults: 3x256 actor and critics, 10 sampled actions, weight 5 (d3rlpy also tunes its
        # Lagrange alpha by default; alpha_learning_rate 0 keeps it fixed, as offrl's default is)
        three_layers = d3rlpy.models.VectorEncoderFactory([256, 256, 256])
        algo = d3rlpy.algos.CQLConfig(
            batch_size=BATCH,
            actor_encoder_factory=three_layers,
            critic_encoder_factory=three_layers,
            alpha_learning_rate=0.0,
            conservative_weight=5.0,
            n_action_samples=10,
        ).create(device="cpu:0")
    elif algo_name == "td3bc":
        algo = d3rlpy.algos.TD3PlusBCConfig(batch_size=BATCH).create(device="cpu:0")
    else:
        raise ValueError(f"no d3rlpy counterpart for {algo_name!r} in this benchmark")
    algo.build_with_dataset(dataset)
    for _ in range(50):
        algo.update(dataset.sample_transition_batch(BATCH))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(updates):
            algo.update(dataset.sample_transition_batch(BATCH))
        rates.append(updates / (time.perf_counter() - start))
    return {
        "updates_per_second": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "torch_threads": torch.get_num_threads(),
        "d3rlpy_version": d3rlpy.__version__,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="iql,td3bc", help="comma-separated offrl algorithms")
    parser.add_argument("--updates", type=int, default=3000, help="updates per timed block (offrl)")
    parser.add_argument("--peer-updates", type=int, default=300, help="updates per timed block (d3rlpy)")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks; the median is reported")
    parser.add_argument("--updates-per-call", type=int, default=1000, help="offrl updates per jitted call")
    parser.add_argument("--no-peer", action="store_true", help="skip d3rlpy even when installed")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    import jax

    arrays = synthetic_arrays()
    result: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "batch_size": BATCH,
        "offrl": {},
        "d3rlpy": {},
    }
    for name in args.algos.split(","):
        result["offrl"][name] = bench_offrl(name, arrays, args.updates, args.repeats, args.updates_per_call)
        r = result["offrl"][name]
        print(
            f"offrl  {name:6s} {r['updates_per_second']:8.1f} updates/s  (min {r['min']:.1f}, max {r['max']:.1f}; "
            f"compile {r['compile_seconds']:.1f} s)",
            flush=True,
        )
    result["offrl_peak_memory_mb"] = peak_memory_mb()
    print(f"peak memory (RSS) of the offrl runs: {result['offrl_peak_memory_mb']:.0f} MB", flush=True)
    peer = not args.no_peer
    if peer:
        try:
            import d3rlpy  # noqa: F401
        except ImportError:
            print("d3rlpy is not installed (pip install 'offrl[bench]'): peer comparison skipped")
            peer = False
    if peer:
        for name in args.algos.split(","):
            r = bench_d3rlpy(name, arrays, args.peer_updates, args.repeats)
            result["d3rlpy"][name] = r
            ratio = result["offrl"][name]["updates_per_second"] / r["updates_per_second"]
            r["offrl_ratio"] = ratio
            print(
                f"d3rlpy {name:6s} {r['updates_per_second']:8.1f} updates/s  (torch threads "
                f"{r['torch_threads']}); offrl / d3rlpy = {ratio:.2f}x",
                flush=True,
            )
        if "iql" in result["d3rlpy"]:
            for name in result["offrl"]:
                ratio = result["offrl"][name]["updates_per_second"] / result["d3rlpy"]["iql"]["updates_per_second"]
                print(f"offrl {name} / d3rlpy iql = {ratio:.2f}x")
    result["peak_memory_mb"] = peak_memory_mb()
    print(f"peak memory (RSS) of the whole process, peer included: {result['peak_memory_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
