"""Updates per second of offrl's offline algorithms (and d3rlpy's, when installed) on Hopper shapes.

Setting: batch 256, each algorithm's default networks (2x256 MLPs; CQL, Cal-QL, AWAC, ReBRAC, SAC-N and EDAC
3x256; ensembles at their default sizes), observation 11, action 3 (discrete CQL: 3 discrete actions), a synthetic
dataset of 100k transitions held on the device (the update cost does not depend on the values), plus the derived
columns an algorithm reads (``next_actions``, ``mc_returns``). offrl runs ``--updates-per-call`` updates per jitted
call; compile time is measured separately. Each measurement is the median over ``--repeats`` timed blocks of
``--updates`` updates (or, with ``--block-seconds``, of as many calls as fill that time at the warm-up's rate),
after a warm-up block. d3rlpy (``pip install 'offrl[bench]'``) is timed in the same process on the same data
through its public ``update(batch)``, batch sampling included for both, for the algorithms it has (IQL, TD3+BC,
CQL, Cal-QL, AWAC, ReBRAC, PRDC), configured with offrl's network sizes and batch.

    python benchmarks/throughput.py                 # IQL and TD3+BC, plus d3rlpy when it is installed
    python benchmarks/throughput.py --algos all --block-seconds 10 --updates-per-call 100 --markdown
    python benchmarks/throughput.py --no-peer       # offrl only
    python benchmarks/throughput.py --json out.json
    python benchmarks/throughput.py --algos cql --updates 500 --peer-updates 50
    python benchmarks/throughput.py --algos iql,cql --members 1,3,15 --no-peer   # groups of runs (a GPU's case)

``--members N`` also times a group of N runs trained together (``offrl.train.group``: N seeds vmapped in one
update loop, sharing the data) and reports the updates/s of each member and of the group (N times that).
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


def arrays_for(algo_name: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The columns this algorithm trains on: discrete actions for discrete ones, plus its derived columns."""
    from offrl.algos import get_algorithm

    algo = get_algorithm(algo_name)
    out = dict(arrays)
    rng = np.random.default_rng(1)
    if not algo.supports_continuous:
        out["actions"] = rng.integers(0, ACTION_DIM, SIZE).astype(np.int32)
    for name in algo.extra_columns:
        if name == "next_actions":
            out[name] = np.concatenate([out["actions"][1:], out["actions"][-1:]])
        elif name == "mc_returns":
            out[name] = (rng.standard_normal(SIZE) * 10).astype(np.float32)
        elif name == "from_data":  # half logged data, half simulator rows, as H2O's batches
            out[name] = (rng.random(SIZE) < 0.5).astype(np.float32)
        elif name == "is_expert":  # 1000 demonstration rows, as ReCOIL's paper uses
            out[name] = (np.arange(SIZE) >= SIZE - 1000).astype(np.float32)
        else:
            raise ValueError(f"no synthetic {name!r} column for {algo_name}")
    return out


def offline_algorithms() -> list[str]:
    """Every registered algorithm the offline trainer runs (not the online SAC and TD3, nor RLPD, which learns
    online from offline data)."""
    from offrl.algos import ALGORITHMS

    return [name for name in ALGORITHMS if name not in ("sac", "td3", "rlpd")]


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_offrl(
    algo_name: str,
    arrays: dict[str, np.ndarray],
    updates: int,
    repeats: int,
    updates_per_call: int,
    block_seconds: float = 0.0,
) -> dict[str, float]:
    import jax

    from offrl.algos import get_algorithm
    from offrl.algos.base import Spec, training_update
    from offrl.train.engine import UpdateLoop, metric_names

    algo = get_algorithm(algo_name)
    config = algo.configure_for_training(algo.config_class(), 1_000_000)
    spec = Spec((OBS_DIM,), ACTION_DIM, discrete=not algo.supports_continuous)
    agent = algo.init(jax.random.PRNGKey(0), spec, config)
    key = jax.random.PRNGKey(1)
    arrays = arrays_for(algo_name, arrays)
    data = jax.device_put(arrays)
    update = training_update(algo, config, arrays)
    loop = UpdateLoop(update, BATCH)
    names = metric_names(update, agent, data, BATCH)
    start = time.perf_counter()
    loop.compile(agent, key, data, updates_per_call)
    compile_seconds = time.perf_counter() - start
    state = {"agent": agent, "key": key}

    def call() -> None:
        state["agent"], state["key"], _ = loop.run(state["agent"], state["key"], data, updates_per_call, names)

    return {**timed_blocks(call, updates, repeats, updates_per_call, block_seconds), "compile_seconds": compile_seconds}


