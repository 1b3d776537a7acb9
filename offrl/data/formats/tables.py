"""Parquet and CSV tables with one transition per row, mapped by a :class:`ColumnMapping`."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offrl.data.dataset import Dataset, DatasetError
from offrl.data.formats.arrays import as_flags, from_arrays


@dataclass(frozen=True)
class ColumnMapping:
    """Which table columns hold which part of a transition.

    ``observations`` / ``actions`` / ``next_observations`` take a list of column names or a single prefix
    (``"obs_"`` selects ``obs_0, obs_1, ...`` in numeric order). ``episode`` names an episode-id column; without it,
    episodes are delimited by the terminal and timeout columns only.
    """

    observations: str | Sequence[str] = "obs_"
    actions: str | Sequence[str] = "action_"
    reward: str = "reward"
    terminal: str | None = "terminal"
    timeout: str | None = "timeout"
    episode: str | None = "episode"
    next_observations: str | Sequence[str] | None = None
    cost: str | None = None
    discrete_actions: bool = False


def _select_columns(spec: str | Sequence[str], header: Sequence[str], what: str, source: str) -> list[str]:
    if isinstance(spec, str):
        if spec in header:
            return [spec]
        chosen = [h for h in header if h.startswith(spec) and h[len(spec) :].isdigit()]
        chosen.sort(key=lambda h: int(h[len(spec) :]))
        if not chosen:
            raise DatasetError(
                f"no column for {what}: expected a column named {spec!r} or columns {spec}0, {spec}1, ...; "
                f"the table has {list(header)}. Pass a ColumnMapping",
                source,
            )
        return chosen
    missing = [c for c in spec if c not in header]
    if missing:
        raise DatasetError(f"{what} columns {missing} are missing; the table has {list(header)}", source)
    return list(spec)


def _read_table(path: Path) -> dict[str, np.ndarray]:
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ImportError("reading Parquet needs pyarrow: pip install 'offrl[parquet]'") from e
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises its own error types
            raise DatasetError(f"cannot read {path} as Parquet ({e})", str(path)) from e
        _check_unique(table.column_names, path)
        return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    header, rows = _read_csv(path)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        values = [r[j] for r in rows]
        try:
            out[name] = np.array([_parse_cell(v) for v in values], dtype=np.float64)
        except ValueError:
            out[name] = np.array(values, dtype=object)
    return out


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV file; every row must have as many fields as the header (blank lines are
    skipped; empty fields past the header's, as trailing commas leave, are dropped)."""
    src = str(path)
    rows: list[list[str]] = []
    ragged: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path} is empty (no header line)", src)
            for row in reader:
                if not row:
                    continue
                if len(row) > len(header) and not any(field.strip() for field in row[len(header) :]):
                    row = row[: len(header)]  # trailing commas (empty fields past the header's): nothing is lost
                if len(row) != len(header):
                    ragged.append(
                        f"{path.name} line {reader.line_num} has {len(row)} fields; its header has {len(header)}"
                    )
                rows.append(row)
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not a UTF-8 text CSV file ({e}); is it a binary file?", src) from e
    except csv.Error as e:
        raise DatasetError(f"{path} is not a readable CSV file (line {reader.line_num}: {e})", src) from e
    if ragged:
        problems = ragged[:5]
        if len(ragged) > 5:
            problems.append(f"... and {len(ragged) - 5} more lines whose number of fields differs from the header's")
        raise DatasetError(problems, src)
    _check_unique(header, path)
    return header, rows


def _check_unique(names: Sequence[str], path: Path) -> None:
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DatasetError(f"the header of {path} names columns {duplicates} more than once", str(path))


def _parse_cell(v: str) -> float:
    s = v.strip().lower()
    if s in ("true", "yes"):
        return 1.0
    if s in ("false", "no", ""):
        return 0.0 if s != "" else float("nan")
    return float(s)


def load_table(path: str | os.PathLike[str], columns: ColumnMapping | None = None) -> Dataset:
    """Load a Parquet or CSV table with one transition per row."""
    path = Path(path)
    m = columns or ColumnMapping()
    src = str(path)
    table = _read_table(path)
    header = list(table)

    def numeric(names: list[str], what: str) -> np.ndarray:
        cols = []
        for name in names:
            col = table[name]
            if col.dtype == object:
                raise DatasetError(f"{what} column {name!r} holds non-numeric values", src)
            cols.append(col.astype(np.float64))
        return np.stack(cols, axis=1)

    obs = numeric(_select_columns(m.observations, header, "observations", src), "observation")
    act = numeric(_select_columns(m.actions, header, "actions", src), "action")
    if m.discrete_actions:
        if act.shape[1] != 1:
            raise DatasetError("discrete actions need exactly one action column", src)
        if not np.all(act == np.round(act)):
            raise DatasetError("discrete action column holds non-integer values", src)
        act = act[:, 0].astype(np.int64)
    if m.reward not in table:
        raise DatasetError(f"reward column {m.reward!r} is missing; the table has {header}", src)
    rew = numeric([m.reward], "reward")[:, 0]
    n = rew.shape[0]
    term = numeric([m.terminal], "terminal")[:, 0] if m.terminal and m.terminal in table else np.zeros(n)
    tout = numeric([m.timeout], "timeout")[:, 0] if m.timeout and m.timeout in table else np.zeros(n)
    term_b = as_flags(term, "terminal", src)
    tout_b = as_flags(tout, "timeout", src)
    if m.episode and m.episode in table:
        episode = table[m.episode]
        change = np.zeros(n, bool)
        change[:-1] = episode[1:] != episode[:-1]
        tout_b = tout_b | (change & ~term_b)
    cost = numeric([m.cost], "cost")[:, 0] if m.cost else None
    next_obs = None
    if m.next_observations is not None:
        next_obs = numeric(_select_columns(m.next_observations, header, "next observations", src), "next obs")
    return from_arrays(obs, act, rew, term_b, tout_b, next_obs, costs=cost, source=src)
