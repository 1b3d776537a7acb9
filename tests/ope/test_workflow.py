"""The offline workflow: checkpoint statistics from a run, and the overfitting / underfitting rules."""

from __future__ import annotations

import json

import numpy as np

from offrl.ope.workflow import CheckpointStatistics, diagnose


def stats(qs, tds, scale=100.0):
    return [CheckpointStatistics(1000 * (i + 1), q, td, scale) for i, (q, td) in enumerate(zip(qs, tds, strict=True))]


def test_a_q_peak_then_a_steady_fall_with_low_td_error_is_overfitting_and_the_peak_is_deployed():
    result = diagnose(stats([10, 20, 30, 27, 24, 20], [1.0, 0.8, 0.6, 0.5, 0.5, 0.4]))
    assert result.verdict == "overfitting" and result.recommended_step == 3000
    assert "dropout" in result.advice


def test_a_critic_coming_down_from_its_initial_values_is_not_overfitting():
    """Negative rewards: Q starts near 0 and falls towards the data's values while the TD error falls."""
    assert diagnose(stats([-4.8, -8.4, -11.6, -15.0, -18.1, -20.6], [7.8, 6.2, 5.1, 4.5, 3.9, 3.3])).verdict == "fine"


def test_a_td_error_that_stays_high_is_underfitting():
    result = diagnose(stats([1, 2, 3, 4], [40.0, 38.0, 41.0, 39.0]))
    assert result.verdict == "underfitting" and "capacity" in result.advice


def test_rising_q_and_falling_td_error_are_fine_and_the_last_checkpoint_is_deployed():
    result = diagnose(stats([1, 2, 3, 4], [40.0, 20.0, 5.0, 1.0]))
    assert result.verdict == "fine" and result.recommended_step == 4000


def test_offrl_workflow_reads_every_checkpoint_of_a_run(tmp_path, capsys):
    from offrl.cli import main
    from offrl.train import TrainConfig, train

    train(TrainConfig(steps=300, checkpoint_interval=100, keep_checkpoints=0, eval_interval=0, eval_episodes=1,
                      output_dir=str(tmp_path), run_name="r", progress=False))  # fmt: skip
    assert main(["workflow", str(tmp_path / "r"), "--max-rows", "2000", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [c["step"] for c in record["checkpoints"]] == [100, 200, 300]
    assert all(np.isfinite(c["dataset_q"]) and c["td_error"] >= 0 for c in record["checkpoints"])
    assert record["verdict"] in ("overfitting", "underfitting", "fine")
