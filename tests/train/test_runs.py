"""Training runs: run directory contents, exact resume, non-finite losses, checkpoints as data."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from offrl.algos.bc import BCConfig
from offrl.algos.iql import IQLConfig
from offrl.algos.prdc import PRDCConfig
from offrl.algos.recoil import ReCOILConfig
from offrl.algos.td3bc import TD3BCConfig
from offrl.data import from_arrays, save_dataset
from offrl.train import CheckpointError, NonFiniteLossError, TrainConfig, load_policy, resume, train
from offrl.train.checkpoint import list_checkpoints, read_metadata
from tests.conftest import leaves_equal, make_arrays

SMALL = {
    "iql": IQLConfig(hidden_dims=(32, 32)),
    "td3bc": TD3BCConfig(hidden_dims=(32, 32)),
    "bc": BCConfig(hidden_dims=(32, 32)),
    "prdc": PRDCConfig(hidden_dims=(32, 32)),
    "recoil": ReCOILConfig(hidden_dims=(32, 32)),
}
#: what a run of these algorithms needs besides the dataset
NEEDS = {
    "recoil": {"expert_dataset": "pendulum-expert", "expert_episodes": 2},
    "bc-corrupted": {"corruption": "observations:random:0.3", "corruption_seed": 1},
}
#: cases that differ from an algorithm's small config
CASE_CONFIGS = {"prdc-exact": PRDCConfig(hidden_dims=(32, 32), search="exact")}


def quick(tmp_path, **changes):
    base = dict(
        dataset="pendulum-mixed",
        steps=300,
        updates_per_call=100,
        log_interval=100,
        eval_interval=200,
        eval_episodes=2,
        batch_size=32,
        output_dir=str(tmp_path),
        progress=False,
    )
    return TrainConfig(**{**base, **changes})


def test_run_directory_holds_config_metrics_and_checkpoints(tmp_path):
    result = train(quick(tmp_path, run_name="r"), SMALL["iql"])
    run = tmp_path / "r"
    config = json.loads((run / "config.json").read_text())
    assert config["offrl_version"] and config["algo"] == "iql"
    assert len(config["dataset"]["sha256"]) == 64 and len(config["dataset"]["fingerprint"]) == 64
    assert config["algo_config"]["decay_steps"] == 300, "the schedule horizon is resolved and recorded"
    assert config["task"] == "pendulum"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [100, 200, 300]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [200, 300]
    assert "critic/q_mean" in rows[0] and "critic/grad_norm" in rows[0]
    assert (run / "train.csv").read_text().startswith("step,")
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "step_000000200.msgpack",
        "step_000000300.msgpack",
    ]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 300 and "eval/normalized_score" in summary
    assert result.final_evaluation is not None and result.behaviour_normalized_score is not None


def test_existing_run_is_never_overwritten(tmp_path):
    train(quick(tmp_path, algo="bc", run_name="r", steps=100, eval_interval=0), SMALL["bc"])
    before = (tmp_path / "r" / "config.json").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train(quick(tmp_path, algo="bc", run_name="r", steps=100, eval_interval=0), SMALL["bc"])
    assert (tmp_path / "r" / "config.json").read_bytes() == before


@pytest.mark.parametrize(
    "case",
    # the contract tests resume every algorithm's updates exactly; these resume whole runs (data, sampler,
    # transforms, corruption): five in CI, the rest in the slow set
    ["bc", "iql", "prdc-exact", "recoil", "bc-corrupted"]
    + [pytest.param(c, marks=pytest.mark.slow) for c in ("td3bc", "prdc")],
)
def test_resume_equals_an_uninterrupted_run(tmp_path, case):
    """train(N + M) == train(N) -> save -> load -> train(M), bitwise on CPU (PRDC: its KD-tree is rebuilt from the
    data; ReCOIL: its expert demonstrations are found and checked again; a corrupted run corrupts the same rows)."""
    algo, extra = case.split("-")[0], NEEDS.get(case, {})
    algo_config = CASE_CONFIGS.get(case, SMALL[algo])
    whole = train(
        quick(tmp_path, algo=algo, run_name="whole", steps=400, checkpoint_interval=100, **extra), algo_config
    )
    train(
        quick(tmp_path, algo=algo, run_name="split", steps=400, checkpoint_interval=100, **extra),
        algo_config,
        stop_after=250,
    )
    assert list_checkpoints(tmp_path / "split" / "checkpoints")[-1].name == "step_000000250.msgpack"
    resumed = resume(tmp_path / "split")
    assert resumed.step == 400
    assert leaves_equal(whole.agent, resumed.agent)
    lines = lambda run: [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa
    train_rows = lambda run: [
        {k: v for k, v in r.items() if not k.startswith("time/")}  # noqa: E731
        for r in lines(run)
        if r["kind"] == "train"
    ]
    assert train_rows("whole")[-1] == train_rows("split")[-1]


def test_a_resumed_run_reports_the_time_of_all_its_invocations(tmp_path):
    """summary.json's updates/s and wall time cover the whole run: every checkpoint carries the clock's totals and
    a resumed run goes on from them; a checkpoint written before the clock existed starts it at its step."""
    for name in ("r", "old"):
        config = quick(tmp_path, algo="bc", run_name=name, steps=300, eval_interval=0, checkpoint_interval=100)
        train(config, SMALL["bc"], stop_after=200)
    checkpoints = list_checkpoints(tmp_path / "r" / "checkpoints")
    clocks = [read_metadata(p)["clock"] for p in checkpoints]
    assert [c["updates"] for c in clocks] == [100, 200] and clocks[0]["wall_seconds"] < clocks[1]["wall_seconds"]
    result = resume(tmp_path / "r")
    final = read_metadata(list_checkpoints(tmp_path / "r" / "checkpoints")[-1])["clock"]
    assert final["updates"] == 300 and final["timed_from_step"] == 0
    assert final["update_seconds"] > clocks[1]["update_seconds"] and final["wall_seconds"] > clocks[1]["wall_seconds"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["updates_per_second"] == pytest.approx(300 / final["update_seconds"])
    assert result.updates_per_second == summary["updates_per_second"]
    assert summary["wall_seconds"] >= final["wall_seconds"] and "timed_from_step" not in summary

    sidecar = list_checkpoints(tmp_path / "old" / "checkpoints")[-1].with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    del meta["clock"]
    sidecar.write_text(json.dumps(meta))  # as an older offrl wrote it
    resume(tmp_path / "old")
    summary = json.loads((tmp_path / "old" / "summary.json").read_text())
    assert summary["timed_from_step"] == 200
    final = read_metadata(list_checkpoints(tmp_path / "old" / "checkpoints")[-1])["clock"]
    assert final["updates"] == 100 and final["timed_from_step"] == 200


def test_resume_refuses_different_data(tmp_path):
    path = tmp_path / "data.npz"
    save_dataset(from_arrays(**make_arrays()), path)
    train(
        quick(
            tmp_path,
            algo="bc",
            dataset=str(path),
            run_name="r",
            task="",
            steps=200,
            eval_interval=0,
            checkpoint_interval=100,
        ),
        SMALL["bc"],
        stop_after=100,
    )
    arrays = make_arrays(seed=1)
    save_dataset(from_arrays(**arrays), path, overwrite=True)
    with pytest.raises(CheckpointError, match="differs"):
        resume(tmp_path / "r")


def test_non_finite_loss_stops_with_step_and_metric_and_keeps_the_last_good_checkpoint(tmp_path):
    arrays = make_arrays(n=400)
    arrays["rewards"] = np.full(400, 1e38, np.float32)  # finite data whose squared TD error overflows
    path = tmp_path / "huge.npz"
    save_dataset(from_arrays(**arrays), path)
    with pytest.raises(NonFiniteLossError) as info:
        train(
            quick(
                tmp_path,
                algo="td3bc",
                dataset=str(path),
                run_name="r",
                eval_interval=0,
                checkpoint_interval=100,
                steps=400,
            ),
            SMALL["td3bc"],
        )
    message = str(info.value)
    assert "non-finite critic/" in message and "at update 1" in message
    assert "no checkpoint" in message
    assert list_checkpoints(tmp_path / "r" / "checkpoints") == []


def test_checkpoints_are_msgpack_and_json_never_pickle(tmp_path):
    train(quick(tmp_path, algo="bc", run_name="r", steps=100, eval_interval=0), SMALL["bc"])
    checkpoint = list_checkpoints(tmp_path / "r" / "checkpoints")[-1]
    data = checkpoint.read_bytes()
    assert data[:1] != b"\x80", "a pickle stream starts with the PROTO opcode 0x80"
    assert 0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF), "msgpack map header"
    sidecar = json.loads(checkpoint.with_suffix(".json").read_text())
    assert {"schema_version", "offrl_version", "algo_config", "dataset", "transforms", "state_sha256"} <= set(sidecar)


def test_corrupt_checkpoint_is_detected(tmp_path):
    train(quick(tmp_path, algo="bc", run_name="r", steps=100, eval_interval=0), SMALL["bc"])
    checkpoint = list_checkpoints(tmp_path / "r" / "checkpoints")[-1]
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(tmp_path / "r")
    checkpoint.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar"):
        load_policy(checkpoint)


def test_loaded_policy_acts_like_the_trained_agent(tmp_path):
    result = train(quick(tmp_path, algo="td3bc", run_name="r", steps=200), SMALL["td3bc"])
    policy = load_policy(tmp_path / "r")
    obs = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    from offrl.algos import get_algorithm
    from offrl.train.offline import make_policy

    direct = make_policy(get_algorithm("td3bc"), policy.transforms)(result.agent, obs, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(policy(obs), np.asarray(direct))
    assert policy(obs).shape == (4, 1) and np.abs(policy(obs)).max() <= 2.0 + 1e-6


def test_no_pickle_anywhere_in_the_library():
    import pathlib

    import offrl

    root = pathlib.Path(offrl.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path


def test_a_checkpoint_written_by_schema_1_still_loads_and_acts_the_same():
    """A committed fixture (TD3+BC, 8x8 networks, schema 1): later versions must keep reading it."""
    from pathlib import Path

    fixture = Path(__file__).parents[1] / "fixtures" / "checkpoint-schema1"
    expected = json.loads((fixture / "expected_actions.json").read_text())
    policy = load_policy(fixture)
    assert policy.metadata["schema_version"] == 1 and policy.metadata["algo"] == "td3bc"
    actions = policy(np.asarray(expected["observations"], np.float32))
    np.testing.assert_allclose(actions, expected["actions"], rtol=1e-5, atol=1e-6)


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboardX")
    train(quick(tmp_path, algo="bc", run_name="r", steps=100, eval_interval=0), SMALL["bc"])
    assert list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_later_non_finite_loss_keeps_the_checkpoint_written_before_it(tmp_path, monkeypatch):
    import dataclasses

    import jax.numpy as jnp

    from offrl.algos import td3bc
    from offrl.train import offline

    def failing_update(state, batch):
        state, info = td3bc.update(state, batch)
        info["critic/loss"] = jnp.where(state.step > 150, jnp.nan, info["critic/loss"])
        return state, info

    failing = dataclasses.replace(td3bc.ALGORITHM, update=failing_update)
    monkeypatch.setattr(offline, "get_algorithm", lambda name: failing)
    with pytest.raises(NonFiniteLossError) as info:
        train(
            quick(tmp_path, algo="td3bc", run_name="r", eval_interval=0, checkpoint_interval=100, steps=400),
            SMALL["td3bc"],
        )
    assert "non-finite critic/loss at update 151" in str(info.value)
    kept = list_checkpoints(tmp_path / "r" / "checkpoints")
    assert [p.name for p in kept] == ["step_000000100.msgpack"] and str(kept[0]) in str(info.value)


def test_stochastic_evaluation_samples_and_stays_in_bounds(tmp_path, capsys):
    from offrl.cli import main

    train(quick(tmp_path, algo="iql", run_name="r", steps=100, eval_interval=0), SMALL["iql"])
    policy = load_policy(tmp_path / "r")
    sample = policy.sampler(seed=3)
    obs = np.zeros((64, 3), np.float32)
    first, second = sample(obs), sample(obs)
    assert not np.array_equal(first, second) and np.abs(first).max() <= 2.0 + 1e-6
    np.testing.assert_array_equal(policy.sampler(seed=3)(obs), first)
    assert main(["evaluate", str(tmp_path / "r"), "--episodes", "2", "--stochastic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "pendulum"


def test_an_algorithm_gets_the_derived_columns_it_asks_for(tmp_path):
    """Cal-QL reads Monte-Carlo returns: the offline trainer computes them from the dataset's episodes."""
    from offrl.algos.cql import CalQLConfig
    from offrl.train import TrainConfig, train

    config = TrainConfig(
        algo="cal-ql", steps=20, updates_per_call=10, eval_interval=0, eval_episodes=1, output_dir=str(tmp_path),
        run_name="c", progress=False,
    )  # fmt: skip
    train(config, CalQLConfig(hidden_dims=(16, 16), n_actions=2))
    rows = [json.loads(line) for line in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    assert any("cql/bound_active" in row for row in rows)


def test_a_run_on_corrupted_data_records_the_corruption(tmp_path):
    from offrl.train import TrainConfig, train

    config = TrainConfig(
        algo="bc", steps=20, updates_per_call=10, eval_interval=0, eval_episodes=1, output_dir=str(tmp_path),
        run_name="c", progress=False, corruption="rewards:random:0.3", corruption_seed=3,
    )  # fmt: skip
    result = train(config)
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["train"]["corruption"] == "rewards:random:0.3" and saved["dataset"]["corruption"]["seed"] == 3
    assert saved["dataset"]["corruption"]["rows"] > 0
    from offrl.train.offline import behaviour_score, dataset_task, resolve_dataset

    clean = resolve_dataset("pendulum-mixed").dataset
    assert result.behaviour_normalized_score == behaviour_score(clean, dataset_task(clean)), (
        "the behaviour score is the clean data's: corrupted rewards do not change how the data was collected"
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        TrainConfig(corruption="wind")


def test_expert_demonstrations_are_added_marked_and_recorded(tmp_path):
    from offrl.data.columns import is_expert
    from offrl.train.offline import resolve_dataset, with_expert_demonstrations

    data, expert = resolve_dataset("pendulum-random").dataset, resolve_dataset("pendulum-expert").dataset
    combined = with_expert_demonstrations(data, expert, episodes=3)
    flags = is_expert(combined)
    assert combined.size == data.size + 600 and flags[: data.size].sum() == 0 and flags[data.size :].all()
    assert combined.num_episodes == data.num_episodes + 3
    np.testing.assert_array_equal(combined.observations[data.size :], expert.observations[:600])

    train(quick(tmp_path, algo="recoil", run_name="r", steps=100, eval_interval=0, **NEEDS["recoil"]), SMALL["recoil"])
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["expert_dataset"]["name"] == "pendulum-expert" and saved["expert_dataset"]["transitions_used"] == 400
    assert saved["dataset"]["transitions"] == 40_000 + 400 and saved["expert_dataset"]["episodes_used"] == 2
    with pytest.raises(ValueError, match="expert_episodes is 500 but the expert demonstrations hold 100 episodes"):
        with_expert_demonstrations(data, expert, episodes=500)


def test_prdc_records_the_search_it_resolved(tmp_path):
    train(quick(tmp_path, algo="prdc", run_name="p", steps=100, eval_interval=0), SMALL["prdc"])
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert saved["algo_config"]["search"] == ("exact" if jax.default_backend() in ("gpu", "tpu") else "kdtree")


def test_expert_demonstrations_go_only_to_imitation_algorithms(tmp_path):
    with pytest.raises(ValueError, match="give them with --expert-dataset"):
        train(quick(tmp_path, algo="recoil", run_name="a"), SMALL["recoil"])
    with pytest.raises(ValueError, match="does not use expert demonstrations"):
        train(quick(tmp_path, algo="bc", run_name="b", expert_dataset="pendulum-expert"), SMALL["bc"])
    with pytest.raises(ValueError, match="expert_episodes needs expert_dataset"):
        quick(tmp_path, expert_episodes=2)
    other = tmp_path / "other.npz"
    save_dataset(from_arrays(**make_arrays(obs_dim=5, action_dim=1)), other)
    with pytest.raises(ValueError, match="do not match the dataset"):
        train(quick(tmp_path, algo="recoil", run_name="c", expert_dataset=str(other)), SMALL["recoil"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
