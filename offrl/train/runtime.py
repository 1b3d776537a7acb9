"""What a run ran on: library versions, the JAX backend and its devices, the host. Written into every run's
``config.json`` so that results from different machines (a CPU, a GPU) can be told apart."""

from __future__ import annotations

import platform
import sys
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
