"""Shared set-up for the pytest-benchmark suites.

Run:  pytest benches --benchmark-only               (small sizes: one compact table)
      pytest benches --benchmark-only --bench-full   (the README's sizes: 60,000-row epochs,
                                                     the wide network, 1024^3 GEMMs)
      pytest benches --benchmark-only -k lecture    (one workload)
Every benchmark records dtype, shape, GFLOP/s and thread counts in extra_info, uses warm-up
rounds, and checks its result against the NumPy backend once before timing.
"""
import importlib
import importlib.util
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _find_built_engine():
    """The benchmarks time the native backend, so they need the built extension. After a
    plain `pip install .`, running pytest from the source folder imports the source
    `engine/` (no extension there) instead of the installed one: step past the source
    folder to the installed package, or stop with one line that says what to run."""
    def source_shadows():
        spec = importlib.util.find_spec("engine")
        origin = os.path.dirname(spec.origin) if spec and spec.origin else ""
        return os.path.abspath(origin) == os.path.join(ROOT, "engine"), spec

    from_source, spec = source_shadows()
    if from_source and importlib.util.find_spec("engine._native") is None:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]
        for name in [m for m in sys.modules if m == "engine" or m.startswith("engine.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
    if importlib.util.find_spec("engine") is None or \
            importlib.util.find_spec("engine._native") is None:
        pytest.exit("benches: engine's native extension is not built; run `pip install -e .` "
                    "(or `python setup.py build_ext --inplace`) in the source folder first",
                    returncode=2)


_find_built_engine()

# --bench-full (or ENGINE_BENCH_FULL=1): the README's sizes. Read here, not from pytest's
# config, because the suites size their data at import.
FULL = "--bench-full" in sys.argv or os.environ.get("ENGINE_BENCH_FULL") == "1"
ROWS = 60_000 if FULL else 6_000


def pytest_addoption(parser):
    parser.addoption("--bench-full", action="store_true",
                     help="engine benches: the README's full sizes (60,000-row epochs, the "
                          "wide network, 1024^3 GEMMs); default: small sizes")


def pytest_configure(config):
    """Small runs print one compact table (median, IQR, ops, rounds) unless asked otherwise."""
    if not FULL and getattr(config.option, "benchmark_columns", None) and \
            "--benchmark-columns" not in " ".join(sys.argv):
        config.option.benchmark_columns = ["median", "iqr", "ops", "rounds"]


def pytest_benchmark_group_stats(config, benchmarks, group_by):
    """One table for a small run (its rows say backend and sizes in their names); the
    per-workload groups for --bench-full."""
    if FULL:
        return None                         # pytest-benchmark's own grouping
    return [("engine benchmarks (small sizes; --bench-full for the README's)",
             sorted(benchmarks, key=lambda b: b["fullname"]))]

from engine.backends import runnable_backends  # noqa: E402
from engine.apps.bench import thread_limits  # noqa: E402

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
