"""``offrl dataset report``: a self-contained HTML page with the measures, plots and a verdict."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from offrl.cli import main
from offrl.data.diagnostics import DatasetMeasures
from offrl.reports.dataset import HIGH_SACO, HIGH_TQ, verdict, verdict_kind


def measures(tq, saco):
    return DatasetMeasures(
        transitions=10, episodes=1, episode_returns=np.zeros(1), episode_lengths=np.array([10]), tq=tq,
        unique_state_actions=5, reference_unique_state_actions=10, saco=saco, log_saco=0.7,
        state_coverage=np.ones(2), action_coverage=np.ones(1), bins=100,
    )  # fmt: skip


@pytest.mark.parametrize(
    "tq, saco, expected, kind",
    [
        (0.9, 0.1, "behaviour cloning will likely do as well", "bc"),
        (0.9, 0.9, "constrained offline RL", "bc-baseline"),
        (0.1, 0.9, "can improve far beyond behaviour cloning", "q-learning"),
        (0.1, 0.1, "little to learn from", "poor"),
    ],
)
def test_the_verdict_follows_tq_and_saco(tq, saco, expected, kind):
    assert HIGH_TQ > 0.1 and HIGH_SACO > 0.1
    assert expected in verdict(measures(tq, saco), has_reference=True)
    assert verdict_kind(measures(tq, saco), has_reference=True) == kind


def test_without_a_reference_the_verdict_says_coverage_was_not_judged():
    assert "Coverage was not judged" in verdict(measures(0.9, 1.0), has_reference=False)
    assert "no verdict" in verdict(measures(None, 1.0), has_reference=True)
    assert verdict_kind(measures(0.9, 1.0), has_reference=False) == "bc-no-reference"
    assert verdict_kind(measures(0.1, 1.0), has_reference=False) == "imitation-not-enough"
    assert verdict_kind(measures(None, 1.0), has_reference=True) is None


def test_the_thresholds_themselves_count_as_high():
    assert verdict_kind(measures(HIGH_TQ, HIGH_SACO), has_reference=True) == "bc-baseline"


def test_the_report_is_one_self_contained_page_with_measures_plots_and_verdict(tmp_path, capsys):
    out = tmp_path / "expert.html"
    assert main(["dataset", "report", "pendulum-expert", "--reference", "pendulum-mixed", "--out", str(out)]) == 0
    assert "High TQ" in capsys.readouterr().out
    page = out.read_text()
    assert 'id="verdict"' in page and "behaviour cloning will likely do as well" in page
    assert "<th>tq</th>" in page and "<th>saco</th>" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "http" not in page and "<script" not in page  # nothing to fetch
    assert main(["dataset", "report", "pendulum-expert", "--out", str(out)]) != 0  # nothing the user had is lost
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == page
