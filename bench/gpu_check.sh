#!/usr/bin/env bash
# The prepared check for a lent GPU (an H200: about 6 minutes, at most 8): both presets through
# Segmenter on CUDA at batch 1 and 32, the training step's images/s, a one-GPU torchrun (nccl)
# smoke run of refseg-train -> bench/results_gpu.json and bench/results_gpu.md.
#
#   bench/gpu_check.sh             on the GPU machine, from the repository root
#   bench/gpu_check.sh --dry-run   on a CPU: every section with few iterations (checks the script)
#
# Extra arguments go to bench/gpu_check.py (--skip forward,agreement; --out DIR).
# GPU_CHECK_LIMIT_S (default 480) bounds the whole run; results are written after each section,
# so a run cut short keeps what it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD:$PWD/model${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
[ "$PY" = python3 ] && PYTHON=python3 source tools/gpu_env.sh  # the GPU image: no pycocotools
"$PY" -c 'import torch, refseg_model' || { echo "gpu_check: torch / refseg_model not importable with $PY (set PYTHON=...)" >&2; exit 2; }
if [[ " $* " != *" --dry-run "* ]]; then
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec timeout --signal=INT --kill-after=20 "${GPU_CHECK_LIMIT_S:-480}" "$PY" bench/gpu_check.py "$@"
