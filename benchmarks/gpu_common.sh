# Shared by the GPU lease scripts (benchmarks/gpu_batch.sh, benchmarks/gpu_zoo.sh); source it from the repository
# root. It starts the log and the clock, installs the wheels that travel in .whl/ (the machine is bare: gymnasium,
# mujoco, d3rlpy) into $TMP/site, and rebuilds and checks the hopper datasets that travel in $DATA
# (medium-expert is made there from medium and expert, medium-replay copied from benchmarks/data when missing;
# every file's fingerprint must match the suite's).
OUT=${OUT:-/tmp/gpu-out}
DEADLINE=${DEADLINE:-540}  # seconds after the start: everything still running then is stopped
mkdir -p "$OUT"
START=$(date +%s)
exec > >(tee "$OUT/log.txt") 2>&1
left() { echo $((DEADLINE - ($(date +%s) - START))); }

PY=${PY:-python3}
DATA=${DATA:-.devrun/data}
TMP=${TMP_DIR:-/tmp}
if [ -d "${WHEELS:-.whl}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $TMP/site "${WHEELS:-.whl}"/*.whl || exit 1
fi
export PYTHONPATH=$TMP/site:$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
$PY - "$DATA" <<'PYEOF' || exit 1
import shutil
import sys
from pathlib import Path

import jax
from offrl.data import load_dataset
from offrl.data.dataset import concatenate
from offrl.data.formats.d4rl import save_d4rl_hdf5

data = Path(sys.argv[1])
print("jax", jax.__version__, jax.devices())
versioned = Path("benchmarks/data/hopper-medium-replay.hdf5")  # tracked: it travels with the working tree
if not (data / "hopper-medium-replay.hdf5").exists() and versioned.exists():
    shutil.copyfile(versioned, data / "hopper-medium-replay.hdf5")
if not (data / "hopper-medium-expert.hdf5").exists():
    parts = [load_dataset(data / f"hopper-{k}.hdf5") for k in ("medium", "expert")]
    attrs = {k: v for k, v in parts[0].metadata.items() if k in ("env_id", "ref_min_score", "ref_max_score")}
    save_d4rl_hdf5(concatenate(parts), data / "hopper-medium-expert.hdf5", attrs)
expected = {"random": "a715daba1c0b", "medium": "98e718058e7f", "expert": "2a549ac3c563",
            "medium-replay": "b694f1f2842f", "medium-expert": "5b838f05aa9d"}
for kind, prefix in expected.items():
    got = load_dataset(data / f"hopper-{kind}.hdf5").fingerprint()
    assert got.startswith(prefix), (kind, got)
print("datasets: fingerprints match the suite's")
PYEOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "setup done at $(( $(date +%s) - START )) s"
