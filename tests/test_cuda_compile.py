"""Every CUDA kernel the backend launches compiles for a real GPU (PTX for sm_90).

The simulator runs kernels as Python, so it never types them: a kernel that numba cannot
compile, or a float32 one that slips into float64 arithmetic, passes every simulator test.
Here a subprocess under the simulator trains small models through every kernel (each
output/loss pair, each optimizer, dropout, sample weights, diagnostics, scores) and records
which kernel (its factory and arguments) was launched with which argument types; a second
subprocess, without the simulator, builds the same kernels and compiles each with those
types with NVVM (the test extra installs it; skipped where the machine has none). No GPU is
needed: the device is named, not asked. engine/ops.py's activations go into these kernels
as generated device functions, so this also compiles every formula of that table."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba.cuda")

ROOT = str(Path(__file__).resolve().parents[1])

RECORD = r"""
import json
import numpy as np
import numba
from numba.cuda.simulator import kernel as simulated
import engine
from engine.backends import cuda_kernels

launches = []
launch = simulated.FakeCUDAKernel.__call__


def describe(arg):
    t = arg._numba_type_ if hasattr(arg, "_numba_type_") else numba.typeof(arg)
    if isinstance(t, numba.types.Array):
        return ["array", str(t.dtype), t.ndim, t.layout]
    return ["scalar", str(t)]


def recorded(self, *args):
    if not self._device:
        launches.append((id(self), [describe(a) for a in args]))
    return launch(self, *args)


simulated.FakeCUDAKernel.__call__ = recorded
rng = np.random.default_rng(0)
X = rng.random((7, 5))
targets = {("sigmoid", "mse"): rng.integers(0, 3, 7),
           ("softmax", "cross_entropy"): rng.integers(0, 3, 7),
           ("identity", "mse"): rng.normal(size=(7, 3)),
           ("sigmoid", "binary_cross_entropy"): rng.integers(0, 2, (7, 3)),
           ("exp", "poisson"): rng.poisson(1.0, (7, 3)).astype(float),
           ("identity", "squared_error"): rng.normal(size=(7, 3))}
w = rng.uniform(0.5, 1, 7)
for dtype in ("float32", "float64"):
    for (out, loss), y in targets.items():
        m = engine.MLP([5, 4, 3], "relu", out, loss, dtype=dtype, backend="cuda", seed=1)
        m.fit(X, y, epochs=1, batch_size=7, progress=False,
              momentum=0.5 if out == "identity" else 0.0)
    y = targets["softmax", "cross_entropy"]
    for kw in ({"optimizer": "adam", "alpha": 1e-3}, {"momentum": 0.9, "nesterov": True},
               {"momentum": 0.9, "dropout": 0.3, "sample_weight": w, "validation_data": (X, y)},
               {"diagnostics": True}, {"optimizer": "adam", "dropout": 0.3},
               {"momentum": 0.9, "nesterov": True, "diagnostics": True}):
        m = engine.MLP([5, 4, 3], "tanh", dtype=dtype, backend="cuda", seed=1)
        m.fit(X, y, epochs=1, batch_size=7, progress=False, **kw)
    m.predict(X)
factory = {id(kernel): list(key) for key, kernel in cuda_kernels._cache.items()}
seen = []
for kernel, types in launches:
    item = [factory[kernel], types]
    if kernel in factory and item not in seen:
        seen.append(item)
print(json.dumps(seen))
"""

COMPILE = r"""
import json, re, sys, types as pytypes
try:
    from cuda.pathfinder import load_nvidia_dynamic_lib
    load_nvidia_dynamic_lib("nvvm")
    load_nvidia_dynamic_lib("nvrtc")
except Exception as e:
    print(json.dumps({"no_compiler": f"{type(e).__name__}: {e}"}))
    sys.exit(0)
import numba.cuda.dispatcher as dispatcher
from numba import cuda, types
# device functions compile for the current device's compute capability: name one
dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=(9, 0))
from engine.backends import cuda_epoch, cuda_kernels, cuda_step_kernels


def numba_type(d):
    if d[0] == "array":
        return types.Array(getattr(types, d[1]), d[2], d[3])
    return getattr(types, {"bool": "boolean"}.get(d[1], d[1]))


# float64 arithmetic (or a float32 value widened to float64); loads and narrowing aside
DOUBLE = re.compile(r"^\s*(?:(?:add|sub|mul|fma|div|neg|abs|min|max|sqrt|rcp|ex2|lg2|setp)"
                    r"[.\w]*\.f64|cvt[.\w]*\.f64\.f32)\b", re.M)
results = []
for key, signature in json.load(sys.stdin):
    module = next(m for m in (cuda_kernels, cuda_step_kernels, cuda_epoch)
                  if hasattr(m, key[0]))
    kernel = getattr(module, key[0])(*key[1:])
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, tuple(map(numba_type, signature)),
                                  cc=(9, 0))
        doubles = len(DOUBLE.findall(ptx))
        results.append([key, None, doubles])
    except Exception as e:
        results.append([key, f"{type(e).__name__}: {str(e)[:500]}", None])
print(json.dumps({"results": results}))
"""


def _python(script, simulator, stdin=None):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1" if simulator else "0",
           "PYTHONPATH": ROOT}
    run = subprocess.run([sys.executable, "-c", script], env=env, input=stdin,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.strip().splitlines()[-1]


def test_every_launched_kernel_compiles_to_ptx():
    launched = _python(RECORD, simulator=True)
    kinds = {key[0] for key, _ in json.loads(launched)}
    # the kernels of the fused epoch, the per-step path, the scores and the diagnostics
    assert {"gemm", "bias_act", "act_backward", "softmax_rows", "output_step", "update_all",
            "optimizer_step", "dropout", "dropout_backward", "loss_into", "output_delta",
            "gather", "sq_norm", "saturated_count", "alive_units"} <= kinds, kinds
    compiled = json.loads(_python(COMPILE, simulator=False, stdin=launched))
    if "no_compiler" in compiled:
        pytest.skip(f"no NVVM on this machine ({compiled['no_compiler']}): pip install "
                    "\"engine[cuda]\" brings it")
    failed = [(key, error) for key, error, _ in compiled["results"] if error]
    assert failed == [], failed
    # float32 kernels compute in float32 (a float64 literal silently widens a whole
    # expression: the softmax ran in float64 until this test), except where float64 is
    # asked for: the losses' and norms' sums, the steps' L2 sums, the weighted delta's scale
    exempt = {"output_step", "loss_into", "sq_norm", "weight_sum", "update_all",
              "output_delta"}
    widened = [key for key, _, doubles in compiled["results"]
               if key[1] == "float32" and key[0] not in exempt and doubles]
    assert widened == [], widened
