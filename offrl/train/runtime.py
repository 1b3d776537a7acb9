"""What a run ran on: library versions, the JAX backend and its devices, the host. Written into every run's
``config.json`` so that results from different machines (a CPU, a GPU) can be told apart. And how long it took
(:class:`RunClock`), over all its invocations."""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import jax


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def runtime_info() -> dict[str, Any]:
    """Versions of Python and the numerical stack, the JAX backend and device kinds, and the host's machine type."""
    return {
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "flax": _version("flax"),
        "optax": _version("optax"),
        "numpy": _version("numpy"),
        "backend": jax.default_backend(),
        "devices": sorted({d.device_kind for d in jax.devices()}),
        "device_count": jax.device_count(),
        "machine": platform.machine(),
        "system": platform.system(),
    }


def keep_first_runtime(metadata: dict[str, Any], run_dir: Any) -> dict[str, Any]:
    """On resume: keep the runtime the run started on (from its ``config.json``) and record this one as
    ``resumed_runtime``, so a run started on a GPU and continued on a CPU says both."""
    import json
    from pathlib import Path

    path = Path(run_dir) / "config.json"
    if path.exists():
        first = json.loads(path.read_text()).get("runtime")
        if first is not None and first != metadata.get("runtime"):
            return {**metadata, "runtime": first, "resumed_runtime": metadata.get("runtime")}
    return metadata


@dataclass
class RunClock:
    """The time a run has spent, over all its invocations: its wall time, and the updates it made and the seconds
    they took. Every checkpoint records the totals at its step (``to_json``, in the checkpoint's metadata under
    ``"clock"``) and a run resumed from it starts from them (``resumed``), so a run's summary says what the whole
    run took rather than its last invocation (work between a checkpoint and a stop, done again after the resume,
    counts once). A checkpoint written before offrl recorded this has no clock: the totals then start at its step,
    ``timed_from_step``."""

    earlier_wall_seconds: float = 0.0
    earlier_update_seconds: float = 0.0
    earlier_updates: int = 0
    timed_from_step: int = 0
    began: float = field(default_factory=time.perf_counter)
    update_seconds_now: float = 0.0
    updates_now: int = 0

    @classmethod
    def resumed(cls, checkpoint_metadata: dict[str, Any], step: int) -> RunClock:
        """The clock of a run resumed from a checkpoint at ``step`` whose metadata is ``checkpoint_metadata``."""
        saved = checkpoint_metadata.get("clock")
        if saved is None:
            return cls(timed_from_step=step)
        return cls(
            float(saved["wall_seconds"]),
            float(saved["update_seconds"]),
            int(saved["updates"]),
            int(saved.get("timed_from_step", 0)),
        )

    def add_updates(self, updates: int, seconds: float) -> None:
        self.updates_now += updates
        self.update_seconds_now += seconds

    @property
    def wall_seconds(self) -> float:
        return self.earlier_wall_seconds + time.perf_counter() - self.began

    @property
    def update_seconds(self) -> float:
        return self.earlier_update_seconds + self.update_seconds_now

    @property
    def updates(self) -> int:
        return self.earlier_updates + self.updates_now

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.update_seconds if self.update_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "wall_seconds": self.wall_seconds,
            "update_seconds": self.update_seconds,
            "updates": self.updates,
            "timed_from_step": self.timed_from_step,
        }

    def summary(self) -> dict[str, Any]:
        """The fields a run's ``summary.json`` gets: updates/s and wall time of the whole run."""
        out: dict[str, Any] = {"updates_per_second": self.updates_per_second, "wall_seconds": self.wall_seconds}
        if self.timed_from_step:
            out["timed_from_step"] = self.timed_from_step
        return out
