"""Fine-tuning metrics: the dip after the switch, final score, CORL's regret."""

from __future__ import annotations

import math

import pytest

from offrl.train.finetune_metrics import fine_tuning_summary, regret


def test_a_curve_that_dips_after_the_switch_and_recovers():
    steps = [0, 100, 200, 300, 400, 500]
    scores = [10.0, 60.0, 40.0, 30.0, 70.0, 90.0]  # offline to 60 at step 100, online from there
    summary = fine_tuning_summary(steps, scores, switch_step=100, train_episode_scores=[50.0, 100.0])
    assert summary["score_at_switch"] == 60.0 and summary["final"] == 90.0
    assert summary["min_after_switch"] == 30.0 and summary["step_of_min"] == 300 and summary["dip"] == 30.0
    assert summary["improvement"] == 30.0
    assert summary["eval_regret"] == pytest.approx((0.6 + 0.7 + 0.3 + 0.1) / 4)
    assert summary["train_regret"] == pytest.approx(0.25)


def test_no_dip_is_zero_and_regret_is_nan_without_scores():
    summary = fine_tuning_summary([0, 10, 20], [50.0, 55.0, 80.0], switch_step=0)
    assert summary["dip"] == 0.0 and summary["min_after_switch"] == 55.0
    assert math.isnan(summary["train_regret"]) and regret([100.0, 100.0]) == 0.0


def test_curves_that_cannot_be_summarised_are_named():
    with pytest.raises(ValueError, match="no evaluation at or before the switch"):
        fine_tuning_summary([10, 20], [1.0, 2.0], switch_step=5)
    with pytest.raises(ValueError, match="no evaluation after the switch"):
        fine_tuning_summary([0, 5], [1.0, 2.0], switch_step=5)
    with pytest.raises(ValueError, match="must increase"):
        fine_tuning_summary([0, 5, 5], [1.0, 2.0, 3.0], switch_step=0)
    with pytest.raises(ValueError, match="one length"):
        fine_tuning_summary([0, 5], [1.0], switch_step=0)
