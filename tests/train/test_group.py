"""Groups of runs trained as one vmapped loop: members equal single runs, exact resume, failures stay local."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

from offrl.algos.iql import IQLConfig
from offrl.algos.prdc import PRDCConfig
from offrl.algos.td3bc import TD3BCConfig
from offrl.data import from_arrays, save_dataset
from offrl.train import TrainConfig, load_policy, resume, train
from offrl.train.checkpoint import list_checkpoints
from offrl.train.group import resume_group, train_group, train_or_resume_group
from tests.conftest import leaves_equal, make_arrays

IQL = IQLConfig(hidden_dims=(32, 32))
TD3BC = TD3BCConfig(hidden_dims=(32, 32))


def config(tmp_path, **changes) -> TrainConfig:
    base = dict(
        algo="iql",
        dataset="pendulum-mixed",
        steps=40,
        updates_per_call=20,
        log_interval=20,
        eval_interval=0,
        checkpoint_interval=20,
        eval_episodes=1,
        batch_size=32,
        output_dir=str(tmp_path),
        progress=False,
    )
    return TrainConfig(**{**base, **changes})


def relative_difference(a, b) -> float:
    """The largest difference of two pytrees' float leaves, relative to each leaf's largest magnitude."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        worst = max(worst, float(np.max(np.abs(x - y))) / (float(np.max(np.abs(x))) + 1e-12))
    return worst


@pytest.mark.parametrize("datasets", [("pendulum-mixed", "pendulum-mixed"), ("pendulum-mixed", "pendulum-random")])
def test_members_follow_the_single_runs_with_their_settings(tmp_path, datasets):
    """Same initialisation, same batches: a member differs from its single run by float reassociation only, on
    one shared dataset and on two stacked ones of different lengths."""
    members = [
        config(tmp_path, dataset=d, seed=s, run_name=f"group-{s}") for d, s in zip(datasets, (0, 3), strict=True)
    ]
    grouped = train_group(members, IQL)
    assert [r.error for r in grouped] == [None, None] and [r.step for r in grouped] == [40, 40]
    for member, result in zip(members, grouped, strict=True):
        single = train(dataclasses.replace(member, run_name=f"single-{member.seed}"), IQL)
        assert relative_difference(single.agent, result.agent) < 1e-4
    assert relative_difference(grouped[0].agent, grouped[1].agent) > 1e-2, "members must not share their streams"


def test_members_are_ordinary_runs(tmp_path):
    results = train_group(
        [config(tmp_path, algo="td3bc", seed=s, run_name=f"m{s}", eval_interval=20) for s in (0, 1)],
        TD3BC,
    )
    run = tmp_path / "m1"
    saved = json.loads((run / "config.json").read_text())
    assert saved["group"] == {"members": 2, "index": 1} and saved["train"]["seed"] == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 40 and summary["eval/return_mean"] == results[1].final_evaluation.mean
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if r["kind"] == "eval"] == [20, 40]
    policy = load_policy(run)
    assert policy(np.zeros((3, 3), np.float32)).shape == (3, 1)
    alone = resume(run, steps=60)  # a member continues alone as a plain run
    assert alone.step == 60


def test_resumed_group_equals_an_uninterrupted_one(tmp_path):
    members = lambda root: [  # noqa: E731
        config(root, seed=s, dataset=d, run_name=f"r{s}{d}") for s, d in ((0, "pendulum-mixed"), (1, "pendulum-random"))
    ]
    whole = train_group(members(tmp_path / "whole"), IQL)
    train_group(members(tmp_path / "cut"), IQL, stop_after=20)
    dirs = [tmp_path / "cut" / m.run_name for m in members(tmp_path)]
    resumed = resume_group(dirs)
    for a, b in zip(whole, resumed, strict=True):
        assert leaves_equal(a.agent, b.agent)

    def losses(run_dir):
        rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows if r["kind"] == "train"]

    assert [r["step"] for r in losses(dirs[0])] == [20, 40], "no record is written twice"
    assert losses(dirs[1]) == losses(tmp_path / "whole" / dirs[1].name)


