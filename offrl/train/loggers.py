"""One logger interface, several sinks: JSONL and CSV files, TensorBoard when installed, and a console progress bar.

Every record is ``(step, {name: float})``; names are namespaced (``critic/loss``, ``eval/normalized_score``).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Protocol


class Logger(Protocol):
    def log(self, step: int, metrics: dict[str, float], kind: str) -> None: ...

    def close(self) -> None: ...


class FileLogger:
    """Appends every record to ``metrics.jsonl``; training and evaluation rows also go to ``train.csv`` and
    ``eval.csv``. A row with metrics the table has not seen yet (an online run's losses appear after its warm-up)
    widens the table: the file is rewritten with the new columns, earlier rows left blank there."""

    def __init__(self, run_dir: Path, resume_from_step: int | None = None):
        self.run_dir = run_dir
        self.jsonl = run_dir / "metrics.jsonl"
        if resume_from_step is not None:
            self._truncate_after(resume_from_step)
        self._csv_columns: dict[str, list[str]] = {}

    def _truncate_after(self, step: int) -> None:
        """On resume, drop rows written after the checkpoint (they will be produced again)."""
        for path in [self.jsonl, self.run_dir / "train.csv", self.run_dir / "eval.csv"]:
            if not path.exists():
                continue
            lines = path.read_text().splitlines(keepends=True)
            if path.suffix == ".jsonl":
                kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
            else:
                kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
            path.write_text("".join(kept))

    def log(self, step: int, metrics: dict[str, float], kind: str) -> None:
        row = {"step": step, "kind": kind, **{k: _plain(v) for k, v in metrics.items()}}
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        path = self.run_dir / f"{kind}.csv"
        columns = self._csv_columns.get(kind)
        if columns is None:
            if path.exists() and path.stat().st_size:
                with open(path, newline="") as f:
                    columns = next(csv.reader(f))
            else:
                columns = ["step", *sorted(metrics)]
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerow(columns)
            self._csv_columns[kind] = columns
        new = sorted(set(metrics) - set(columns))
        if new:
            columns = [*columns, *new]
            with open(path, newline="") as f:
                old_rows = list(csv.reader(f))[1:]
            with open(path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(row + [""] * (len(columns) - len(row)) for row in old_rows)
            self._csv_columns[kind] = columns
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow([step if c == "step" else _plain(metrics.get(c, "")) for c in columns])

    def close(self) -> None:
        pass


class TensorBoardLogger:
    def __init__(self, run_dir: Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float], kind: str) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


def tensorboard_available() -> bool:
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


class ProgressBar:
    """A tqdm bar showing step, updates/s, the main losses and the last evaluation; silent when disabled."""

    MAIN = ("actor/loss", "critic/loss", "value/loss", "bc/loss")

    def __init__(self, total: int, initial: int, enabled: bool, description: str):
        self.bar = None
        self.last_eval = ""
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=description,
                unit="upd",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=0.5,
            )

    def advance(self, n: int, metrics: dict[str, float], updates_per_second: float) -> None:
        if self.bar is None:
            return
        shown = {
            k.split("/")[0] if k != "value/loss" else "V": f"{v:.3g}" for k, v in metrics.items() if k in self.MAIN
        }
        shown["upd/s"] = f"{updates_per_second:.0f}"
        if self.last_eval:
            shown["score"] = self.last_eval
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(n)

    def evaluation(self, normalized_score: float) -> None:
        self.last_eval = f"{normalized_score:.1f}"

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _plain(value: Any) -> Any:
    if isinstance(value, (int, str)):
        return value
    value = float(value)
    return value if math.isfinite(value) else str(value)
