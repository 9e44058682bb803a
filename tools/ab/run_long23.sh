#!/usr/bin/env bash
# A/B of 2026-12-03 (issue 23, exposure x1.3): the shipped default continued with the preset's
# photometric augmentation (arm L) against the same with exposure gains drawn more often and more
# often bright (arm X, tools/ab/long23_x.yaml), both warm-started from the shipped weights, run
# side by side with one thread each over the same wall-clock budget (AdamW, peak lr 1e-3, cosine
# over the budget). Resumable: a second call continues each arm from its last.pt.
#
#   tools/ab/run_long23.sh            # train both arms (BUDGET seconds each, default 6600)
#   tools/ab/run_long23.sh score      # ship, calibrate and score both arms
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-runs/long23}; BUDGET=${BUDGET:-6600}
W=model/refseg_model/weights/tabletop.pt
mkdir -p "$OUT"
arm_config() { [ "$1" = L ] && echo tabletop || echo tools/ab/long23_x.yaml; }

if [ "${1:-train}" = train ]; then
  [ -f "$OUT/init.pt" ] || cp "$W" "$OUT/init.pt"
  for arm in L X; do
    resume=(); [ -f "$OUT/$arm/last.pt" ] && resume=(--resume)
    nice -n 5 refseg-train --dataset synthetic --data-root data/synth_v2 --out "$OUT/$arm" \
        --config "$(arm_config $arm)" --stage highres --init "$OUT/init.pt" --device cpu \
        --threads 1 --time-budget "$BUDGET" --highres-iters 60000 --lr 0.001 --val-split val \
        "${resume[@]}" >> "$OUT/$arm.log" 2>&1 &
  done
  wait
  exit 0
fi

for arm in ${ARMS:-L X}; do
  python tools/ship_default.py "$OUT/$arm/last.pt" "$OUT/$arm/final.pt"
  refseg-calibrate --checkpoint "$OUT/$arm/final.pt" --dataset synthetic --data-root data/val_640 \
      --split val --limit 1000 --write > "$OUT/$arm.calibrate.log" 2>&1
  python tools/robustness.py --checkpoint "$OUT/$arm/final.pt" --data-root data/eval_640 \
      --wide-root data/eval_720 --limit 600 --out "$OUT/$arm.robustness.json" \
      > "$OUT/$arm.robustness.log" 2>&1
  refseg-eval --checkpoint "$OUT/$arm/final.pt" --dataset synthetic --data-root data/eval_640 \
      --split test --by kind --by size --no-progress --name "arm $arm" \
      --json "$OUT/$arm.eval_640.json" > "$OUT/$arm.eval_640.log" 2>&1
done
