#!/usr/bin/env bash
# Issue 4's score table of the algorithm zoo on the hopper family, on one lease of a GPU machine (an H100/H200
# with 16 CPU cores): each algorithm's 15 runs (5 datasets x 3 seeds) train as one vmapped group
# (`scores.py --group`, offrl.train.group) on the GPU; at each evaluation step (every 50k updates and the end)
# 12 worker processes on the CPU cores evaluate the members' checkpoints at once while training waits.
# Algorithms run cheapest first, so a lease that ends early still returns whole algorithms; the next lease runs
# the rest (ALGOS=...). Runs that have not finished by the deadline are lost (their checkpoints stay there).
#
# The machine is bare: gymnasium and mujoco travel as wheels in .whl/, the hopper datasets in .devrun/data/
# (medium-expert is rebuilt there from medium and expert, fingerprints checked), as for benchmarks/gpu_batch.sh.
# `bash benchmarks/gpu_prepare.sh` makes both here (a fresh machine has neither: they are ignored by git).
# Results: $OUT/scores-zoo-hopper.tar.gz (or $OUT/scores-corruption.tar.gz with TABLE=corruption): the small files
# of every finished run, as `scores.py --archive` writes them (unpack into benchmarks/results/ and build the table
# with `--table-only --out` that folder); $OUT/group-throughput.json (with THROUGHPUT=1) and $OUT/log.txt.
#
#   run: bash benchmarks/gpu_zoo.sh        (carry .whl and .devrun; timeout_s 600)
#   here, a smoke test on the CPU: OUT=/tmp/zoo DATA=data/suite STEPS=500 SEEDS=0 FINAL_EPISODES=3 \
#       EVAL_WORKERS=2 ALGOS=awac,prdc PY=python WHEELS=none bash benchmarks/gpu_zoo.sh
set -u
DEADLINE=${DEADLINE:-570}
source benchmarks/gpu_common.sh
STEPS=${STEPS:-200000}
RUNS=$TMP/scores-zoo-hopper

# with THROUGHPUT=1, first (about two minutes) updates/s of single runs and groups of 15 on synthetic data; the
# table's own rows report each member's updates/s on the real data anyway
if [ "${THROUGHPUT:-0}" = 1 ]; then
  timeout 150 $PY benchmarks/throughput.py --algos iql,cql --members 15 --updates 2000 --repeats 2 \
    --updates-per-call 1000 --no-peer --json "$OUT/group-throughput.json"
  echo "throughput done at $(( $(date +%s) - START )) s"
fi

# the table, algorithm by algorithm, cheapest first; final evaluations on 100 episodes, in the workers.
# TABLE=corruption runs issue 4's RIQL experiment instead: hopper-medium clean and with 30% random corruption of
# observations, actions, rewards or dynamics, for RIQL, IQL, CQL and TD3+BC (each algorithm's 15 runs one group).
# TABLE=workflow runs issue 6's workflow suite (benchmarks/workflow_suite.py: 100k updates, a checkpoint and an
# online evaluation every 10k) for ALGOS (default cql) on the hopper family, as groups, and returns the runs without
# their checkpoints in $OUT/workflow-suite.tar.gz (each with its workflow.json: unpack into runs/workflow-suite and
# run the suite with --table-only).
# TABLE=finetune runs issue 5's offline-to-online tables (benchmarks/finetune_table.py: the main one on pendulum-random
# and pendulum-mixed, then ResFiT's on pendulum-sparse-demos), JOBS (default 8) runs at a time as processes that
# share the GPU, and returns the runs without checkpoints in $OUT/finetune-table.tar.gz and $OUT/resfit-table.tar.gz
# (unpack into runs/finetune-table and runs/resfit-table, then run each table with --table-only). A smoke test here:
#   OUT=/tmp/ft DATA=data/suite PY=python WHEELS=none TABLE=finetune JOBS=2 SEEDS=0 ALGOS=iql,rlpd \
#       FT_EXTRA="--offline-steps 200 --online-steps 200 --eval-interval 100 --eval-episodes 1" bash benchmarks/gpu_zoo.sh
TABLE=${TABLE:-zoo}
if [ "$TABLE" = finetune ]; then
  $PY -c "from offrl.data.builtin import load_builtin as l; [l(n) for n in ('pendulum-random', 'pendulum-mixed', 'pendulum-sparse-demos')]"
  FT=(benchmarks/finetune_table.py --seeds ${SEEDS:-0,1,2} --jobs ${JOBS:-8})
  timeout $(( $(left) - 40 )) $PY "${FT[@]}" --methods "${ALGOS:-iql,cal-ql,rlpd,pa-rl,famo2o}" \
    --datasets pendulum-random,pendulum-mixed --out $TMP/finetune-table ${FT_EXTRA:-}
  echo "finetune table exit $? at $(( $(date +%s) - START )) s"
  if [ "$(left)" -gt 100 ]; then
    timeout $(( $(left) - 40 )) $PY "${FT[@]}" --methods resfit,rlpd --datasets pendulum-sparse-demos \
      --offline-steps 2000 --online-steps 6000 --eval-interval 1000 --eval-episodes 20 --out $TMP/resfit-table ${FT_EXTRA:-}
    echo "resfit table exit $? at $(( $(date +%s) - START )) s"
  fi
  for t in finetune-table resfit-table; do
    [ -d $TMP/$t ] && ( cd $TMP/$t && tar czf "$OUT/$t.tar.gz" --exclude=checkpoints . )
  done
  echo "done at $(( $(date +%s) - START )) s"
  exit 0
