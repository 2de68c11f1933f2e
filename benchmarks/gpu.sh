#!/usr/bin/env bash
# Every benchmark with --device cuda, in one pass, each under its own time limit, so that
# a short loan of a GPU machine yields every figure it can:
#
#     bash benchmarks/gpu.sh [LOG_DIR]        # default LOG_DIR: ./gpu-benchmarks
#
# Each benchmark's output goes to LOG_DIR/NAME.log; a benchmark that fails or runs out of
# time leaves its partial log and the others still run. Where ./.whl holds wheels (packages
# the GPU machine's image lacks: lime, captum, traker, jsonschema, ...) they are installed into
# /tmp/site first; where it holds traker's fast_jl source, fast_jl is built for this GPU
# in the background, so that traker is timed with the CUDA projector it uses in practice.
# ONLY=name1,name2 runs a subset (names: signatures scaling trak_lenet_b64 trak_lenet_b512
# trak_resnet20_b64 trak_resnet20_b512 precision stitching throughput); SCALING_STAGES=a,b
# limits the scaling benchmark's stages, SCALING_LIMIT its seconds (default 200).
set -u
LOG_DIR=${1:-gpu-benchmarks}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if compgen -G ".whl/*.whl" >/dev/null; then
    [ -d /tmp/site/lime ] || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
FAST_JL_PID=""
if compgen -G ".whl/fast_jl-*.tar.gz" >/dev/null && ! compgen -G "/tmp/site-fastjl/fast_jl*.so" >/dev/null; then
    (
        cd /tmp && tar xzf "$OLDPWD"/.whl/fast_jl-*.tar.gz && cd fast_jl-* &&
            # its setup.py pins sm_70, which CUDA 13 no longer builds
            sed -i 's/"7.0+PTX"/"'"$($PY -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')"'"/' setup.py &&
            MAX_JOBS=8 $PY -m pip install -q --no-build-isolation --no-deps --no-index \
                --target /tmp/site-fastjl .
    ) >"$LOG_DIR/fast_jl_build.log" 2>&1 &
    FAST_JL_PID=$!
fi

want() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }
bench() {  # NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    want "$name" || return 0
    echo "== $name (limit ${limit}s): $*" | tee "$LOG_DIR/$name.log"
    local start=$SECONDS
    timeout "$limit" "$@" >>"$LOG_DIR/$name.log" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s" | tee -a "$LOG_DIR/$name.log"
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    $PY -c 'import torch, modelkin; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'
} 2>&1 | tee "$LOG_DIR/machine.log"

bench signatures 80 $PY benchmarks/signatures.py --device cuda --images 32 --samples 1000 \
    --points 64 --lime-images 2
bench scaling "${SCALING_LIMIT:-200}" $PY benchmarks/scaling.py --device cuda ${SCALING_STAGES:+--stages $SCALING_STAGES}
[ -n "$FAST_JL_PID" ] && timeout 120 tail --pid="$FAST_JL_PID" -f /dev/null
if [ -d /tmp/site-fastjl ]; then
    export PYTHONPATH="$PYTHONPATH:/tmp/site-fastjl"
    $PY -c 'import torch, fast_jl; print("fast_jl imports")' >>"$LOG_DIR/fast_jl_build.log" 2>&1
fi
for arch in lenet resnet20_w1; do
    for batch in 64 512; do
        bench "trak_${arch%_w1}_b$batch" 40 $PY benchmarks/trak_attribution.py --device cuda \
            --arch $arch --batch-size $batch
    done
done
bench precision 80 $PY benchmarks/precision.py --device cuda --images 64 --samples 1000 \
    --points 64 --trak-train 1024
bench stitching 50 $PY benchmarks/stitching.py --device cuda --images 8192
bench throughput 50 $PY benchmarks/train_throughput.py --device cuda --steps 20