def test_a_group_resumes_from_the_step_all_members_reached(tmp_path, capsys):
    """A member that went further alone goes back to the group's step (its newer checkpoints removed, as its
    logs are), and an evaluation the group checkpointed but never recorded is made first."""
    members = lambda root: [  # noqa: E731
        config(root, seed=s, run_name=f"r{s}", eval_interval=20) for s in (0, 1)
    ]
    whole = train_group(members(tmp_path / "whole"), IQL)
    train_group(members(tmp_path / "cut"), IQL, stop_after=20)
    dirs = [tmp_path / "cut" / m.run_name for m in members(tmp_path)]
    resume(dirs[0], stop_after=40)  # one member alone, further than the other
    (dirs[0] / "summary.json").unlink()  # as a group stopped between its members' checkpoints leaves it
    metrics = dirs[1] / "metrics.jsonl"
    rows = [line for line in metrics.read_text().splitlines() if '"kind": "eval"' not in line]
    metrics.write_text("\n".join(rows) + "\n")  # as if stopped between its checkpoint and its evaluation
    resumed = resume_group(dirs)
    assert (
        "resumes with its group from step 20; its newer checkpoints (steps 40) are removed" in capsys.readouterr().out
    )
    for a, b in zip(whole, resumed, strict=True):
        assert leaves_equal(a.agent, b.agent)
    evals = [json.loads(r)["step"] for r in metrics.read_text().splitlines() if '"kind": "eval"' in r]
    assert evals == [20, 40]


def test_a_stopped_benchmark_continues_its_started_runs_and_starts_the_others(tmp_path, capsys):
    """train_or_resume_group: started members continue as a group (exactly), new ones start; members stopped at
    different steps (no checkpoint in common) continue one at a time."""
    members = lambda root: [config(root, seed=s, run_name=f"r{s}") for s in (0, 1, 2)]  # noqa: E731
    whole = train_group(members(tmp_path / "whole")[:2], IQL)
    train_group(members(tmp_path / "cut")[:2], IQL, stop_after=20)
    results = train_or_resume_group(members(tmp_path / "cut"), IQL)
    assert "group of 3 iql runs: 2 to continue, 1 new" in capsys.readouterr().out
    assert [r.run_dir.name for r in results] == ["r0", "r1", "r2"]
    assert [(r.step, r.error) for r in results] == [(40, None)] * 3
    for a, b in zip(whole, results[:2], strict=True):
        assert leaves_equal(a.agent, b.agent)

    apart = lambda root: [  # noqa: E731
        config(root, seed=s, run_name=f"r{s}", steps=60, keep_checkpoints=1) for s in (0, 1)
    ]
    train_group(apart(tmp_path / "apart"), IQL, stop_after=20)
    resume(tmp_path / "apart" / "r1", stop_after=40)  # its only checkpoint is now at 40, the other's at 20
    results = train_or_resume_group(apart(tmp_path / "apart"), IQL)
    assert "no checkpoint step in common; continuing them one at a time" in capsys.readouterr().out
    assert [(r.step, r.error) for r in results] == [(60, None)] * 2


def test_a_group_resume_never_discards_a_finished_member_or_goes_back(tmp_path):
    members = [config(tmp_path, seed=s, run_name=f"r{s}", steps=60, keep_checkpoints=0) for s in (0, 1)]
    train_group(members, IQL, stop_after=20)
    resume(tmp_path / "r1")  # finished alone, at 60
    dirs = [tmp_path / "r0", tmp_path / "r1"]
    before = sorted(p.name for p in (tmp_path / "r1" / "checkpoints").iterdir())
    with pytest.raises(
        ValueError, match="r1 finished at step 60 on its own; continuing it with its group from step 20"
    ):
        resume_group(dirs)
    with pytest.raises(ValueError, match="r1 is at step 60 .* resuming it to 40 steps would go back"):
        resume_group(dirs, steps=40)
    assert sorted(p.name for p in (tmp_path / "r1" / "checkpoints").iterdir()) == before
    results = train_or_resume_group(members, IQL)  # the finished one is left alone, the other continues
    assert [(r.run_dir.name, r.step) for r in results] == [("r0", 60)]


