#!/usr/bin/env bash
# Train the shipped default (preset tabletop), calibrate its threshold on the validation split,
# and ship it as model/refseg_model/weights/tabletop.pt.
#
#   tools/train_default.sh            # CPU: resumable; each call continues runs/default/last.pt
#   tools/train_default.sh --gpu      # one CUDA GPU: the whole recipe in one call of <= 10 min
#
# Environment: BUDGET (seconds of training; default 6000 on the CPU, 420 on a GPU), RUN (run
# folder, default runs/default), DATA (training set, default data/synth_v2), DATA_SEED and
# NUM_IMAGES (the training set's generator seed and scenes when DATA must be written: 31, 10000),
# SHIP (0: stop after training, no calibration and no shipping; default 1),
# INIT (a checkpoint to warm-start from, e.g. the shipped weights shipped at 320x240; default:
# random initialisation), LR (peak learning rate; default the preset's on the CPU, 0.0057 on a
# GPU; the warm restarts of docs/RESULTS.md used 0.001 on the CPU), INPUT=WxH (ship the network
# at another input size, docs/RESULTS.md: 384x288), PYTHON (the interpreter; default .venv's,
# else python3: the GPU machines have no venv, only their image's torch; the package runs from
# model/ through PYTHONPATH), DEVICE (the --gpu path's device, default cuda: DEVICE=cpu checks
# that path on a CPU with a tiny BUDGET and NUM_IMAGES), SCENE=WxH and WIDE=WxH (the training
# scenes' 4:3 and 16:9 sizes when DATA must be written: 320x240 and 368x208), WORKERS (the --gpu
# path's data loader workers; default nproc - 4).
# On both paths a cosine schedule runs over the time budget (--time-budget): a run killed at any
# moment resumes from its last checkpoint with its clock kept; a BUDGET given when it is
# continued replaces the one it started with (more time for a run that did not get there). On a
# GPU the batch is 8x larger (64 = 16 images x 4 expressions) and the learning rate scaled by
# sqrt(8).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/model${PYTHONPATH:+:$PYTHONPATH}"
RUN=${RUN:-runs/default}
DATA=${DATA:-data/synth_v2}
GPU=0
[ "${1:-}" = "--gpu" ] && GPU=1
BUDGET=${BUDGET:-$(( GPU ? 420 : 6000 ))}

# 1. The training set (generator version 2: no-target expressions): 10,000 scenes at the
#    preset's 320x240 input (SCENE), 30% of them from a 16:9 camera at 368x208 (seed 31; 4% val).
workers=$(( GPU ? $(nproc) : 2 ))
scene=${SCENE:-320x240}
[ -f "$DATA/meta.json" ] || "$PY" -m refseg_model.cli.synth --out "$DATA" \
    --num-images "${NUM_IMAGES:-10000}" --seed "${DATA_SEED:-31}" --width "${scene%x*}" \
    --height "${scene#*x}" --wide "${WIDE:-368x208}" --wide-frac 0.3 --workers "$workers" \
    --val-frac 0.04 --test-frac 0.0

# 2. Train (one highres stage, deep supervision of the coarse map).
resume=(); [ -f "$RUN/last.pt" ] && resume=(--resume)
init=(); [ -n "${INIT:-}" ] && [ ! -f "$RUN/last.pt" ] && init=(--init "$INIT")
if [ $GPU = 1 ]; then
  "$PY" -m refseg_model.cli.train --dataset synthetic --data-root "$DATA" --out "$RUN" \
      --config tabletop --stage highres --device "${DEVICE:-cuda}" --batch-size 64 --lr "${LR:-0.0057}" \
      --workers "${WORKERS:-$(( $(nproc) > 4 ? $(nproc) - 4 : 1 ))}" --checkpoint-every 1000 \
      --time-budget "$BUDGET" --val-split val "${init[@]}" "${resume[@]}"
else
  lr=(); [ -n "${LR:-}" ] && lr=(--lr "$LR")
  "$PY" -m refseg_model.cli.train --dataset synthetic --data-root "$DATA" --out "$RUN" \
      --config tabletop --stage highres --device cpu --threads "$(nproc)" \
      --time-budget "$BUDGET" --val-split val "${lr[@]}" "${init[@]}" "${resume[@]}"
fi

[ "${SHIP:-1}" = 0 ] && exit 0  # SHIP=0: train only (a short GPU call; calibrate here later)

# 3. Calibrate the threshold and the found rule on the validation split at the camera's
#    640x480 (240 scenes of seed 5151, 4,546 expressions, about 150 of each no-target kind: enough
#    to tell 5% answered "found" from 10%; no scene shared with training or the evaluation sets),
#    then ship (weights, config, vocabulary, threshold and found rule; no optimiser state).
device=cpu; [ $GPU = 1 ] && device=${DEVICE:-cuda}
VAL=${VAL:-data/val_640_v3}  # generator version 3 (data/val_640_240: the same scenes, version 2)
[ -f "$VAL/meta.json" ] || "$PY" -m refseg_model.cli.synth --out "$VAL" --num-images 240 \
    --seed 5151 --width 640 --height 480 --workers "$workers" --val-frac 0.999 --test-frac 0
input=(); [ -n "${INPUT:-}" ] && input=(--input "$INPUT")
"$PY" tools/ship_default.py "$RUN/last.pt" "$RUN/final.pt" "${input[@]}"
"$PY" -m refseg_model.calibrate --checkpoint "$RUN/final.pt" --dataset synthetic \
    --data-root "$VAL" --split val --limit 0 --device $device --write
"$PY" tools/ship_default.py "$RUN/final.pt" model/refseg_model/weights/tabletop.pt
