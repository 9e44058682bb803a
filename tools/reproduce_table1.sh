#!/usr/bin/env bash
# Reproduce docs/RESULTS.md's Table 1 and Fig. 5 with the shipped default: the synthetic world,
# the default model (tools/train_default.sh), the baselines, one evaluation code for every row.
# Run from the repository root after `make setup`. On 2 CPU cores: about 10 min of data, the
# default's training (BUDGET seconds, see tools/train_default.sh; skipped when RUN/final.pt
# exists), 10 min for the per-word baseline and about 3 min per evaluated row. Every step prints
# progress and is skipped when its output exists, so a killed run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
TRAIN=${DATA:-data/synth_train12k}
EVAL=data/synth_eval
RUN=${RUN:-runs/default}
OUT=runs/table1
CKPT=model/refseg_model/weights/tabletop.pt
mkdir -p "$OUT"

# 1. The world: training scenes at the network's input resolution (320x240, seed 11), evaluation
#    scenes at the camera's (640x480, seed 2); different seeds, so no scene is in both.
[ -f $EVAL/meta.json ] || refseg-synth --out $EVAL --num-images 600 --seed 2 \
    --width 640 --height 480 --workers 2 --val-frac 0.0 --test-frac 0.999

# 2. The default model: trained, calibrated and shipped by tools/train_default.sh (resumable).
#    TRAIN_DEFAULT=0 evaluates the checkpoint already shipped instead.
if [ "${TRAIN_DEFAULT:-1}" = 1 ] && [ ! -f "$RUN/final.pt" ]; then
  RUN=$RUN DATA=$TRAIN tools/train_default.sh
fi

# 3. The per-word baseline: the default's backbone with one output per frequent training word,
#    multi-label logistic loss.
[ -f runs/perword/perword.pt ] || refseg-baselines train --dataset synthetic \
    --data-root "$TRAIN" --split train --out runs/perword --config tabletop \
    --max-iters 300 --num-words 40 --batch-size 8

# 4. Table 1 on the synthetic test split: the first 3,000 test samples (about 200 scenes), the
#    same for every row.
LIMIT=3000
ev() {
  local json=$1; shift
  [ -f "$OUT/$json.json" ] || refseg-eval --dataset synthetic --data-root $EVAL --split test \
      --limit $LIMIT --json "$OUT/$json.json" "$@"
}
ev whole_image --baseline whole-image --name "whole image"
for rule in average intersection union; do
  ev per_word_$rule --baseline per-word-$rule --checkpoint runs/perword/perword.pt \
     --name "per-word $rule"
done
# Low resolution: the same network's coarse response map (stride 8, deep-supervised) upsampled
# bilinearly; high resolution: its text-conditioned decoder (the shipped default).
ev ours_lowres --checkpoint $CKPT --stage lowres --name "ours low-res"
ev shipped --checkpoint $CKPT --name "shipped default" --by kind --by size

# 5. Fig. 5 and the table.
python tools/figure5.py --checkpoint $CKPT --data-root $EVAL --out docs/img/figure5.png
python tools/results_table.py $OUT