def test_a_diverging_member_stops_alone(tmp_path):
    arrays = make_arrays(n=400, obs_dim=3, action_dim=1)
    arrays["rewards"] = np.full(400, 1e38, np.float32)  # finite data whose squared TD error overflows
    huge = tmp_path / "huge.npz"
    save_dataset(from_arrays(**arrays), huge)
    fine = tmp_path / "fine.npz"
    save_dataset(from_arrays(**make_arrays(n=400, obs_dim=3, action_dim=1, seed=1)), fine)
    results = train_group(
        [
            config(tmp_path, algo="td3bc", dataset=str(huge), run_name="huge"),
            config(tmp_path, algo="td3bc", dataset=str(fine), run_name="fine"),
        ],
        TD3BC,
    )
    assert results[0].error is not None and "non-finite critic/" in results[0].error and results[0].step == 0
    assert (
        not (tmp_path / "huge" / "summary.json").exists() and list_checkpoints(tmp_path / "huge" / "checkpoints") == []
    )
    assert results[1].error is None and results[1].step == 40
    assert json.loads((tmp_path / "fine" / "summary.json").read_text())["step"] == 40


def test_what_a_group_refuses(tmp_path):
    with pytest.raises(ValueError, match="share steps"):
        train_group([config(tmp_path, run_name="a"), config(tmp_path, run_name="b", steps=60)], IQL)
    with pytest.raises(ValueError, match="share a run directory"):
        train_group([config(tmp_path, run_name="a"), config(tmp_path, run_name="a", seed=1)], IQL)
    with pytest.raises(ValueError, match="needs one dataset"):
        train_group(
            [
                config(tmp_path, algo="prdc", run_name="p0"),
                config(tmp_path, algo="prdc", run_name="p1", dataset="pendulum-random"),
            ],
            PRDCConfig(hidden_dims=(32, 32), search="exact"),
        )
    assert not (tmp_path / "p0").exists(), "a refused group writes nothing"
    other = tmp_path / "other.npz"
    save_dataset(from_arrays(**make_arrays(n=200, obs_dim=5, action_dim=1)), other)
    with pytest.raises(ValueError, match="other shapes"):
        train_group(
            [config(tmp_path, run_name="s0"), config(tmp_path, run_name="s1", dataset=str(other), task="")],
            IQL,
        )
    assert not (tmp_path / "s0").exists()


@pytest.mark.slow
def test_an_algorithm_that_reads_the_whole_set_groups_seeds_on_one_dataset(tmp_path):
    """PRDC's neighbour search (the host KD-tree through a callback) under vmap: each member finds its own."""
    prdc = PRDCConfig(hidden_dims=(32, 32), search="kdtree")
    grouped = train_group([config(tmp_path, algo="prdc", seed=s, run_name=f"g{s}") for s in (0, 1)], prdc)
    for s, result in enumerate(grouped):
        single = train(config(tmp_path, algo="prdc", seed=s, run_name=f"s{s}"), prdc)
        assert relative_difference(single.agent, result.agent) < 1e-4


@pytest.mark.slow  # worker processes start JAX and Gymnasium: about a minute
def test_evaluations_in_worker_processes_equal_those_in_the_training_process(tmp_path):
    members = lambda root: [  # noqa: E731
        config(root, algo="td3bc", seed=s, run_name=f"e{s}", eval_interval=20, steps=50) for s in (0, 1)
    ]
    here = train_group(members(tmp_path / "here"), TD3BC)
    pooled = train_group(members(tmp_path / "pool"), TD3BC, eval_workers=2)

    def evaluations(result):
        rows = [json.loads(r) for r in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], round(r["eval/return_mean"], 3)) for r in rows if r["kind"] == "eval"]

    for a, b in zip(here, pooled, strict=True):
        assert [s for s, _ in evaluations(a)] == [20, 40, 50]
        assert evaluations(a) == evaluations(b)
        assert a.final_evaluation.mean == pytest.approx(b.final_evaluation.mean, abs=1e-3)
