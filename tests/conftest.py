import os

import numpy as np
import pytest

import engine
from engine.backends import available_backends, get_backend

# Every backend that can run here; the CUDA one under the simulator when enabled.
AVAILABLE = [b.name for b in available_backends() if b.available]
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