fi
if [ "$TABLE" = workflow ]; then
  timeout $(( $(left) - 20 )) $PY benchmarks/workflow_suite.py --data-dir "$DATA" --algos "${ALGOS:-cql}" \
    --steps ${STEPS:-100000} --interval ${INTERVAL:-10000} --group --eval-workers ${EVAL_WORKERS:-12} \
    --out $TMP/workflow-suite --json "$OUT/workflow-suite.json"
  echo "workflow suite exit $? at $(( $(date +%s) - START )) s"
  ( cd $TMP/workflow-suite && tar czf "$OUT/workflow-suite.tar.gz" --exclude=checkpoints --exclude='.*.lock' . )
  echo "done at $(( $(date +%s) - START )) s"
  exit 0
fi
if [ "$TABLE" = corruption ]; then
  ALGOS=${ALGOS:-td3bc,iql,riql,cql}
  RUNS=$TMP/scores-corruption
  WHAT=(--datasets "$DATA/hopper-medium.hdf5" --task hopper
        --corruptions none,observations:random:0.3,actions:random:0.3,rewards:random:0.3,dynamics:random:0.3)
else
  ALGOS=${ALGOS:-awac,f-dvl,riql,rebrac,prdc,edac,sac-n,cql,cal-ql}
  WHAT=(--suite hopper --data-dir "$DATA")
fi
for algo in ${ALGOS//,/ }; do
  if [ "$(left)" -lt 60 ]; then echo "no time left for $algo"; break; fi
  timeout $(( $(left) - 20 )) $PY benchmarks/scores.py "${WHAT[@]}" --algos "$algo" \
    --seeds ${SEEDS:-0,1,2} --steps $STEPS --group --eval-workers ${EVAL_WORKERS:-12} \
    --final-episodes ${FINAL_EPISODES:-100} --out "$RUNS"
  echo "$algo exit $? at $(( $(date +%s) - START )) s"
done
# the archive as one file: the device tool brings back at most 8 files, none more than 2 folders below $OUT
$PY benchmarks/scores.py "${WHAT[@]}" --algos "$ALGOS" --seeds ${SEEDS:-0,1,2} --steps $STEPS \
  --final-episodes ${FINAL_EPISODES:-100} --out "$RUNS" --table-only --archive "$TMP/archive/$(basename "$RUNS")"
[ -d "$TMP/archive/$(basename "$RUNS")" ] && tar czf "$OUT/$(basename "$RUNS").tar.gz" -C "$TMP/archive" "$(basename "$RUNS")"
echo "done at $(( $(date +%s) - START )) s"