def timed_blocks(
    call, updates: int, repeats: int, updates_per_call: int, block_seconds: float = 0.0
) -> dict[str, float]:
    """Updates/s of ``call`` (one jitted call of ``updates_per_call`` updates, compiled already): a warm-up call,
    then the median, min and max over ``repeats`` blocks of ``updates`` updates (or of about ``block_seconds``)."""
    start = time.perf_counter()
    call()  # warm-up
    warm_rate = updates_per_call / (time.perf_counter() - start)
    calls = max(1, updates // updates_per_call)
    if block_seconds > 0:
        calls = max(1, round(block_seconds * warm_rate / updates_per_call))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        rates.append(calls * updates_per_call / (time.perf_counter() - start))
    return {
        "updates_per_second": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "updates_per_block": calls * updates_per_call,
    }


def bench_group(
    algo_name: str,
    arrays: dict[str, np.ndarray],
    members: int,
    updates: int,
    repeats: int,
    updates_per_call: int,
    block_seconds: float = 0.0,
) -> dict[str, float]:
    """Like ``bench_offrl`` for a group of ``members`` runs (seeds 0..N-1) in one vmapped loop."""
    import jax
    import jax.numpy as jnp

    from offrl.algos import get_algorithm
    from offrl.algos.base import Spec, training_update
    from offrl.train.engine import GroupUpdateLoop, metric_names

    algo = get_algorithm(algo_name)
    config = algo.configure_for_training(algo.config_class(), 1_000_000)
    spec = Spec((OBS_DIM,), ACTION_DIM, discrete=not algo.supports_continuous)
    single = [algo.init(jax.random.PRNGKey(seed), spec, config) for seed in range(members)]
    agents = jax.tree.map(lambda *xs: jnp.stack(xs), *single)
    keys = jnp.stack([jax.random.PRNGKey(1000 + seed) for seed in range(members)])
    arrays = arrays_for(algo_name, arrays)
    data = jax.device_put(arrays)
    sizes, slots = jnp.array([SIZE], jnp.int32), jnp.zeros(members, jnp.int32)
    update = training_update(algo, config, arrays)
    loop = GroupUpdateLoop(update, BATCH)
    names = metric_names(update, single[0], data, BATCH)
    state = {"agents": agents, "keys": keys}

    def call() -> None:
        state["agents"], state["keys"], _ = loop.run(
            state["agents"], state["keys"], slots, data, sizes, updates_per_call, names
        )

    call()  # compiles (timed apart by the loop)
    timed = timed_blocks(call, updates, repeats, updates_per_call, block_seconds)
    return {
        "members": members,
        **timed,  # updates/s of each member
        "group_updates_per_second": members * timed["updates_per_second"],
        "compile_seconds": loop.compile_seconds,
    }


PEER_ALGOS = ("iql", "td3bc", "cql", "cal-ql", "awac", "rebrac", "prdc")


def bench_d3rlpy(
    algo_name: str,
    arrays: dict[str, np.ndarray],
    updates: int,
    repeats: int,
    block_seconds: float = 0.0,
    device: str = "cpu:0",
    compile_graph: bool = False,
) -> dict[str, float]:
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
    three_layers = d3rlpy.models.VectorEncoderFactory([256, 256, 256])
    if algo_name == "iql":
        algo = d3rlpy.algos.IQLConfig(batch_size=BATCH, compile_graph=compile_graph).create(device=device)
    elif algo_name in ("cql", "cal-ql"):
        # offrl's CQL defaults: 3x256 actor and critics, 10 sampled actions, weight 5 (d3rlpy also tunes its
        # Lagrange alpha by default; alpha_learning_rate 0 keeps it fixed, as offrl's default is)
        config = d3rlpy.algos.CQLConfig if algo_name == "cql" else d3rlpy.algos.CalQLConfig
        algo = config(
            batch_size=BATCH,
            actor_encoder_factory=three_layers,
            critic_encoder_factory=three_layers,
            alpha_learning_rate=0.0,
            conservative_weight=5.0,
            n_action_samples=10,
            compile_graph=compile_graph,
        ).create(device=device)
    elif algo_name == "td3bc":
        algo = d3rlpy.algos.TD3PlusBCConfig(batch_size=BATCH, compile_graph=compile_graph).create(device=device)
    elif algo_name == "prdc":
        algo = d3rlpy.algos.PRDCConfig(batch_size=BATCH, compile_graph=compile_graph).create(device=device)
    elif algo_name == "awac":  # offrl's AWAC: 3x256 actor and critics (d3rlpy's default is 4x256, batch 1024)
        algo = d3rlpy.algos.AWACConfig(
            batch_size=BATCH,
            actor_encoder_factory=three_layers,
            critic_encoder_factory=three_layers,
            compile_graph=compile_graph,
        ).create(device=device)
    elif algo_name == "rebrac":  # offrl's ReBRAC: 3x256, LayerNorm critics; batch 256 here (the paper's is 1024)
        algo = d3rlpy.algos.ReBRACConfig(
            batch_size=BATCH,
            actor_encoder_factory=three_layers,
            critic_encoder_factory=d3rlpy.models.VectorEncoderFactory([256, 256, 256], use_layer_norm=True),
            compile_graph=compile_graph,
        ).create(device=device)
    else:
        raise ValueError(f"no d3rlpy counterpart for {algo_name!r} in this benchmark")
    if algo_name == "prdc":  # d3rlpy fits PRDC's neighbour index in fit(); done here as fit() does it
        keys = np.concatenate([algo.config.beta * arrays["observations"], arrays["actions"]], axis=1)
        algo._nbsr.fit(keys)
    algo.build_with_dataset(dataset)
    start = time.perf_counter()
    for _ in range(50):
        algo.update(dataset.sample_transition_batch(BATCH))
    if block_seconds > 0:
        updates = max(10, round(block_seconds * 50 / (time.perf_counter() - start)))
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
        "device": device,
        "compile_graph": compile_graph,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="iql,td3bc", help="comma-separated offrl algorithms, or all")
    parser.add_argument("--updates", type=int, default=3000, help="updates per timed block (offrl)")
    parser.add_argument("--peer-updates", type=int, default=300, help="updates per timed block (d3rlpy)")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks; the median is reported")
    parser.add_argument("--updates-per-call", type=int, default=1000, help="offrl updates per jitted call")
    parser.add_argument(
        "--block-seconds", type=float, default=0.0, help="size each timed block to about this many seconds instead"
    )
    parser.add_argument(
        "--members",
        default="",
        help="comma-separated group sizes to time besides the single run, e.g. 3,15 (offrl.train.group)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip d3rlpy even when installed")
    parser.add_argument("--peer-device", default="cpu:0", help="d3rlpy's device, e.g. cuda:0 on a GPU machine")
    parser.add_argument(
        "--peer-compile-graph", action="store_true", help="d3rlpy's compile_graph (torch.compile + CUDA graphs; GPU)"
    )
    parser.add_argument("--no-offrl", action="store_true", help="time d3rlpy alone")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table at the end")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    import jax

    arrays = synthetic_arrays()
    names = offline_algorithms() if args.algos == "all" else args.algos.split(",")
    result: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "batch_size": BATCH,
        "offrl": {},
        "offrl_groups": {},
        "d3rlpy": {},
    }
    for name in [] if args.no_offrl else names:
        result["offrl"][name] = bench_offrl(
            name, arrays, args.updates, args.repeats, args.updates_per_call, args.block_seconds
        )
        r = result["offrl"][name]
        print(
            f"offrl  {name:12s} {r['updates_per_second']:8.1f} updates/s  (min {r['min']:.1f}, max {r['max']:.1f}; "
            f"compile {r['compile_seconds']:.1f} s)",
            flush=True,
        )
        for members in [int(m) for m in args.members.split(",") if m.strip() and int(m) > 1]:
            g = bench_group(
                name, arrays, members, args.updates, args.repeats, args.updates_per_call, args.block_seconds
            )
            result["offrl_groups"][f"{name}x{members}"] = g
            gain = g["group_updates_per_second"] / r["updates_per_second"]
            print(
                f"offrl  {name:12s} x{members:<3d} {g['updates_per_second']:8.1f} updates/s per member, "
                f"{g['group_updates_per_second']:9.1f} in all ({gain:.2f}x the single run; "
                f"compile {g['compile_seconds']:.1f} s)",
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
        for name in [n for n in names if n in PEER_ALGOS]:
            r = bench_d3rlpy(
                name,
                arrays,
                args.peer_updates,
                args.repeats,
                args.block_seconds,
                args.peer_device,
                args.peer_compile_graph,
            )
            result["d3rlpy"][name] = r
            line = f"d3rlpy {name:12s} {r['updates_per_second']:8.1f} updates/s  (torch threads {r['torch_threads']})"
            if name in result["offrl"]:
                r["offrl_ratio"] = result["offrl"][name]["updates_per_second"] / r["updates_per_second"]
                line += f"; offrl / d3rlpy = {r['offrl_ratio']:.2f}x"
            print(line, flush=True)
        if "iql" in result["d3rlpy"] and result["offrl"]:
            for name in result["offrl"]:
                ratio = result["offrl"][name]["updates_per_second"] / result["d3rlpy"]["iql"]["updates_per_second"]
                print(f"offrl {name} / d3rlpy iql = {ratio:.2f}x")
    result["peak_memory_mb"] = peak_memory_mb()
    print(f"peak memory (RSS) of the whole process, peer included: {result['peak_memory_mb']:.0f} MB")
    if args.markdown:
        print(markdown_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def markdown_table(result: dict) -> str:
    lines = [
        "| algorithm | offrl updates/s (min-max) | compile | d3rlpy updates/s (min-max) | offrl / d3rlpy |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["offrl"].items():
        peer = result["d3rlpy"].get(name)
        peer_cells = (
            f"{peer['updates_per_second']:.1f} ({peer['min']:.1f}-{peer['max']:.1f}) | {peer['offrl_ratio']:.2f}x"
            if peer
            else "- | -"
        )
        lines.append(
            f"| {name} | {r['updates_per_second']:.1f} ({r['min']:.1f}-{r['max']:.1f}) | "
            f"{r['compile_seconds']:.1f} s | {peer_cells} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
