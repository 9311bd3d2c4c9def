"""Fixtures and hooks; what test modules share to import lives in helpers.py."""
import os

from helpers import AVAILABLE  # noqa: E402  (first: it sets up the CUDA simulator)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import engine  # noqa: E402
from engine.backends import available_backends, get_backend  # noqa: E402


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
