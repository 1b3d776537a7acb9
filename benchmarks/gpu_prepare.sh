#!/usr/bin/env bash
# Prepares, on this machine, what the GPU lease scripts (benchmarks/gpu_batch.sh, benchmarks/gpu_zoo.sh) carry to a
# bare GPU machine (Python 3.12 there, with jax, flax, optax, torch and h5py but no gymnasium, mujoco or d3rlpy):
#   .whl/          the missing packages as wheels for CPython 3.12 on x86-64 (the versions of this project's peer
#                  environment: gymnasium 1.0.0, which d3rlpy 2.8.1 pins, mujoco 4.0.0, d3rlpy 2.8.1)
#   .devrun/data/  the hopper random, medium and expert files without their infos group (qpos/qvel, which no table
#                  reads), so that all travel within the 64 MiB a call may carry; medium-expert is rebuilt there from
#                  medium and expert, and medium-replay is the versioned benchmarks/data/hopper-medium-replay.hdf5
# Both paths are ignored by git (.git/info/exclude). Needs the package registry and data/suite/hopper-*.hdf5
# (benchmarks/make_suite.py). Then: run `bash benchmarks/gpu_zoo.sh` with carry [".whl", ".devrun"].
#
#   bash benchmarks/gpu_prepare.sh [DATA_DIR]      (default data/suite)
set -euo pipefail
DATA=${1:-data/suite}
PY=${PY:-python3}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
grep -qx '/.devrun/' .git/info/exclude 2>/dev/null || echo /.devrun/ >> .git/info/exclude

mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
  -d .whl gymnasium==1.0.0 farama-notifications==0.0.6 mujoco==4.0.0 mujoco-core==4.0.0 \
  glfw==2.11.0 pyopengl==3.1.10 d3rlpy==2.8.1 structlog==26.1.0 dataclasses-json==0.6.7 \
  marshmallow==3.26.2 typing-inspect==0.9.0 gym-notices==0.1.0
# (mujoco-studio, which mujoco 4 lists as a need, is only its viewer: left out, it is 13 MB of the 64 MiB)
# gym 0.26.2 (which d3rlpy imports) is published only as source: build its pure-Python wheel here
[ -n "$(ls .whl/gym-0.26.2-*.whl 2>/dev/null)" ] || $PY -m pip wheel -q --no-deps -w .whl gym==0.26.2

mkdir -p .devrun/data
$PY - "$DATA" .devrun/data <<'PYEOF'
import sys
from pathlib import Path

import h5py

source, target = Path(sys.argv[1]), Path(sys.argv[2])
for kind in ("random", "medium", "expert"):
    with h5py.File(source / f"hopper-{kind}.hdf5", "r") as src, h5py.File(target / f"hopper-{kind}.hdf5", "w") as dst:
        for key in src:
            if key != "infos":
                src.copy(src[key], dst, name=key)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
    print(kind, (target / f"hopper-{kind}.hdf5").stat().st_size // 2**20, "MiB")
PYEOF
du -sh .whl .devrun
