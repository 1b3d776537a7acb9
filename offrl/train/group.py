"""Several offline runs of one algorithm trained together, as one vmapped update loop.

One run of small networks leaves a GPU mostly idle: an update of two 256x256 critics is a few dozen small kernels,
and their launch latency, not arithmetic, sets the pace. A group stacks the agents of N runs on a leading axis and
runs every member's update in the same kernels (``jax.vmap`` over ``offrl.train.engine``'s scan), so N seeds or N
datasets share the launches of one (on a GPU; the speed-up there is not measured yet: on the H200 of BENCHMARKS.md
one IQL run used ~4 TFLOP/s). On a CPU, where the matrix products already fill the cores, it saves nothing: groups
of 3 ran at 0.7-0.9x the total updates/s of single runs on this project's 2-core machine
(``benchmarks/throughput.py --members 3``).

    from offrl.train import TrainConfig
    from offrl.train.group import train_group

    if __name__ == "__main__":  # needed with eval_workers > 0: the workers are spawned processes
        configs = [TrainConfig(algo="iql", dataset=name, seed=seed) for name in names for seed in (0, 1, 2)]
        results = train_group(configs, eval_workers=4)

Every member is an ordinary run: its own run directory with ``config.json`` (plus a ``group`` entry: the number of
members and this one's index), metrics, checkpoints and ``summary.json``, so everything that reads runs (``offrl
evaluate``, ``offrl workflow``, ``offrl report``, the benchmarks) reads a member. ``offrl train --resume`` continues
one member alone; :func:`resume_group` continues the group from the newest checkpoint all members have.

Members share the algorithm, its config and the loop's settings (``steps``, ``batch_size``, ``updates_per_call``
and the log / evaluation / checkpoint intervals); they may differ in dataset, task, seed, corruption and run
name. Their data must have the same shapes. On one dataset the data is shared and every member draws its batches
exactly as the single run with its seed does; on several, the datasets are zero-padded to the longest and stacked,
and member ``i`` samples only the real rows of its own. An algorithm whose update reads the whole training set
(``bind_dataset``: PRDC, ReCOIL, H2O) needs one dataset per group.

A member follows the same random streams (initialisation, batches) as the single run with its settings; its
numbers differ from that run only by the floating-point reassociation of batched kernels (tested). A member
whose loss turns non-finite stops with its last good checkpoint kept, its result names the problem (and the step
it reached), and the other members go on. With ``eval_workers`` the evaluations run in worker processes, all
members at once, while training waits.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offrl.algos.base import training_update
from offrl.train.checkpoint import CheckpointError, checkpoint_step, list_checkpoints
from offrl.train.engine import GroupUpdateLoop, metric_names
from offrl.train.evaluation_pool import EvaluationPool
from offrl.train.loggers import ProgressBar
from offrl.train.offline import (
    NonFiniteLossError,
    RunFiles,
    RunInputs,
    RunResult,
    TrainConfig,
    _expert_source,
    _run_dir,
    algorithm_and_config,
    check_new_run_dir,
    check_resume_target,
    newest_checkpoint,
    prepare_run,
    read_run_config,
    resolve_dataset,
    resume,
    resume_inputs,
    summary_step,
)

#: The TrainConfig fields every member of a group must share (they set the loop's shape and its stops).
SHARED = ("algo", "steps", "batch_size", "updates_per_call", "log_interval", "eval_interval", "checkpoint_interval")


def train_group(
    configs: Sequence[TrainConfig],
    algo_config: Any = None,
    *,
    eval_workers: int = 0,
    stop_after: int | None = None,
) -> list[RunResult]:
    """Start the runs ``configs`` (one algorithm, its config ``algo_config`` or its defaults) as one group. With
    ``eval_workers`` > 0 the members' evaluations run in that many worker processes at once (from the checkpoint
    saved at each evaluation step), instead of one after another in this process."""
    configs = list(configs)
    _check_shared(configs)
    algo, algo_config = algorithm_and_config(configs[0].algo, algo_config)
    algo_config = algo.configure_for_training(algo_config, configs[0].steps)
    sources: dict[tuple[str, str, int], Any] = {}  # each file is loaded once, however many members use it
    inputs, run_dirs = [], []
    for config in configs:
        where = (config.dataset, config.task, config.max_episode_steps)
        if where not in sources:
            sources[where] = resolve_dataset(*where)
        run_dir = _run_dir(config, sources[where].name)
        check_new_run_dir(run_dir, "continue the group with resume_group (`offrl train --resume DIR DIR ...`)")
        inputs.append(RunInputs(config, algo, algo_config, sources[where], _expert_source(config, algo)))
        run_dirs.append(run_dir)
    return _execute_group(inputs, run_dirs, [None] * len(configs), stop_after, eval_workers)


def resume_group(
    run_dirs: Sequence[str | Path],
    *,
    steps: int | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
    eval_workers: int = 0,
) -> list[RunResult]:
    """Continue a group from the newest checkpoint step all its members have (optionally to ``steps`` in all)."""
    run_dirs = [Path(d) for d in run_dirs]
    inputs = [resume_inputs(d, steps=steps, progress=progress) for d in run_dirs]
    _check_shared([i.config for i in inputs])
    configs = {_json(i.algo_config) for i in inputs}
    if len(configs) > 1:
        raise ValueError("the runs were trained with different algorithm configs; a group shares one")
    saved = [{checkpoint_step(p): p for p in list_checkpoints(d / "checkpoints")} for d in run_dirs]
    common = set.intersection(*(set(s) for s in saved))
    if not common:
        raise CheckpointError(f"the runs {', '.join(map(str, run_dirs))} have no checkpoint step in common")
    step = max(common)
    target = inputs[0].config.steps
    for run_dir, steps_saved in zip(run_dirs, saved, strict=True):
        newest = max(steps_saved)
        if target < newest:
            check_resume_target(run_dir, newest, target)  # refuses: it would go back
        if newest > step and _finished_at(run_dir) == newest:
            raise ValueError(
                f"{run_dir} finished at step {newest} on its own; continuing it with its group from step {step} "
                "would discard its later steps: resume the other runs without it"
            )
    if target == step and all(_finished_at(d) == step for d in run_dirs):
        check_resume_target(run_dirs[0], step, target)  # refuses: they all finished there
    for run_dir, steps_saved in zip(run_dirs, saved, strict=True):
        newer = sorted(k for k in steps_saved if k > step)
        if newer:  # stopped while the group was checkpointing: it goes back to the group's step, as its logs will
            print(
                f"{run_dir}: resumes with its group from step {step}; its newer checkpoints (steps "
                f"{', '.join(map(str, newer))}) are removed",
                flush=True,
            )
            for k in newer:
                steps_saved[k].unlink()
                steps_saved[k].with_suffix(".json").unlink(missing_ok=True)
    return _execute_group(inputs, run_dirs, [s[step] for s in saved], stop_after, eval_workers)


def train_or_resume_group(
    configs: Sequence[TrainConfig],
    algo_config: Any = None,
    *,
    eval_workers: int = 0,
) -> list[RunResult]:
    """Bring the runs ``configs`` (one algorithm and ``algo_config``) to their ``steps``, as a benchmark that was
    stopped and started again needs: the runs whose directory already holds a run continue as one group
    (:func:`resume_group`), or one at a time when they have no checkpoint step in common (they were stopped in
    different groups); the others start as a new group, and runs that already finished are left as they are. A run
    directory stopped before its first checkpoint is refused (remove it to start again). A member that stops on a
    non-finite loss comes back with its ``error`` set, also when it ran alone. The results are those of the runs
    trained, in the order: continued runs, then new ones."""
    configs = list(configs)
    _check_shared(configs)
    dirs = [_run_dir(c, c.run_name or resolve_dataset(c.dataset, c.task, c.max_episode_steps).name) for c in configs]
    started: list[Path] = []
    fresh: list[TrainConfig] = []
    done = 0
    for config, run_dir in zip(configs, dirs, strict=True):
        if not (run_dir / "config.json").exists():
            fresh.append(config)
        elif (_finished_at(run_dir) or -1) >= config.steps:
            done += 1
        elif not list_checkpoints(run_dir / "checkpoints"):
            raise CheckpointError(
                f"{run_dir} holds a run stopped before its first checkpoint (nothing to continue from): remove it to "
                "start that run again"
            )
        else:
            started.append(run_dir)
    print(
        f"group of {len(configs)} {configs[0].algo} runs: {len(started)} to continue, {len(fresh)} new"
        + (f", {done} already finished" if done else ""),
        flush=True,
    )
    results: list[RunResult] = []
    if started:
        steps = configs[0].steps
        try:
            results += resume_group(started, steps=steps, progress=False, eval_workers=eval_workers)
        except CheckpointError as e:
            print(f"{e}; continuing them one at a time", flush=True)
            for run_dir in started:
                try:
                    results.append(resume(run_dir, steps=steps, progress=False))
                except NonFiniteLossError as stopped:
                    step = checkpoint_step(newest_checkpoint(run_dir))  # its last good one
                    results.append(RunResult(run_dir, step, None, None, None, 0.0, 0.0, error=str(stopped)))
    if fresh:
        results += train_group(fresh, algo_config, eval_workers=eval_workers)
    for result in results:
        if result.error:
            print(f"{result.run_dir}: stopped: {result.error}", flush=True)
    return results


def _finished_at(run_dir: Path) -> int | None:
    """The step a run finished at: its summary's, when that is the run's configured end (a run stopped early on
    purpose, ``stop_after``, also writes a summary); else ``None``."""
    step = summary_step(run_dir)
    return step if step is not None and step >= int(read_run_config(run_dir)["train"]["steps"]) else None


def _json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def _check_shared(configs: list[TrainConfig]) -> None:
    if not configs:
        raise ValueError("a group needs at least one run")
    for name in SHARED:
        values = {getattr(c, name) for c in configs}
        if len(values) > 1:
            raise ValueError(f"the runs of a group share {name}; got {sorted(map(str, values))}")


def _execute_group(
    inputs: list[RunInputs],
    run_dirs: list[Path],
    checkpoints: list[Path | None],
    stop_after: int | None,
    eval_workers: int = 0,
) -> list[RunResult]:
    if len({d.resolve() for d in run_dirs}) < len(run_dirs):
        raise ValueError("two runs of the group would share a run directory; give them different run names")
    n = len(inputs)
    started = time.perf_counter()  # one start for every member: the group's setup is theirs alike
    runs = [
        prepare_run(inp, run_dir, checkpoint, {"group": {"members": n, "index": i}}, write=False, started=started)
        for i, (inp, run_dir, checkpoint) in enumerate(zip(inputs, run_dirs, checkpoints, strict=True))
    ]
    algo, algo_config, config = inputs[0].algo, inputs[0].algo_config, inputs[0].config
    for run in runs[1:]:
        if run.metadata["spec"] != runs[0].metadata["spec"] or _shapes(run.arrays) != _shapes(runs[0].arrays):
            raise ValueError(
                f"{run.run_dir} trains on data of other shapes than {runs[0].run_dir} "
                f"({_shapes(run.arrays)} vs {_shapes(runs[0].arrays)}); a group needs one observation and action shape"
            )
    if len({run.step for run in runs}) > 1:
        raise CheckpointError("the members resume from different steps")
    data, sizes, slots = _group_data(runs, algo.bind_dataset is not None)
    for run in runs:  # every check passed: only now does anything reach the run directories
        run.write_config()

    agents = jax.tree.map(lambda *xs: jnp.stack(xs), *[run.agent for run in runs])
    keys = jnp.stack([run.sample_key for run in runs])
    update = training_update(algo, algo_config, runs[0].arrays)
    loop = GroupUpdateLoop(update, config.batch_size)
    names = metric_names(update, runs[0].agent, runs[0].arrays, config.batch_size)
    files = [RunFiles(run, None) for run in runs]
    step = runs[0].step
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    bar = ProgressBar(config.steps, step, config.progress, f"{algo.name} x{n}")
    active = list(range(n))  # the members still training, in the order of the stacked axis
    errors: dict[int, tuple[int, str]] = {}  # member -> (the step it reached, why it stopped)
    pool = EvaluationPool(eval_workers) if eval_workers > 0 and runs[0].task is not None else None
    try:
        # a resumed group whose last evaluation step was checkpointed but not evaluated (stopped in between)
        missing = [i for i in active if files[i].evaluation_missing(step)]
        if pool is not None:
            _evaluate_in_pool(pool, [files[i] for i in missing], step)
        else:
            for i in missing:
                files[i].evaluate(step, _member(agents, i))
        while step < end and active:
            k = min(config.updates_per_call, min(files[active[0]].boundaries(step, end)) - step)
            agents, keys, chunks = loop.run(agents, keys, slots, data, sizes, k, names)
            failed = [j for j, chunk in enumerate(chunks) if chunk.non_finite is not None]
            for j in failed:  # its state after this chunk is not kept: its newest checkpoint is the last good one
                errors[active[j]] = (step, str(files[active[j]].non_finite_error(step, chunks[j].non_finite)))
            if failed:
                keep = np.array([j for j in range(len(active)) if j not in failed], dtype=np.int32)
                agents = _select(agents, keep)
                keys, slots = keys[keep], slots[keep]
                chunks = [chunks[j] for j in keep]
                active = [active[j] for j in keep]
            step += k
            seconds = chunks[0].seconds if chunks else 0.0
            bar.advance(k, chunks[0].metrics if chunks else {}, k * len(active) / seconds if seconds > 0 else 0.0)
            due = []
            for j, i in enumerate(active):
                state = partial(_member_state, agents, keys, j)
                metrics = chunks[j].metrics
                if files[i].after_chunk(step, k, metrics, seconds, end, state, loop.compile_seconds, pool is None):
                    due.append(i)
            _evaluate_in_pool(pool, [files[i] for i in due], step)
        if pool is not None:
            final = [(j, i) for j, i in enumerate(active) if files[i].needs_final_evaluation(step)]
            for j, i in final:  # the pool evaluates a checkpoint: one at this step (a resume may start at the end)
                last = files[i].last_checkpoint
                if last is None or checkpoint_step(last) != step:
                    files[i].save(step, *_member_state(agents, keys, j))
            _evaluate_in_pool(pool, [files[i] for _, i in final], step)
        else:
            for j, i in enumerate(active):
                files[i].finish(step, _member(agents, j))
    finally:
        bar.close()
        for f in files:
            f.close()
        if pool is not None:
            pool.close()
    results: list[RunResult] = []
    for i in range(n):
        if i in errors:
            run = runs[i]
            reached, error = errors[i]
            results.append(RunResult(run.run_dir, reached, None, None, run.behaviour, 0.0, 0.0, error=error))
        else:
            agent = _member(agents, active.index(i))
            results.append(files[i].write_summary(step, agent, loop.compile_seconds))
    return results


def _evaluate_in_pool(pool: EvaluationPool | None, members: list[RunFiles], step: int) -> None:
    """Evaluate the checkpoints the members saved at ``step``, all at once in the pool's workers."""
    if pool is None or not members:
        return
    jobs = [(f.last_checkpoint, f.config.eval_episodes, f.evaluation_seed) for f in members]
    for f, result in zip(members, pool.evaluate(jobs), strict=True):
        f.record_evaluation(step, result)


