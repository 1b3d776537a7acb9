#!/usr/bin/env bash
# One lease of a GPU machine (an H100/H200 with 16 CPU cores), used for three jobs at once:
#   1. SAC on Hopper-v5 on the GPU until a third of expert return (issue 3's medium policy), timed;
#   2. updates/s of offrl's offline algorithms on the GPU, with d3rlpy's on the same GPU (issue 4);
#   3. meanwhile, on 10 of the CPU cores (JAX_PLATFORMS=cpu, one single-threaded process per core), the BC runs
#      of the hopper-family table for seeds 1 and 2 (issue 3), which this project's 2-core machine would
#      otherwise spend about an hour on.
# The machine is bare: gymnasium, mujoco and d3rlpy travel as wheels in .whl/, and the hopper datasets in
# .devrun/data/ (the suite's files without the infos group; medium-expert is rebuilt here from medium and expert
# and its fingerprint checked). Results go to $OUT (the device tool brings them back).
# `bash benchmarks/gpu_prepare.sh` makes .whl and .devrun here first.
#
#   bash benchmarks/gpu_batch.sh            # on the device machine, from the repository root
set -u
source benchmarks/gpu_common.sh
TABLE_STEPS=${TABLE_STEPS:-200000}
SAC_STEPS=${SAC_STEPS:-300000}
$PY -c "import flax, gymnasium, mujoco, numpy, optax, torch; print('flax', flax.__version__, 'optax', optax.__version__, \
  'numpy', numpy.__version__, 'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__, 'torch', torch.__version__)" || exit 1

# 3. the table's BC runs for seeds 1 and 2, on CPU cores 6-15, in the background
RUNS=$TMP/scores-hopper
( JAX_PLATFORMS=cpu taskset -c ${TABLE_CORES:-6-15} $PY benchmarks/scores.py --suite hopper --data-dir "$DATA" \
    --algos bc --seeds 1,2 --steps $TABLE_STEPS --jobs ${TABLE_JOBS:-10} --final-episodes ${FINAL_EPISODES:-100} --out $RUNS > "$OUT/table-bc.log" 2>&1 ) &
TABLE=$!

# 1. SAC on the GPU to a third of expert (the same command as the CPU run in BENCHMARKS.md, seed 0)
timeout $(( $(left) - 210 )) taskset -c ${SAC_CORES:-0-1} $PY -m offrl.cli train-online --algo sac --task hopper \
  --steps $SAC_STEPS --seed 0 --eval-interval 5000 --checkpoint-interval 20000 --stop-return 1103 \
  --output-dir $TMP/online --run-name sac-hopper-medium-gpu-s0 --no-progress
echo "sac exit $? at $(( $(date +%s) - START )) s"
( cd $TMP/online && tar czf "$OUT/sac-online.tar.gz" --exclude=checkpoints sac-hopper-medium-gpu-s0 )

# 2. throughput on the GPU, d3rlpy on the same GPU
timeout $(( $(left) - 15 )) taskset -c ${THROUGHPUT_CORES:-2-5} $PY benchmarks/throughput.py \
  --algos iql,td3bc,cql,cal-ql,awac,rebrac,edac,bc --updates 3000 --repeats 3 --peer-updates 300 \
  --peer-device ${PEER_DEVICE:-cuda:0} ${THROUGHPUT_ARGS:-} --markdown --json "$OUT/throughput-gpu.json"
echo "throughput exit $? at $(( $(date +%s) - START )) s"

# wait for the table runs until the deadline, then keep what finished (no checkpoints: they stay here)
while kill -0 $TABLE 2>/dev/null && [ "$(left)" -gt 5 ]; do sleep 2; done
pkill -f -- "--out $RUNS"  # only this script's table runs
sleep 1
( cd $RUNS && find . -name final_eval.json | sed 's|/final_eval.json||' | \
    tar czf "$OUT/table-bc.tar.gz" --exclude=checkpoints --exclude='.*.lock' -T - )
echo "finished table runs: $(cd $RUNS && find . -name final_eval.json | sort | tr '\n' ' ')"
echo "done at $(( $(date +%s) - START )) s"
