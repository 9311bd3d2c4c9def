"""What several test modules share: which backends and SIMD variants run here, and a way
to run a block of code on one SIMD variant. Import it as `helpers` (pytest puts tests/ on
sys.path); conftest.py only holds fixtures and hooks."""
import contextlib
import os

import numpy as np

# The CUDA kernels are tested on the CPU under Numba's simulator unless a real GPU run
# is asked for (ENGINE_TEST_REAL_GPU=1). Set before anything imports numba.
if os.environ.get("ENGINE_TEST_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from engine.backends import runnable_backends  # noqa: E402

SIMULATED_CUDA = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")
# Every backend that can run here at full size. The simulated GPU is correct but runs each
# CUDA thread as a Python thread: it only gets the tiny shapes of test_cuda.py.
AVAILABLE = runnable_backends()
FAST = [name for name in AVAILABLE if name != "numpy"]

try:
    from engine import _native
    # every compiled SIMD variant of the native workers that this CPU can run
    SIMD_VARIANTS = [name for name, runs in _native.simd_variants().items() if runs]
except ImportError:
    _native = None
    SIMD_VARIANTS = []


@contextlib.contextmanager
def simd_variant(name):
    """Run the native workers of one SIMD variant inside the block."""
    _native.force_simd(name)
    try:
        yield
    finally:
        _native.force_simd(None)


def plan_arrays(sizes, batch, dtype=np.float64):
    """Keyword arguments for an engine._native.EpochPlan of these widths: the arrays a
    workspace holds, made directly (weights 0.1, everything else zero)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    return dict(weights=[z(o, i) + 0.1 for i, o in layers], biases=[z(o) for _, o in layers],
                acts=[z(batch, o) for _, o in layers], deltas=[z(batch, o) for _, o in layers],
                bias_grads=[z(o) for _, o in layers], x=z(batch, sizes[0]),
                t=z(batch, sizes[-1]),
                activations=("sigmoid",) * (len(layers) - 1) + ("softmax",),
                loss="cross_entropy")
