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
