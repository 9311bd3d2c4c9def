"""Shared set-up for the pytest-benchmark suites.

Run:  pytest benches --benchmark-only            (about 5-8 minutes on 2 cores)
      pytest benches --benchmark-only -k lecture (one workload)
Every benchmark records dtype, shape, GFLOP/s and thread counts in extra_info, uses warm-up
rounds, and checks its result against the NumPy backend once before timing.
"""
import os

import numpy as np
import pytest

from engine.backends import runnable_backends
from engine.apps.bench import thread_limits

BACKENDS = runnable_backends()
THREADS = int(os.environ.get("ENGINE_BENCH_THREADS", "2"))


@pytest.fixture(scope="session", autouse=True)
def blas_threads():
    """Every BLAS in the process (NumPy's and SciPy's), and the native backend's tiled
    epoch, use the same thread count."""
    with thread_limits(THREADS):
        yield


def thread_info():
    from threadpoolctl import threadpool_info
    return {f"{p['internal_api']}:{os.path.basename(p['filepath'])}": p["num_threads"]
            for p in threadpool_info()}


def record(benchmark, *, backend, dtype, shape, gflop=None, **extra):
    benchmark.extra_info.update(backend=backend, dtype=str(dtype), shape=str(shape),
                                threads=thread_info(), **extra)
    if gflop is not None and benchmark.stats is not None:
        benchmark.extra_info["gflops"] = gflop / benchmark.stats.stats.median


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)
