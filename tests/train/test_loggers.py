"""File logging: JSONL gets every record; the CSV tables widen when new metrics appear."""

from __future__ import annotations

import csv
import json

from offrl.train.loggers import FileLogger


def test_csv_widens_when_metrics_appear_later(tmp_path):
    logger = FileLogger(tmp_path)
    logger.log(1000, {"train/episode_return": 5.0}, "train")  # warm-up: no losses yet
    logger.log(2000, {"train/episode_return": 7.0, "critic/loss": 0.5}, "train")
    logger.log(3000, {"critic/loss": 0.25}, "train")
    with open(tmp_path / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1000", "2000", "3000"]
    assert rows[0]["critic/loss"] == "" and rows[1]["critic/loss"] == "0.5" and rows[2]["train/episode_return"] == ""
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and lines[1]["critic/loss"] == 0.5
