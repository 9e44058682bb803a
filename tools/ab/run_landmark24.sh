#!/usr/bin/env bash
# A/B of 2026-12-04 (issue 23, relations): the shipped default continued as it is (arm A)
# against the same with the landmark grounding added (arm B: `context: landmark`,
# network.LandmarkGrounding, its convolution zero at the start), both warm-started from the
# shipped weights at the 320x240 training input, run side by side with one thread each over the
# same wall-clock budget (preset tabletop's training: AdamW, peak lr 1e-3, cosine over the
# budget). Resumable: a second call continues each arm from its last.pt.
#
#   tools/ab/run_landmark24.sh            # train both arms (BUDGET seconds each, default 3900)
#   tools/ab/run_landmark24.sh score      # ship at 384x288, calibrate and score both arms
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export OUT=${OUT:-runs/ab24}; BUDGET=${BUDGET:-3900}
W=model/refseg_model/weights/tabletop.pt
mkdir -p "$OUT"

if [ "${1:-train}" = train ]; then
  [ -f "$OUT/init_A.pt" ] || python tools/ship_default.py "$W" "$OUT/init_A.pt" --input 320x240
  [ -f "$OUT/init_B.pt" ] || python tools/ship_default.py "$OUT/init_A.pt" "$OUT/init_B.pt" \
      --context landmark
  for arm in A B; do
    resume=(); [ -f "$OUT/$arm/last.pt" ] && resume=(--resume)
    nice -n 5 refseg-train --dataset synthetic --data-root data/synth_v2 --out "$OUT/$arm" \
        --config tabletop --stage highres --init "$OUT/init_$arm.pt" --device cpu \
        --threads 1 --time-budget "$BUDGET" --highres-iters 60000 --lr 0.001 --val-split val \
        "${resume[@]}" >> "$OUT/$arm.log" 2>&1 &
  done
  wait
  exit 0
fi

score_arm() {
  local arm=$1
  python tools/ship_default.py "$OUT/$arm/last.pt" "$OUT/$arm/final.pt" --input 384x288
  refseg-calibrate --checkpoint "$OUT/$arm/final.pt" --dataset synthetic --data-root data/val_640 \
      --split val --limit 1000 --write > "$OUT/$arm.calibrate.log" 2>&1
  refseg-eval --checkpoint "$OUT/$arm/final.pt" --dataset synthetic --data-root data/eval_640 \
      --split test --by kind --by size --no-progress --name "arm $arm" \
      --json "$OUT/$arm.eval_640.json" > "$OUT/$arm.eval_640.log" 2>&1
  [ -n "${NO_ROBUSTNESS:-}" ] || python tools/robustness.py --checkpoint "$OUT/$arm/final.pt" \
      --data-root data/eval_640 --wide-root data/eval_720 --limit 600 \
      --out "$OUT/$arm.robustness.json" > "$OUT/$arm.robustness.log" 2>&1
}
# Both arms at once, each on one core of its own (torch and OpenMP at one thread).
export OMP_NUM_THREADS=1
core=0
for arm in ${ARMS:-A B}; do
  ( export -f score_arm; taskset -c $(( core % $(nproc) )) bash -c "score_arm $arm" ) &
  core=$(( core + 1 ))
done
wait
