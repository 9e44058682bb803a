# Sourced by the scripts of a lent GPU machine (tools/gpu_train.sh, tools/gpu_ab.sh,
# bench/gpu_check.sh): their image has torch but not pycocotools; install the wheel carried in
# .whl/ (tools/gpu_train.sh's header says how to download it) into /tmp/site, once.
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1
if ! "$PYTHON" -c 'import pycocotools' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "gpu_env: the pycocotools wheel did not install" >&2; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

gpu_session() {  # gpu_session NAME LOG: everything after it also goes to LOG; $start is now
    mkdir -p "$(dirname "$2")"
    exec > >(tee "$2") 2>&1
    start=$(date +%s)
    echo "$1: $(date -u +%FT%TZ) on $(hostname), $(nproc) CPUs"
    command -v nvidia-smi >/dev/null && \
        nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    return 0
}

copy_files() {  # copy_files SRC DST FILE...: atomic copies of those of FILE that exist in SRC
    local src=$1 dst=$2 f
    shift 2
    for f in "$@"; do
        [ -f "$src/$f" ] && cp "$src/$f" "$dst/.$f.tmp" && mv "$dst/.$f.tmp" "$dst/$f"
    done
    return 0
}
