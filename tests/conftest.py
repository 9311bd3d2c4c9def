import os

# The CUDA kernels are tested on the CPU under Numba's simulator unless a real GPU run
# is asked for (ENGINE_TEST_REAL_GPU=1). Set before anything imports numba.
if os.environ.get("ENGINE_TEST_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import engine  # noqa: E402
from engine.backends import available_backends, get_backend, runnable_backends  # noqa: E402

SIMULATED_CUDA = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")
# Every backend that can run here at full size. The simulated GPU is correct but runs each
# CUDA thread as a Python thread: it only gets the tiny shapes of test_cuda.py.
AVAILABLE = runnable_backends()
FAST = [name for name in AVAILABLE if name != "numpy"]


def pytest_report_header(config):
    lines = [f"engine backends: {', '.join(AVAILABLE)}"]
    for b in available_backends():
        if not b.available:
            lines.append(f"  {b.name} unavailable: {b.reason}")
    if os.environ.get("ENGINE_REQUIRE_NATIVE") and "native" not in AVAILABLE:
        lines.append("  ENGINE_REQUIRE_NATIVE is set but native is unavailable")
    return lines


@pytest.fixture(params=AVAILABLE)
def backend(request):
    return get_backend(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(scope="session")
def sample():
    return engine.load_mnist_sample()


@pytest.fixture(scope="session")
def sample64():
    return engine.load_mnist_sample(dtype="float64")
