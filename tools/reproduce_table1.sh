#!/usr/bin/env bash
# Reproduce docs/RESULTS.md: the synthetic world, the default model, the baselines, Table 1, Fig. 5.
# Run from the repository root after `make setup` (or any `make` target). About 1.5 h on 2 CPU
# cores, most of it training. Each step prints progress; outputs go to data/, runs/, docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
EVAL=data/synth_eval
OUT=runs/table1
mkdir -p "$OUT"

# 1. The world: training scenes rendered at the network's input resolution (320x240), evaluation
#    scenes at the camera's (640x480); different seeds, so no scene is in both.
[ -f data/synth_train/meta.json ] || refseg-synth --out data/synth_train --num-images 4000 --seed 1 \
    --width 320 --height 240 --workers 2 --val-frac 0.05 --test-frac 0.0
[ -f $EVAL/meta.json ] || refseg-synth --out $EVAL --num-images 600 --seed 2 \
    --width 640 --height 480 --workers 2 --val-frac 0.0 --test-frac 0.999

# 2. The default model (preset tabletop: convnet, stride 8, concat + product fusion); the first
#    default (preset tabletop_mobilenet: MobileNetV3-Small, stride 16) and the same MobileNet
#    network with the paper's concatenation only (preset tabletop_concat). Low-resolution stage,
#    then high-resolution stage; --resume continues a killed run from RUN/last.pt.
for run in tabletop tabletop_mobilenet tabletop_concat; do
  resume=(); [ -f runs/$run/last.pt ] && resume=(--resume)
  refseg-train --dataset synthetic --data-root data/synth_train --out runs/$run --config $run \
      --stage both --batch-size 8 --val-split val --threads 2 --workers 0 "${resume[@]}"
done

# 3. The per-word baseline: one output per frequent word, multi-label logistic loss.
[ -f runs/perword/perword.pt ] || python -m refseg_model.cli.baselines train --dataset synthetic \
    --data-root data/synth_train --split train --out runs/perword --config tabletop_mobilenet \
    --max-iters 300 --num-words 40 --batch-size 8

# 4. Table 1 on the synthetic test split, one evaluation code for every row.
LIMIT=3000  # the first 3,000 test samples (about 200 scenes), the same for every row
ev() { refseg-eval --dataset synthetic --data-root $EVAL --split test --limit $LIMIT "$@"; }
ev --baseline whole-image --name "whole image" --json $OUT/whole_image.json
for rule in average intersection union; do
  ev --baseline per-word-$rule --checkpoint runs/perword/perword.pt --name "per-word $rule" \
     --json $OUT/per_word_$rule.json
done
ev --checkpoint runs/tabletop_concat/lowres.pt --name "ours low-res (concat)" \
   --json $OUT/ours_concat_lowres.json
ev --checkpoint runs/tabletop_concat/best.pt --name "ours high-res (concat)" \
   --json $OUT/ours_concat_highres.json
ev --checkpoint runs/tabletop_mobilenet/lowres.pt --name "ours low-res (MobileNet)" \
   --json $OUT/ours_mobilenet_lowres.json
ev --checkpoint runs/tabletop_mobilenet/best.pt --name "ours high-res (MobileNet)" \
   --json $OUT/ours_mobilenet_highres.json
ev --checkpoint runs/tabletop/lowres.pt --name "ours low-res" --json $OUT/ours_lowres.json
ev --checkpoint runs/tabletop/best.pt --name "ours high-res" --json $OUT/ours_highres.json \
   --save-masks $OUT/masks_highres

# 5. Ship the model (float32 weights, no training state) and draw Fig. 5.
python tools/ship_default.py runs/tabletop/best.pt model/refseg_model/weights/tabletop.pt
ev --checkpoint model/refseg_model/weights/tabletop.pt --name "shipped default" \
   --json $OUT/shipped.json
python tools/figure5.py --checkpoint model/refseg_model/weights/tabletop.pt --data-root $EVAL \
    --out docs/img/figure5.png
python tools/results_table.py $OUT
