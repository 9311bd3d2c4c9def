"""The CUDA kernels that apply an activation compile for a real GPU (PTX for sm_90).

The simulator runs kernels as Python, so it never types them: a device function that numba
cannot compile, or one that turns a float32 kernel into float64 arithmetic, passes every
simulator test. This compiles the kernels that engine/ops.py's generated device functions
go into, in a subprocess without the simulator, with NVVM (the [cuda] extra's compiler;
skipped where the machine has none). No GPU is needed: the device is named, not asked."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")

SCRIPT = r"""
import sys, types as pytypes
import numpy as np
import numba.cuda.dispatcher as dispatcher
from numba import cuda, types
try:
    from cuda.pathfinder import load_nvidia_dynamic_lib
    load_nvidia_dynamic_lib("nvvm")
    load_nvidia_dynamic_lib("nvrtc")
except Exception as e:
    print("NO COMPILER", type(e).__name__, e)
    sys.exit(0)
# device functions compile for the current device's compute capability: name one
dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(9, 0))
from engine.backends import cuda_kernels as k

I = types.int64
for dtype, t in ((np.float32, types.float32), (np.float64, types.float64)):
    M, V = types.Array(t, 2, "C"), types.Array(t, 1, "C")
    order = types.Array(I, 1, "C")
    kernels = [("bias_act", k.bias_act(dtype), (M, V, I, M, types.boolean)),
               ("act_backward", k.act_backward(dtype), (V, V, I))]
    for epilogue in (k.BIAS_ACT, k.TIMES_DERIVATIVE):
        kernels.append((f"gemm epilogue {epilogue}", k.gemm(dtype, False, True, k.NO_GATHER,
                        epilogue), (M, M, M, I, I, I, types.float64, types.float64, order,
                                    order, V, M, I)))
    for name, kernel, signature in kernels:
        ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
        doubles = sum(".f64" in line for line in ptx.splitlines())
        print(np.dtype(dtype).name, name, "f64-lines", doubles)
"""


def test_activation_kernels_compile_to_ptx():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    if run.stdout.startswith("NO COMPILER"):
        pytest.skip(f"no NVVM on this machine ({run.stdout.strip()}): pip install "
                    "\"engine[cuda]\" brings it")
    lines = run.stdout.split("\n")
    assert sum("float32" in line for line in lines) == 4, run.stdout
    for line in lines:      # float32 activations stay in float32 (the GEMM's alpha and beta
        if line.startswith("float32") and "gemm" not in line:     # are float64 arguments)
            assert line.endswith("f64-lines 0"), run.stdout
