"""Bad input around runs: a clear error that names the problem, and nothing of the user's overwritten."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from offrl.cli import main
from offrl.data import from_arrays, save_dataset
from offrl.train.checkpoint import list_checkpoints
from offrl.train.finetune import FinetuneConfig, finetune
from offrl.train.online import OnlineConfig, train_online

TINY = ["--no-progress", "--hidden-dims", "16,16", "--batch-size", "16", "--updates-per-call", "10",
        "--log-interval", "10", "--eval-interval", "0", "--eval-episodes", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """An IQL run of 20 updates on pendulum-mixed, finished (checkpoint and summary at step 20)."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--steps", "20", "--output-dir", str(out), "--run-name", "base"]) == 0
    return out / "base"


def fails(capsys, argv: list[str]) -> str:
    """Run the command, expect a failure (exit code or argparse's SystemExit), return what it printed to stderr."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    assert code not in (0, None), f"{argv} succeeded"
    return capsys.readouterr().err


def test_a_new_run_refuses_a_directory_that_holds_files_but_no_run(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "train.csv").write_text("my metrics\n")
    err = fails(capsys, ["train", *TINY, "--steps", "10", "--output-dir", str(tmp_path), "--run-name", "mine"])
    assert "mine exists and is not an empty directory, but holds no run" in err
    assert [p.name for p in user.iterdir()] == ["train.csv"] and (user / "train.csv").read_text() == "my metrics\n"
    with pytest.raises(FileExistsError, match="holds no run"):
        train_online(OnlineConfig(task="pendulum", steps=10, output_dir=str(tmp_path), run_name="mine"))
    with pytest.raises(FileExistsError, match="holds no run"):
        finetune(FinetuneConfig(dataset="pendulum-mixed", offline_steps=10, online_steps=10, output_dir=str(tmp_path),
                                run_name="mine"))  # fmt: skip
    assert [p.name for p in user.iterdir()] == ["train.csv"]


def test_a_run_name_is_one_directory_name(tmp_path, capsys):
    err = fails(capsys, ["train", *TINY, "--steps", "10", "--output-dir", str(tmp_path / "out"), "--run-name", "../x"])
    assert "must be a single directory name" in err and not (tmp_path / "x").exists()


def test_resume_never_goes_back_or_redoes_a_finished_run(base_run, capsys):
    before = {p.name: p.read_bytes() for p in base_run.iterdir() if p.is_file()}
    err = fails(capsys, ["train", "--no-progress", "--resume", str(base_run), "--steps", "10"])
    assert "is at step 20 (its newest checkpoint); resuming it to 10 steps would go back" in err
    err = fails(capsys, ["train", "--no-progress", "--resume", str(base_run)])
    assert "finished at step 20; give --steps above 20" in err
    assert {p.name: p.read_bytes() for p in base_run.iterdir() if p.is_file()} == before  # nothing rewritten


def test_a_corrupt_run_config_is_named(base_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(base_run, broken)
    (broken / "config.json").write_text((base_run / "config.json").read_text()[:100])
    for argv in (["train", "--resume", str(broken), "--steps", "40"], ["workflow", str(broken)],
                 ["report", str(broken), "--out", str(tmp_path / "r")]):  # fmt: skip
        err = fails(capsys, argv)
        assert f"{broken / 'config.json'} is not valid JSON" in err, argv


def test_off_policy_evaluation_refuses_data_of_other_shapes(base_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 50
    other = from_arrays(
        observations=rng.normal(size=(n, 5)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 1)),
        rewards=rng.normal(size=n),
        terminals=np.zeros(n),
        timeouts=(np.arange(n) % 25 == 24),
    )
    save_dataset(other, tmp_path / "obs5.npz")
    err = fails(capsys, ["fqe", str(base_run), "--dataset", str(tmp_path / "obs5.npz"), "--steps", "10"])
    assert "takes observations of shape (3,), the data has (5,)" in err
    err = fails(capsys, ["workflow", str(base_run), "--dataset", str(tmp_path / "obs5.npz")])
    assert "takes observations of shape (3,), the data has (5,)" in err
    err = fails(capsys, ["workflow", str(base_run), "--max-rows", "0"])
    assert "--max-rows) must be at least 1, got 0" in err


def test_report_never_writes_into_a_folder_of_other_files(base_run, tmp_path, capsys):
    user = tmp_path / "plots"
    user.mkdir()
    (user / "score.png").write_bytes(b"my plot")
    err = fails(capsys, ["report", str(base_run), "--out", str(user), "--overwrite"])
    assert "holds other files and no earlier report" in err and (user / "score.png").read_bytes() == b"my plot"
    empty_run = tmp_path / "empty"
    shutil.copytree(base_run, empty_run)
    for name in ("train.csv", "eval.csv"):
        (empty_run / name).unlink(missing_ok=True)
    err = fails(capsys, ["report", str(empty_run), "--out", str(tmp_path / "r")])
    assert "no metrics recorded yet" in err and not (tmp_path / "r").exists()


def test_evaluate_names_a_sidecar_or_a_file_that_is_no_checkpoint(base_run, tmp_path, capsys):
    sidecar = list_checkpoints(base_run / "checkpoints")[-1].with_suffix(".json")
    err = fails(capsys, ["evaluate", str(sidecar)])
    assert "is a checkpoint's JSON sidecar: give" in err and ".msgpack" in err
    (tmp_path / "data.npz").write_bytes(b"x")
    assert "is not an offrl checkpoint" in fails(capsys, ["evaluate", str(tmp_path / "data.npz")])


def test_finetune_checks_prefix_starts_before_it_trains(tmp_path, capsys):
    argv = ["finetune", *TINY, "--algo", "td3bc", "--offline-steps", "10", "--online-steps", "10",
            "--eval-interval", "10", "--prefix-fraction", "0.5", "--output-dir", str(tmp_path),
            "--run-name", "f"]  # fmt: skip
    assert "needs the simulator state" in fails(capsys, argv)
    assert not (tmp_path / "f").exists()


def test_finetune_resume_takes_no_progress_and_never_redoes_a_finished_run(tmp_path, capsys):
    from offrl.algos.td3bc import TD3BCConfig

    config = FinetuneConfig(algo="td3bc", dataset="pendulum-mixed", offline_steps=10, online_steps=10,
                            eval_interval=10, eval_episodes=1, batch_size=16, updates_per_call=10, log_interval=10,
                            output_dir=str(tmp_path), run_name="f", progress=False)  # fmt: skip
    finetune(config, TD3BCConfig(hidden_dims=(16, 16)), stop_after=10)  # stopped at the switch
    assert main(["finetune", "--resume", str(tmp_path / "f"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "f" / "summary.json").read_text())["online_step"] == 10
    assert "finished at step 20" in fails(capsys, ["finetune", "--resume", str(tmp_path / "f"), "--no-progress"])
