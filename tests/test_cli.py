"""The command line: train -> evaluate -> dataset info, help texts, and errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from offrl.cli import main
from tests.conftest import SHARED_DATA, needs_shared


def test_train_then_evaluate(tmp_path, capsys):
    code = main(
        [
            "train",
            "--algo",
            "td3bc",
            "--steps",
            "200",
            "--batch-size",
            "32",
            "--hidden-dims",
            "32,32",
            "--updates-per-call",
            "100",
            "--eval-interval",
            "0",
            "--eval-episodes",
            "2",
            "--output-dir",
            str(tmp_path),
            "--run-name",
            "cli",
            "--no-progress",
            "--alpha",
            "2.0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "normalised score" in out and "behaviour data" in out and "run directory" in out
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["algo_config"]["alpha"] == 2.0 and config["algo_config"]["hidden_dims"] == [32, 32]
    assert config["runtime"]["backend"] == "cpu" and config["runtime"]["jax"]  # what the run ran on
    assert main(["evaluate", str(tmp_path / "cli"), "--episodes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "pendulum" and len(result["returns"]) == 2
    assert main(["train", "--resume", str(tmp_path / "cli"), "--steps", "300", "--no-progress"]) == 0
    assert "300 updates" in capsys.readouterr().out
    # a pendulum policy in hopper: refused with both spaces named, by evaluate and by dataset make
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path / "cli"), "--task", "hopper"])
    assert "observations of shape (3,), hopper has (11,)" in capsys.readouterr().err
    make = ["dataset", "make", "--task", "hopper", "--policy", str(tmp_path / "cli"), str(tmp_path / "x.hdf5")]
    assert main(make) == 1
    err = capsys.readouterr().err
    assert "1-dimensional continuous actions, hopper has 3-dimensional continuous actions" in err
    assert not (tmp_path / "x.hdf5").exists()


def test_train_several_seeds_as_one_group_then_resume_it(tmp_path, capsys):
    small = ["--algo", "td3bc", "--batch-size", "32", "--hidden-dims", "32,32", "--updates-per-call", "50"]
    small += ["--eval-interval", "0", "--eval-episodes", "1", "--output-dir", str(tmp_path), "--no-progress"]
    assert main(["train", *small, "--steps", "100", "--seeds", "0,2", "--run-name", "g"]) == 0
    out = capsys.readouterr().out
    assert out.count("run directory") == 2 and "100 updates" in out
    runs = [tmp_path / "g-s0", tmp_path / "g-s2"]
    assert [json.loads((r / "config.json").read_text())["train"]["seed"] for r in runs] == [0, 2]
    assert main(["train", "--resume", *map(str, runs), "--steps", "150", "--no-progress"]) == 0
    assert capsys.readouterr().out.count("150 updates") == 2
    for bad in (["--seeds", "0,0"], ["--seeds", "0,x"], ["--seeds", "0,1", "--seed", "3"]):
        with pytest.raises(SystemExit):
            main(["train", *small, *bad])
        assert "seed" in capsys.readouterr().err


def test_train_help_documents_run_and_algorithm_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--algo", "iql", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--dataset",
        "--task",
        "--steps",
        "--seed",
        "--output-dir",
        "--eval-interval",
        "--resume",
        "--expectile",
        "--beta",
    ):
        assert option in out
    with pytest.raises(SystemExit):
        main(["train", "--algo", "td3bc", "--help"])
    assert "--policy-noise" in capsys.readouterr().out


@needs_shared
def test_dataset_info_on_hopper(capsys):
    assert main(["dataset", "info", str(SHARED_DATA / "hopper-medium.hdf5")]) == 0
    out = capsys.readouterr().out
    assert "transitions 100000" in out and "normalised return (hopper)" in out
    assert "observations (per dimension)" in out and "problems found" in out
    assert main(["dataset", "info", str(SHARED_DATA / "hopper-medium.hdf5"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 45 < report["normalized_return"]["mean"] < 55


@needs_shared
def test_dataset_info_reports_space_mismatch(capsys):
    assert main(["dataset", "info", str(SHARED_DATA / "hopper-medium.hdf5"), "--task", "walker2d", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any("observation space" in p for p in report["problems"])


def test_bad_dataset_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "broken.npz"
    import numpy as np

    np.savez(path, observations=np.zeros((5, 2)), actions=np.zeros((4, 1)), rewards=np.zeros(5))
    assert main(["dataset", "info", str(path)]) == 1
    assert "different lengths" in capsys.readouterr().err
    assert main(["train", "--dataset", str(tmp_path / "missing.hdf5"), "--no-progress"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_dataset_convert_and_list(tmp_path, capsys):
    destination = tmp_path / "copy.npz"
    assert main(["dataset", "convert", "pendulum-random", str(destination)]) == 0
    assert destination.exists()
    assert main(["dataset", "convert", "pendulum-random", str(destination)]) == 1
    assert "overwrite" in capsys.readouterr().err
    assert main(["dataset", "list"]) == 0
    assert "pendulum-mixed" in capsys.readouterr().out


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "offrl.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip()


def test_dataset_convert_concatenates_several_sources(tmp_path, capsys):
    from offrl.data import load_dataset

    destination = tmp_path / "both.npz"
    assert main(["dataset", "convert", "pendulum-random", "pendulum-random", str(destination)]) == 0
    assert "episodes" in capsys.readouterr().out
    single = tmp_path / "one.npz"
    assert main(["dataset", "convert", "pendulum-random", str(single)]) == 0
    one, both = load_dataset(single), load_dataset(destination)
    assert both.size == 2 * one.size and both.num_episodes == 2 * one.num_episodes


def test_train_online_then_resume_and_evaluate(tmp_path, capsys):
    common = ["--task", "pendulum", "--warmup-steps", "100", "--batch-size", "32", "--hidden-dims", "32,32"]
    out = ["--output-dir", str(tmp_path), "--run-name", "on", "--eval-episodes", "1", "--no-progress"]
    assert main(["train-online", "--algo", "sac", "--steps", "200", *common, *out]) == 0
    printed = capsys.readouterr().out
    assert "200 environment steps" in printed and "normalised score" in printed
    assert main(["train-online", "--resume", str(tmp_path / "on"), "--steps", "400", "--no-progress"]) == 0
    assert "400 environment steps" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "on"), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "pendulum"
    assert main(["train-online", "--algo", "iql", "--task", "pendulum"]) == 1
    assert "supports sac, td3" in capsys.readouterr().err


def test_medium_replay_recipe_stop_at_a_return_then_export_the_buffer(tmp_path, capsys):
    from offrl.data import load_dataset

    common = ["--task", "pendulum", "--warmup-steps", "100", "--batch-size", "32", "--hidden-dims", "32,32"]
    out = ["--output-dir", str(tmp_path), "--run-name", "on", "--eval-episodes", "1", "--no-progress"]
    stop = ["--eval-interval", "200", "--stop-return", "-100000"]
    assert main(["train-online", "--algo", "sac", "--steps", "1000", *stop, *common, *out]) == 0
    assert "200 environment steps" in capsys.readouterr().out
    assert main(["dataset", "make", "--replay", str(tmp_path / "on"), str(tmp_path / "replay.hdf5")]) == 0
    assert "200 transitions, 1 episodes" in capsys.readouterr().out
    ds = load_dataset(tmp_path / "replay.hdf5")
    assert ds.size == 200 and ds.timeouts[-1] and ds.metadata["env_steps"] == 200
    assert ds.metadata["behavior"] == "replay buffer of an offrl online run"
    wrong_task = ["dataset", "make", "--replay", str(tmp_path / "on"), "--task", "hopper", str(tmp_path / "x.hdf5")]
    assert main(wrong_task) == 1
    assert "observations have shape (3,) per row but the task's observation space has shape (11,)" in (
        capsys.readouterr().err
    )
    noisy = ["dataset", "make", "--replay", str(tmp_path / "on"), "--epsilon", "0.1", str(tmp_path / "x.hdf5")]
    assert main(noisy) == 1
    assert "--epsilon apply to --policy, not to --replay" in capsys.readouterr().err
    assert not (tmp_path / "x.hdf5").exists()
    assert main(["dataset", "make", "--replay", str(tmp_path / "none"), str(tmp_path / "x.hdf5")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["dataset", "make", "--replay", str(tmp_path), str(tmp_path / "x.hdf5")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_dataset_make_from_an_actor_npz_and_random(tmp_path, capsys):
    from offrl.data import load_dataset
    from tests.data.test_collect import tiny_actor

    actor = tiny_actor(tmp_path / "actor.npz")
    out = tmp_path / "made.hdf5"
    args = ["dataset", "make", "--task", "pendulum", "--policy", str(actor), "--stochastic", "--transitions", "400"]
    assert main([*args, str(out)]) == 0
    assert "400 transitions, 2 episodes" in capsys.readouterr().out
    ds = load_dataset(out)
    assert ds.metadata["policy_sha256"] and ds.metadata["stochastic"] and ds.size == 400
    assert main([*args, str(out)]) == 1  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert (
        main(
            [
                "dataset",
                "make",
                "--task",
                "pendulum",
                "--policy",
                "random",
                "--transitions",
                "300",
                str(tmp_path / "minari-dir"),
            ]
        )
        == 0
    )
    assert load_dataset(tmp_path / "minari-dir").size == 300


def test_finetune_runs_both_phases_prints_the_switch_and_evaluates(tmp_path, capsys):
    run = tmp_path / "ft"
    code = main(
        [
            "finetune", "--algo", "td3bc", "--offline-steps", "200", "--online-steps", "200", "--eval-interval", "100",
            "--eval-episodes", "1", "--checkpoint-interval", "200", "--batch-size", "32", "--hidden-dims", "16,16",
            "--output-dir", str(tmp_path), "--run-name", "ft", "--no-progress",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "at the switch:" in printed and "regret" in printed
    ft_config = json.loads((run / "config.json").read_text())
    assert ft_config["kind"] == "offline-to-online" and ft_config["runtime"]["backend"] == "cpu"
    assert main(["evaluate", str(run), "--episodes", "1"]) == 0
    with pytest.raises(SystemExit):
        main(["finetune", "--resume", str(run), "--online-steps", "400"])  # a resumed run keeps its settings
