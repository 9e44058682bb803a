#!/usr/bin/env bash
# A/B of 2026-12-01 (third working period): warm restart of the shipped default at its 320x240
# input against the same weights at 384x288 on 384x288 scenes (same seed, same layouts), equal
# wall-clock (900 s each, run side by side, one thread each), scored on the same 384x288
# validation scenes (each network resizes them to its own input).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-runs/ab3}; BUDGET=${BUDGET:-900}
W=model/refseg_model/weights/tabletop.pt
mkdir -p "$OUT"
python - "$W" "$OUT/init384.pt" <<'PY'
import sys, torch
c = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
for d in (c["model_config"], c["preprocessing"]):
    d["input_size"], d["input_height"] = 384, 288
torch.save(c, sys.argv[2])
PY
common=(--dataset synthetic --config tabletop --stage highres --device cpu --threads 1
        --time-budget "$BUDGET" --highres-iters 40000 --lr 0.001)
refseg-train "${common[@]}" --data-root data/synth_train12k --out "$OUT/a320" --init "$W" \
    > "$OUT/a320.log" 2>&1 &
refseg-train "${common[@]}" --data-root data/synth_train12k_384 --out "$OUT/b384" \
    --init "$OUT/init384.pt" > "$OUT/b384.log" 2>&1 &
wait
for arm in a320 b384; do
  python tools/ship_default.py "$OUT/$arm/last.pt" "$OUT/$arm/final.pt"
  refseg-eval --checkpoint "$OUT/$arm/final.pt" --dataset synthetic \
      --data-root data/synth_train12k_384 --split val --limit 1500 --threshold 0.5 \
      --by kind --by size --no-progress --json "$OUT/$arm.json" > "$OUT/$arm.eval.log" 2>&1
  tail -20 "$OUT/$arm.eval.log"
done
