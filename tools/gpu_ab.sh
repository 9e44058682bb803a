#!/usr/bin/env bash
# One call on a lent GPU machine (device `run`): an equal-time A/B of two warm-started trainings
# of the default, run side by side on the same GPU for the same seconds, each with half the
# machine's CPUs for its data loader (the loader, not the GPU, sets the pace on the H200).
#
#   A: the recipe of tools/gpu_train.sh: scenes at 320x240 (16:9: 368x208), the network
#      trained at 320x240 (init runs/init320.pt) and shipped at 384x288;
#   B: scenes at the shipped input, 384x288 (16:9: 440x248), the network trained at
#      384x288 (init runs/init384.pt): training sees objects at the size inference sees them.
#
#   here:  python tools/ship_default.py model/refseg_model/weights/tabletop.pt runs/init320.pt \
#              --input 320x240     (and --input 384x288 for runs/init384.pt)
#          the pycocotools wheel in .whl/ (tools/gpu_train.sh's header)
#   there: run(command="tools/gpu_ab.sh", carry=[".whl", "runs/init320.pt", "runs/init384.pt"],
#              timeout_s=590)
#   back:  $OUT/{A,B}/last.pt (copied every 15 s) and logs.tgz (the device returns 8 files at
#          most), calibrated and scored here
#          (docs/RESULTS.md, the A/B of the training resolution).
#
# Environment: BUDGET (training seconds of each arm, default 330), NUM_IMAGES (scenes of each
# arm's training set, default 8000), DATA_SEED (default 133, the same scenes for both arms), LR
# (default 0.001), DEVICE (default cuda; cpu checks the script with a tiny BUDGET).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=${OUT:-runs/gpu_ab}
source tools/gpu_env.sh
gpu_session gpu_ab "$ROOT/ab.log"
half=$(( $(nproc) / 2 ))
export BUDGET=${BUDGET:-330} NUM_IMAGES=${NUM_IMAGES:-8000} DATA_SEED=${DATA_SEED:-133}
export LR=${LR:-0.001} SHIP=0 WORKERS=$(( half > 2 ? half - 2 : 1 ))

arm() {  # arm NAME SCENE WIDE INIT: one training, its files copied to $ROOT/NAME as written
    local name=$1 dir=/tmp/refseg_ab_$1
    mkdir -p "$ROOT/$name"
    ( while sleep 15; do copy_files "$dir/run" "$ROOT/$name" last.pt metrics.jsonl; done ) &
    local copier=$!
    mkdir -p "$dir/run"
    RUN=$dir/run DATA=$dir/train SCENE=$2 WIDE=$3 INIT=$4 tools/train_default.sh --gpu \
        > "$ROOT/$name/session.log" 2>&1
    local rc=$?
    sleep 1; kill $copier 2>/dev/null
    [ -f "$dir/run/last.pt" ] && cp "$dir/run/last.pt" "$ROOT/$name/last.pt"
    cp "$ROOT/$name/session.log" "$dir/run/" 2>/dev/null
    tar -C "$dir/run" -czf "$ROOT/$name/logs.tgz" --exclude='*.pt' . && \
        rm -f "$ROOT/$name"/{best.pt,metrics.jsonl,train.log,loss_curve.png,session.log}
    echo "gpu_ab: arm $name exit $rc after $(( $(date +%s) - start )) s"
}
arm A 320x240 368x208 runs/init320.pt &
a=$!
arm B 384x288 440x248 runs/init384.pt &
b=$!
wait $a $b  # not a bare wait: that one also waits for the tee above, which never ends
echo "gpu_ab: done after $(( $(date +%s) - start )) s"
