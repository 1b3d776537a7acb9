"""Normalised scores of offrl's algorithms on datasets x seeds, with d3rlpy's rows, as a Markdown table.

    python benchmarks/scores.py --quick
    python benchmarks/scores.py --suite hopper --data-dir data/suite --algos bc,td3bc,iql --seeds 0,1,2 \\
        --steps 200000 --jobs 2 --peer --out runs/scores-hopper --into BENCHMARKS.md
    python benchmarks/scores.py --datasets ../shared/data/hopper-medium.hdf5 --task hopper --out runs/x
    python benchmarks/scores.py --datasets data/suite/hopper-medium.hdf5 --task hopper --algos riql,iql,cql,td3bc \
        --corruptions none,observations:random:0.3,actions:random:0.3,rewards:random:0.3,dynamics:random:0.3 \
        --seeds 0,1,2 --steps 200000 --jobs 2 --out runs/corruption

Datasets: ``--datasets`` (comma-separated files, directories or built-in names; ``--dataset`` is the same) or
``--suite FAMILY[,FAMILY]``: the files ``FAMILY-{random,medium,expert,medium-expert,medium-replay}.hdf5`` in
``--data-dir``, as ``benchmarks/make_suite.py`` writes them (missing ones are named and skipped). The task is
``--task``, else the suite's family, else the dataset's own.

Each (dataset, algorithm, seed) is one ``offrl.train.train`` run with the settings in
``benchmarks/configs/ALGO-FAMILY.json`` (one small file per algorithm and task family: ``mujoco`` for hopper /
halfcheetah / walker2d / ant, ``classic`` otherwise; paper defaults); its run directory is
``--out/DATASET/ALGO-sSEED``. With ``--peer`` (d3rlpy installed, e.g. the ``bench`` extra) d3rlpy's counterparts
of ``--algos`` (IQL, TD3+BC, CQL, Cal-QL, AWAC, PRDC, ReBRAC) run on the same data, steps and seeds
(``benchmarks/peer_d3rlpy.py``; results
in ``--out/DATASET/d3rlpy-ALGO-sSEED.json``) and get their own rows. ``--jobs N`` runs N of these at once, each
in its own process pinned to one core with single-threaded XLA (and one torch thread for d3rlpy). Work is done
seed by seed, so an interrupted benchmark already has whole seeds.

``--group`` trains the offrl runs of each algorithm (and settings) together as one vmapped group
(``offrl.train.group``): every dataset, seed and corruption at once in this process, meant for a GPU
(``benchmarks/gpu_zoo.sh``); ``--eval-workers N`` evaluates them in N worker processes. A group member's
updates/s is its own (the group's total is that times its size) and its training time is the group's.

``--corruptions`` runs every dataset also (or only) in corrupted variants (``offrl train --corruption``, the RIQL
paper's protocol, ``offrl/data/corruption.py``): ``none`` is the clean data, ``KIND:MODE:RATE[:SCALE]`` a variant,
named ``DATASET+KIND-MODE-RATE`` under ``--out``; the corruption seed is the run's seed. d3rlpy runs only on clean
data.

Runs already finished under ``--out`` are read back instead of trained again and unfinished ones resume from their
newest checkpoint: an interrupted benchmark continues where it stopped (the same command again), and
``--table-only`` prints the table of whatever has finished. Each run holds an exclusive lock on a file beside its
results while it trains, so several invocations on one machine can share one ``--out`` (e.g. one per core set)
without running the same run twice.

The table reports, per dataset and algorithm, mean +- std over seeds of: the final evaluation during training
(``--eval-episodes`` episodes, default 10), the best evaluation during training, and the final checkpoint
re-evaluated on ``--final-episodes`` episodes (default 100, environment seeds 100000.. for every run; on hopper an
episode either falls early or runs long, so 10 episodes move by 20 points between evaluation seeds); plus
updates/s (offrl: the median of a run's log windows, ``update_time``) and a run's minutes in its update loop.
``--into FILE`` also writes the table into FILE between the lines ``<!-- scores:NAME -->`` and
``<!-- /scores:NAME -->`` (NAME = the --out folder's name), replacing what was
there, or appends it with those markers.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from markdown_block import write_block  # noqa: E402

SUITE_KINDS = ("random", "medium", "expert", "medium-expert", "medium-replay")
PEER_ALGOS = ("iql", "td3bc", "cql", "cal-ql", "awac", "prdc", "rebrac")  # those benchmarks/peer_d3rlpy.py runs
CONFIGS = Path(__file__).resolve().parent / "configs"
FAMILIES = {"hopper": "mujoco", "halfcheetah": "mujoco", "walker2d": "mujoco", "ant": "mujoco"}
FINAL_EVAL_SEED = 100_000
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def atomic_write_json(path: Path, record: dict) -> None:
    from offrl.train.checkpoint import atomic_write_json as write

    write(path, record)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One training run of the benchmark."""

    dataset: str  # path or built-in name
    name: str  # the dataset's short name: its folder under --out
    task: str
    algo: str
    seed: int
    library: str = "offrl"  # or "d3rlpy"
    corruption: str = ""  # offrl.data.corruption spec, "" = clean

    @property
    def label(self) -> str:
        prefix = "d3rlpy-" if self.library == "d3rlpy" else ""
        return f"{self.name}/{prefix}{self.algo}-s{self.seed}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", "--dataset", dest="datasets", help="comma-separated datasets")
    parser.add_argument("--suite", help="comma-separated task families, e.g. hopper (files from --data-dir)")
    parser.add_argument("--data-dir", default="data/suite", help="where --suite finds its files")
    parser.add_argument("--task", default="", help="evaluation task (default: the suite family / the dataset's)")
    parser.add_argument("--algos", default="bc,td3bc,iql")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--eval-interval", type=int, default=50_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--final-episodes", type=int, default=100, help="episodes of the final re-evaluation")
    parser.add_argument("--checkpoint-interval", type=int, default=10_000, help="so an interrupted run loses little")
    parser.add_argument("--out", help="folder for run directories and results.json (--quick: runs/scores-quick)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one process per core (default 1)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small set that finishes in minutes: BC, TD3+BC and IQL on the built-in pendulum-mixed data (no "
        "download), 1 seed, 5000 updates, 20 final episodes",
    )
    parser.add_argument("--table-only", action="store_true", help="only print the table of finished runs")
    parser.add_argument("--into", help="also write the table into this Markdown file (e.g. BENCHMARKS.md)")
    parser.add_argument(
        "--archive",
        help="copy the small files of every finished run (summary, evaluations, final evaluation, config; no "
        "checkpoints) into this folder, e.g. benchmarks/results/NAME; `--table-only --out` that folder rebuilds the "
        "table",
    )
    parser.add_argument(
        "--peer",
        action="store_true",
        help="also run d3rlpy's IQL and TD3+BC (those of --algos it has) on the same data, steps and seeds, in "
        "this invocation, and add their rows (needs the bench extra)",
    )
    parser.add_argument(
        "--corruptions",
        default="none",
        help="comma-separated data variants: none (clean) and/or corruption specs KIND:MODE:RATE[:SCALE]",
    )
    parser.add_argument(
        "--group",
        action="store_true",
        help="train the offrl runs of one algorithm and settings together, as one vmapped update loop per group "
        "(offrl.train.group: every dataset, seed and corruption of an algorithm at once; meant for a GPU), in this "
        "process; --jobs then applies to the d3rlpy runs only",
    )
    parser.add_argument(
        "--eval-workers",
        type=int,
        default=0,
        help="with --group: run the evaluations (during training and the final one) in this many worker "
        "processes at once, one core each",
    )
    parser.add_argument("--unit", help=argparse.SUPPRESS)  # internal: one run, as JSON (a --jobs worker)
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.task = args.datasets or "pendulum-mixed", args.task or "pendulum"
        args.seeds, args.steps, args.eval_interval, args.final_episodes = "0", 5000, 2500, 20
        args.checkpoint_interval = 2500
        args.out = args.out or "runs/scores-quick"
    if args.unit:
        if os.environ.get("OFFRL_BENCH_CORE") and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {int(os.environ["OFFRL_BENCH_CORE"])})  # the core --jobs gave this run
        run_unit(Unit(**json.loads(args.unit)), args)
        return
    if args.eval_workers and not args.group:
        parser.error("--eval-workers is for --group (other runs evaluate in their own process)")
    if not (args.datasets or args.suite) or not args.out:
        parser.error("--datasets (or --suite) and --out are required (or use --quick)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    algos = args.algos.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = with_corruptions(dataset_list(args), args.corruptions)
    units = [
        Unit(path, name, task, algo, seed, library, corruption)
        for seed in seeds
        for path, name, task, corruption in datasets
        for algo in algos
        for library in (("offrl", "d3rlpy") if args.peer and algo in PEER_ALGOS and not corruption else ("offrl",))
    ]
    check_same_data(out, units)
    if not args.table_only:
        if args.peer and not _has_d3rlpy():
            print("d3rlpy is not installed (pip install 'offrl[bench]'): no peer rows", flush=True)
            units = [u for u in units if u.library == "offrl"]
        todo = [u for u in units if not finished(u, out, args.steps)]
        print(f"{len(units) - len(todo)} of {len(units)} runs already finished; {len(todo)} to run", flush=True)
        if args.group:
            run_groups([u for u in todo if u.library == "offrl"], args)
            todo = [u for u in todo if u.library != "offrl"]
        if args.jobs > 1:
            run_in_processes(todo, args, argv if argv is not None else sys.argv[1:])
        else:
            for unit in todo:
                run_unit(unit, args)
    text = table(out, datasets, algos, seeds, args.steps, args.final_episodes, args.eval_episodes)
    print(text)
    if args.into:
        write_into(Path(args.into), out.name, text)
    if args.archive:
        archive(out, Path(args.archive))


def dataset_list(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(path or name, short name, task) of every dataset asked for."""
    found = []
    if args.datasets:
        for item in args.datasets.split(","):
            path = Path(item)
            name = path.stem if path.suffix else path.name
            found.append((item, name, args.task))
    for family in args.suite.split(",") if args.suite else []:
        for kind in SUITE_KINDS:
            path = Path(args.data_dir) / f"{family}-{kind}.hdf5"
            if path.exists():
                found.append((str(path), path.stem, args.task or family))
            else:
                print(f"{path} is missing (make it with benchmarks/make_suite.py): skipped", flush=True)
    return found


def with_corruptions(datasets: list[tuple[str, str, str]], corruptions: str) -> list[tuple[str, str, str, str]]:
    """(path, name, task, corruption spec) of every dataset variant asked for; the clean one is spec ""."""
    from offrl.data.corruption import Corruption

    specs = [c.strip() for c in corruptions.split(",") if c.strip()] or ["none"]
    out = []
    for path, name, task in datasets:
        for spec in specs:
            if spec == "none":
                out.append((path, name, task, ""))
                continue
            Corruption.parse(spec, 0)  # a bad spec fails before any run starts
            out.append((path, f"{name}+{spec.replace(':', '-')}", task, spec))
    return out


def finished(unit: Unit, out: Path, steps: int) -> bool:
    if unit.library == "d3rlpy":
        path = out / unit.name / f"d3rlpy-{unit.algo}-s{unit.seed}.json"
        return path.exists() and json.loads(path.read_text())["steps"] >= steps
    run_dir = out / unit.name / f"{unit.algo}-s{unit.seed}"
    summary = run_dir / "summary.json"
    return summary.exists() and json.loads(summary.read_text())["step"] >= steps


def recorded_fingerprint(unit: Unit, out: Path) -> str | None:
    """The content fingerprint of the data a started or finished run of the unit trained on, if it recorded one
    (offrl runs: their config.json; d3rlpy records and saves from 2026-11-28 on)."""
    if unit.library == "d3rlpy":
        places = [out / unit.name / f"d3rlpy-{unit.algo}-s{unit.seed}.json"]
        places.append(out / unit.name / f".d3rlpy-{unit.algo}-s{unit.seed}" / "progress.json")
        for path in places:
            if path.exists():
                return json.loads(path.read_text()).get("fingerprint")
        return None
    return offrl_run_fingerprint(out / unit.name / f"{unit.algo}-s{unit.seed}")


def offrl_run_fingerprint(run_dir: Path) -> str | None:
    """The content fingerprint of the data an offrl run (started or finished) trained on, from its config.json."""
    config = run_dir / "config.json"
    if not config.exists():
        return None
    return json.loads(config.read_text()).get("dataset", {}).get("fingerprint")


def check_same_data(out: Path, units: list[Unit]) -> None:
    """Refuse to continue or tabulate the units' runs under ``out`` that were trained on other data than the file now
    at their dataset's path (``refuse_runs_on_other_data``)."""
    refuse_runs_on_other_data(out, [(u.label, recorded_fingerprint(u, out), u.dataset, u.task) for u in units])


def refuse_runs_on_other_data(out: Path, runs: list[tuple[str, str | None, str, str]]) -> None:
    """Raise ``SystemExit`` naming every run (label, recorded data fingerprint, dataset path or name, task) whose
    recorded fingerprint differs from the data now at its dataset's path (a rebuilt file, another file of the same
    name): a table would mix two datasets in one row. A run that recorded no fingerprint (d3rlpy records written
    before 2026-11-28) is not checked; each dataset is read once."""
    from offrl.train.offline import resolve_dataset

    fingerprints: dict[str, str] = {}
    stale = []
    for label, recorded, dataset, task in runs:
        if recorded is None:
            continue
        if dataset not in fingerprints:
            fingerprints[dataset] = resolve_dataset(dataset, task).dataset.fingerprint()
        if recorded != fingerprints[dataset]:
            stale.append(
                f"{label} (trained on data {recorded[:12]}..., {dataset} is now {fingerprints[dataset][:12]}...)"
            )
    if stale:
        raise SystemExit(
            f"{out} holds runs trained on other data than the file they name now: {'; '.join(stale)}. "
            "Move them out of --out (or restore the file they were trained on): one table row must come from one "
            "dataset."
        )


@contextlib.contextmanager
def unit_lock(unit: Unit, out: Path):
    """Yield whether this process holds the unit: each run holds an exclusive ``flock`` on a lock file beside its
    results while it trains (the kernel drops it when the process ends, however it ends)."""
    lock_path = out / unit.name / f".{unit.label.split('/')[1]}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            print(f"{unit.label}: running in process {lock.read().strip() or '?'}, skipped", flush=True)
            yield False
            return
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield True


def run_unit(unit: Unit, args: argparse.Namespace) -> None:
    """Run one unit unless another process is running it."""
    with unit_lock(unit, Path(args.out)) as mine:
        if mine and not finished(unit, Path(args.out), args.steps):
            _run_unit(unit, args)


def unit_run_dir(unit: Unit, args: argparse.Namespace) -> Path:
    """The unit's run directory; one left by a run stopped before its first checkpoint is removed (only logs)."""
    from offrl.train.checkpoint import list_checkpoints

    run_dir = Path(args.out) / unit.name / f"{unit.algo}-s{unit.seed}"
    if (run_dir / "config.json").exists() and not list_checkpoints(run_dir / "checkpoints"):
        print(f"{unit.label}: stopped before its first checkpoint; starting it again", flush=True)
        shutil.rmtree(run_dir)  # only logs of a run that never reached a checkpoint, inside --out
    return run_dir


def unit_config(unit: Unit, args: argparse.Namespace):
    """The TrainConfig and algorithm config of a new offrl run of the unit (the settings file's, see
    ``paper_config``)."""
    from offrl.train import TrainConfig

    algo_config, config_file, batch_size = paper_config(unit.algo, unit.task, unit.name.split("+")[0])
    print(f"{unit.label}: settings from {config_file}", flush=True)
    config = TrainConfig(
        algo=unit.algo,
        dataset=unit.dataset,
        task=unit.task,
        steps=args.steps,
        seed=unit.seed,
        eval_interval=args.eval_interval,
        eval_episodes=args.eval_episodes,
        checkpoint_interval=args.checkpoint_interval,
        output_dir=str(Path(args.out) / unit.name),
        run_name=f"{unit.algo}-s{unit.seed}",
        progress=False,
        corruption=unit.corruption,
        corruption_seed=unit.seed,
        **({"batch_size": batch_size} if batch_size else {}),
    )
    return config, algo_config


def _run_unit(unit: Unit, args: argparse.Namespace) -> None:
    """Train (or resume) one run, then re-evaluate its final checkpoint on --final-episodes episodes."""
    out = Path(args.out) / unit.name
    if unit.library == "d3rlpy":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from peer_d3rlpy import train_and_evaluate

        record = train_and_evaluate(
            unit.algo,
            unit.dataset,
            unit.task,
            args.steps,
            unit.seed,
            args.eval_interval,
            args.eval_episodes,
            args.final_episodes,
            resume_dir=out / f".d3rlpy-{unit.algo}-s{unit.seed}",  # continue from the last save if stopped
            save_interval=args.checkpoint_interval,
        )
        atomic_write_json(out / f"d3rlpy-{unit.algo}-s{unit.seed}.json", record)
        shutil.rmtree(out / f".d3rlpy-{unit.algo}-s{unit.seed}", ignore_errors=True)
        print(f"{unit.label}: normalised {record['final_score']:.1f}", flush=True)
        return
    from offrl.train import resume, train

    run_dir = unit_run_dir(unit, args)
    if (run_dir / "config.json").exists():
        resume(run_dir, steps=args.steps, progress=False)
    else:
        train(*unit_config(unit, args))
    if args.final_episodes:
        final_evaluation(run_dir, args.final_episodes)
    report(unit, run_dir)


def report(unit: Unit, run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    print(
        f"{unit.label}: normalised {summary['eval/normalized_score']:.1f} "
        f"(behaviour {summary['behaviour_normalized_score']:.1f}), "
        f"{summary['updates_per_second']:.0f} updates/s",
        flush=True,
    )


def run_groups(units: list[Unit], args: argparse.Namespace) -> None:
    """Train the offrl units as groups (``offrl.train.group``): one per algorithm and settings, and per dataset for
    an algorithm whose update reads the whole training set. Units another process holds are left to it."""
    from offrl.algos import get_algorithm
    from offrl.train.group import train_or_resume_group

    groups: dict[tuple, list[Unit]] = {}
    for unit in units:
        algo_config, _, batch_size = paper_config(unit.algo, unit.task, unit.name.split("+")[0])
        own_data = unit.dataset if get_algorithm(unit.algo).bind_dataset is not None else ""
        key = (unit.algo, unit.task, repr(algo_config), batch_size, own_data)  # one task: one observation shape
        groups.setdefault(key, []).append(unit)
    out = Path(args.out)
    for members in groups.values():
        with contextlib.ExitStack() as locks:
            mine = [u for u in members if locks.enter_context(unit_lock(u, out)) and not finished(u, out, args.steps)]
            if not mine:
                continue
            for u in mine:
                unit_run_dir(u, args)  # removes a run stopped before its first checkpoint (only logs)
            configs = [unit_config(u, args) for u in mine]
            train_or_resume_group([c for c, _ in configs], configs[0][1], eval_workers=args.eval_workers)
            done = [u for u in mine if finished(u, out, args.steps)]
            dirs = [unit_run_dir(u, args) for u in done]
            if args.final_episodes:
                final_evaluations(dirs, args.final_episodes, args.eval_workers)
            for u, run_dir in zip(done, dirs, strict=True):
                report(u, run_dir)


def run_in_processes(units: list[Unit], args: argparse.Namespace, argv: list[str]) -> None:
    """Run the units ``args.jobs`` at a time, each in a child process pinned to its own core."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    slots: dict[int, tuple[subprocess.Popen, Unit] | None] = {i: None for i in range(args.jobs)}
    pending, failed = list(units), []
    xla_flags = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), SINGLE_THREAD_XLA) if f)
    env = {**os.environ, "XLA_FLAGS": xla_flags, "OMP_NUM_THREADS": "1"}
    base = [a for a in argv if a not in ("--peer", "--table-only")]
    base = [a for i, a in enumerate(base) if not (a == "--jobs" or (i and base[i - 1] == "--jobs"))]
    base = [a for a in base if not a.startswith("--jobs=")]
    while pending or any(slots.values()):
        for slot, running in slots.items():
            if running is not None and running[0].poll() is not None:
                if running[0].returncode:
                    failed.append(running[1].label)
                    print(f"{running[1].label}: failed (exit {running[0].returncode})", flush=True)
                slots[slot] = running = None
            if running is None and pending:
                unit = pending.pop(0)
                core = cores[slot % len(cores)]
                command = [sys.executable, __file__, *base, "--unit", json.dumps(dataclasses.asdict(unit))]
                process = subprocess.Popen(command, env={**env, "OFFRL_BENCH_CORE": str(core)})
                slots[slot] = (process, unit)
                print(f"{unit.label}: started on core {core}", flush=True)
        time.sleep(1.0)
    if failed:
        print(f"{len(failed)} runs failed: {', '.join(failed)}; run the same command again to retry", flush=True)


def _has_d3rlpy() -> bool:
    try:
        import d3rlpy  # noqa: F401
    except ImportError:
        return False
    return True


def paper_config(algo_name: str, task: str, dataset: str = ""):
    """The algorithm's settings for the task's family from ``benchmarks/configs/ALGO-FAMILY.json``: the file's
    ``per_task`` and then ``per_dataset`` entries, if any, override some of them for one task or dataset (PRDC's
    alpha on halfcheetah, ReBRAC's betas); ``batch_size`` there is the trainer's. Returns (algorithm config, file,
    batch size or None)."""
    from offrl.algos import get_algorithm

    family = FAMILIES.get(task.lower(), "classic")
    path = CONFIGS / f"{algo_name}-{family}.json"
    algo = get_algorithm(algo_name)
    if not path.exists():
        return algo.config_class(), f"{algo_name}'s defaults (no {path.name})", None
    settings = json.loads(path.read_text())
    values = {k: v for k, v in settings.items() if not k.startswith("_") and k not in ("per_task", "per_dataset")}
    values.update(settings.get("per_task", {}).get(task.lower(), {}))
    values.update(settings.get("per_dataset", {}).get(dataset, {}))
    batch_size = values.pop("batch_size", None)
    known = {f.name for f in dataclasses.fields(algo.config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path} sets unknown {algo_name} options {unknown}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return algo.config_class(**values), str(path.relative_to(CONFIGS.parent.parent)), batch_size


def final_evaluation(run_dir: Path, episodes: int) -> dict:
    """The run's final checkpoint on ``episodes`` episodes (env seeds FINAL_EVAL_SEED...), cached in the run dir."""
    path = run_dir / "final_eval.json"
    step = json.loads((run_dir / "summary.json").read_text())["step"]
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("episodes") == episodes and cached.get("step") == step:
            return cached
    from offrl.envs import evaluate
    from offrl.train.offline import load_policy

    policy = load_policy(run_dir)
    result = evaluate(policy, policy.task, episodes, seed=FINAL_EVAL_SEED)
    record = {"episodes": episodes, "seed": FINAL_EVAL_SEED, "step": policy.metadata.get("step"), **result.summary()}
    atomic_write_json(path, record)
    return record


def final_evaluations(run_dirs: list[Path], episodes: int, workers: int) -> None:
    """``final_evaluation`` of each run, in ``workers`` processes at once (0: here, one after another)."""
    if workers < 1:
        for run_dir in run_dirs:
            final_evaluation(run_dir, episodes)
        return
    from offrl.train.checkpoint import list_checkpoints
    from offrl.train.evaluation_pool import EvaluationPool

    todo = []
    for run_dir in run_dirs:
        path = run_dir / "final_eval.json"
        step = json.loads((run_dir / "summary.json").read_text())["step"]
        cached = json.loads(path.read_text()) if path.exists() else {}
        if cached.get("episodes") != episodes or cached.get("step") != step:
            todo.append((run_dir, list_checkpoints(run_dir / "checkpoints")[-1]))
    if not todo:
        return
    with EvaluationPool(min(workers, len(todo))) as pool:
        results = pool.evaluate([(checkpoint, episodes, FINAL_EVAL_SEED) for _, checkpoint in todo])
    for (run_dir, checkpoint), result in zip(todo, results, strict=True):
        step = json.loads(checkpoint.with_suffix(".json").read_text()).get("step")
        record = {"episodes": episodes, "seed": FINAL_EVAL_SEED, "step": step, **result.summary()}
        atomic_write_json(run_dir / "final_eval.json", record)


def update_time(run_dir: Path) -> dict[str, float]:
    """How fast the run updated: ``updates``, ``update_seconds`` (its time in the update loop, summed over its
    metric records and all its invocations; a resumed run's records restart at its checkpoint, so none counts twice)
    and ``median_rate``, the median of its log windows' updates/s, which a window stretched by a pause of the
    machine (a process stopped while CI ran) or a burst of load does not move. Read from ``timing.json`` where an
    archive keeps only that; else from the summary (the last invocation's rate)."""
    if (run_dir / "timing.json").exists():
        return json.loads((run_dir / "timing.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    if (run_dir / "metrics.jsonl").exists():
        previous, seconds, rates = 0, 0.0, []
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("kind") == "train" and row.get("time/updates_per_second"):
                seconds += (row["step"] - previous) / row["time/updates_per_second"]
                rates.append(row["time/updates_per_second"])
                previous = row["step"]
        if previous == summary["step"]:
            return {"updates": previous, "update_seconds": seconds, "median_rate": statistics.median(rates)}
    rate = summary["updates_per_second"]
    return {"updates": summary["step"], "update_seconds": summary["step"] / rate, "median_rate": rate}


def _best_evaluation(run_dir: Path) -> float:
    with open(run_dir / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    return max(float(row["eval/normalized_score"]) for row in rows)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} +- {spread:.1f}"


def _peer_rate(peers: list[dict]) -> str:
    """d3rlpy's updates/s: the median of its epochs' rates where its record has them (like offrl's log windows),
    else (records written before 2026-11-28) its updates over its training seconds, pauses included (†)."""
    if all(p.get("median_rate") for p in peers):
        return f"{statistics.mean(p['median_rate'] for p in peers):.0f}"
    return f"{statistics.mean(p['updates_per_second'] for p in peers):.0f} †"


def _minutes(values: list[float]) -> str:
    return f"{statistics.mean(values) / 60:.1f}" if values else "-"


def table(
    out: Path,
    datasets: list[tuple[str, ...]],
    algos: list[str],
    seeds: list[int],
    steps: int,
    episodes: int,
    eval_episodes: int = 10,
) -> str:
    """The Markdown table of every finished run (offrl and d3rlpy); also writes ``results.json`` under ``out``."""
    results: dict[str, dict] = {}
    big = f"final, {episodes} episodes"
    lines = [
        f"Normalised score after {steps} updates, mean +- std over seeds.",
        "",
        f"| dataset (data's score) | algorithm | seeds | final, {eval_episodes} episodes | best during training "
        f"| {big} | {big}, per seed | updates/s | minutes in the update loop per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    note = (
        "\nupdates/s: offrl's is the median of a run's log windows (1000 updates each), which a pause of the "
        "machine (a process stopped while CI ran) or a burst of load in a few windows does not move; † d3rlpy's is "
        "its updates over its training seconds, which include such pauses (its records written before "
        "2026-11-28 have no per-epoch times), so it can understate its speed; without † it is its epochs' median. "
        "Minutes: the time in the update loop summed over all of a run's invocations "
        "(evaluations and checkpoints excluded), pauses included, for both. Everything here ran on a shared, "
        "loaded machine: the speed comparison is `benchmarks/throughput.py`'s, which times both libraries in one run."
    )
    for _, name, *_ in datasets:
        behaviour = None
        for algo in algos:
            rows = []
            for seed in seeds:
                run_dir = out / name / f"{algo}-s{seed}"
                if not finished(Unit("", name, "", algo, seed), out, steps):
                    continue
                summary = json.loads((run_dir / "summary.json").read_text())
                final = final_evaluation(run_dir, episodes) if episodes else None
                behaviour = summary["behaviour_normalized_score"]
                row = {
                    "dataset": name,
                    "algo": algo,
                    "seed": seed,
                    **summary,
                    "best/normalized_score": _best_evaluation(run_dir),
                    "final_many/normalized_score": final["eval/normalized_score"] if final else None,
                    "update_time": update_time(run_dir),
                }
                results[f"{name}/{algo}-s{seed}"] = row
                rows.append(row)
            peers = []
            for seed in seeds:
                path = out / name / f"d3rlpy-{algo}-s{seed}.json"
                if finished(Unit("", name, "", algo, seed, "d3rlpy"), out, steps):
                    peers.append(json.loads(path.read_text()))
            cells = []
            if rows:
                many = [r["final_many/normalized_score"] for r in rows if r["final_many/normalized_score"] is not None]
                rates = [r["update_time"]["median_rate"] for r in rows]
                cells.append(
                    [
                        algo,
                        str(len(rows)),
                        _mean_std([r["eval/normalized_score"] for r in rows]),
                        _mean_std([r["best/normalized_score"] for r in rows]),
                        _mean_std(many),
                        ", ".join(f"{v:.1f}" for v in many),
                        f"{statistics.mean(rates):.0f}",
                        _minutes([r["update_time"]["update_seconds"] for r in rows]),
                    ]
                )
            if peers:
                many = [p["final_100"] for p in peers]
                cells.append(
                    [
                        f"d3rlpy {algo}",
                        str(len(peers)),
                        _mean_std([p["final_score"] for p in peers]),
                        _mean_std([max(point["normalized_score"] for point in p["curve"]) for p in peers]),
                        _mean_std(many),
                        ", ".join(f"{v:.1f}" for v in many),
                        _peer_rate(peers),
                        _minutes([p["steps"] / p["updates_per_second"] for p in peers if p["updates_per_second"]]),
                    ]
                )
                for p in peers:
                    results[f"{name}/d3rlpy-{algo}-s{p['seed']}"] = {"dataset": name, **p}
            for row in cells:
                label = f"{name} ({behaviour:.1f})" if behaviour is not None else name
                lines.append("| " + " | ".join([label, *row]) + " |")
    atomic_write_json(out / "results.json", results)
    return "\n".join([*lines, note])


ARCHIVED = ("summary.json", "eval.csv", "final_eval.json", "config.json")


def archive(out: Path, destination: Path) -> None:
    """Copy what the table needs of every finished run (and the d3rlpy records) into ``destination``."""
    copied = 0
    for dataset in sorted(p for p in out.iterdir() if p.is_dir()):
        runs = [r for r in sorted(dataset.iterdir()) if r.is_dir() and (r / "summary.json").exists()]
        for run in runs:
            (destination / dataset.name / run.name).mkdir(parents=True, exist_ok=True)
            for name in ARCHIVED:
                if (run / name).exists():
                    shutil.copy2(run / name, destination / dataset.name / run.name / name)
            atomic_write_json(destination / dataset.name / run.name / "timing.json", update_time(run))
            copied += 1
        for record in sorted(dataset.glob("d3rlpy-*.json")):
            (destination / dataset.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(record, destination / dataset.name / record.name)
            copied += 1
    print(f"{copied} finished runs archived in {destination}", flush=True)


def write_into(path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- scores:NAME -->`` and ``<!-- /scores:NAME -->`` in ``path`` (append if absent)."""
    begin = f"<!-- scores:{name} -->"
    write_block(path, begin, f"<!-- /scores:{name} -->", text)
    print(f"table written into {path} ({begin})", flush=True)


if __name__ == "__main__":
    main()