def _member(agents: Any, j: int) -> Any:
    return jax.tree.map(lambda x: x[j], agents)


def _member_state(agents: Any, keys: jax.Array, j: int) -> tuple[Any, jax.Array]:
    return _member(agents, j), keys[j]


def _select(agents: Any, keep: np.ndarray) -> Any:
    return jax.tree.map(lambda x: x[keep], agents)


def _shapes(arrays: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {name: (a.shape[1:], str(a.dtype)) for name, a in sorted(arrays.items())}


def _group_data(runs: list, reads_whole_set: bool) -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
    """The device data of a group, the row count of each distinct dataset and each member's dataset index: one
    dataset as its plain columns, several zero-padded to the longest and stacked on a leading axis."""
    slot_of: dict[str, int] = {}
    distinct = []
    for run in runs:
        fingerprint = run.metadata["dataset"]["training_fingerprint"]
        if fingerprint not in slot_of:
            slot_of[fingerprint] = len(distinct)
            distinct.append(run.arrays)
    slots = jnp.array([slot_of[run.metadata["dataset"]["training_fingerprint"]] for run in runs], dtype=jnp.int32)
    sizes = np.array([len(next(iter(a.values()))) for a in distinct], dtype=np.int32)
    if len(distinct) == 1:
        return jax.device_put(distinct[0]), jnp.asarray(sizes), slots
    if reads_whole_set:
        raise ValueError(
            f"{runs[0].inputs.algo.name} reads the whole training set in its update, so a group of its runs needs "
            f"one dataset; these runs train on {len(distinct)} (group them by dataset)"
        )
    longest = int(sizes.max())
    stacked = {}
    for name, first in distinct[0].items():
        column = np.zeros((len(distinct), longest, *first.shape[1:]), dtype=first.dtype)
        for d, arrays in enumerate(distinct):
            column[d, : sizes[d]] = arrays[name]
        stacked[name] = column
    return jax.device_put(stacked), jnp.asarray(sizes), slots
