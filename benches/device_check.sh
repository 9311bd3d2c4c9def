#!/bin/bash
# The device check in one run (what a lent GPU machine is given): build the extension, run
# the CUDA tests against the real device, then benches/gpu_check.py; results go to $OUT.
#   MNIST_IDX=folder-with-the-four-IDX-files bash benches/device_check.sh
# (without MNIST_IDX gpu_check uses MNIST-shaped random data)
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
T0=$(date +%s)
{ nvidia-smi --query-gpu=driver_version,name --format=csv,noheader; lscpu | grep 'Model name'; } \
    > "$OUT/env.txt" 2>&1
python3 setup.py build_ext --inplace -j "$(nproc)" > "$OUT/build.log" 2>&1 \
    || { tail -20 "$OUT/build.log"; exit 1; }
echo "built after $(( $(date +%s) - T0 )) s"
ENGINE_TEST_REAL_GPU=1 timeout 170 python3 -m pytest -q --tb=short -p no:cacheprovider \
    -W "ignore::Warning" tests/test_cuda.py tests/test_gpu_check.py > "$OUT/cuda_tests.log" 2>&1
tail -3 "$OUT/cuda_tests.log"
DATA=${MNIST_IDX:+--mnist $MNIST_IDX}
timeout 170 python3 benches/gpu_check.py ${DATA:---synthetic} --epochs 3 --out "$OUT" \
    > "$OUT/gpu_check.log" 2>&1
echo "gpu_check rc $?"
grep -E "FAIL|PASSED|median epoch|100 epochs|GEMM|cuBLAS" "$OUT/gpu_check.log" | head -20
echo "done after $(( $(date +%s) - T0 )) s"
