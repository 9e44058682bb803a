# Sourced by the scripts of a lent GPU machine (tools/gpu_train.sh, tools/gpu_ab.sh,
# bench/gpu_check.sh): their image has torch but not pycocotools; install the wheel carried in
# .whl/ (tools/gpu_train.sh's header says how to download it) into /tmp/site, once.
export PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import pycocotools' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "gpu_env: the pycocotools wheel did not install" >&2; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
