"""Which product path the native backend's gemm="auto" takes on this machine: its own GEMM
tiles, or BLAS. The crossover depends on the CPU (vector width, cache sizes), the BLAS
build and the thread count, so it is measured here, once, and kept in the user's cache
folder (`engine tune` measures again; ENGINE_NATIVE_GEMM or NativeBackend(gemm=...) forces a
path).

The measurement: the time per minibatch (100 rows) of 784-w-10 networks at growing hidden
widths w, on both paths, from two short epochs; the widest w at which the tiles were no
slower is the limit. Under a second per dtype, once per (CPU, build, threads)."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ..io import atomic_write_bytes

WIDTHS = (128, 256, 512, 1024, 2048)
# The tiles keep a width while they are at most this much slower per minibatch: in a real
# epoch they also spare the evaluation between epochs from waking BLAS threads (measured:
# up to 50% on the next epoch), which the short timings here cannot see.
MARGIN = 1.10
SHORT_ROWS, LONG_ROWS, BATCH, INPUTS, CLASSES = 200, 600, 100, 784, 10
BLAS_SPIN_SECONDS = 0.15   # how long OpenBLAS threads may spin after a call
CACHE_NAME = "native-tuning.json"
CACHE_VERSION = 1


def cache_path():
    from ..data import default_cache_dir
    return os.path.join(default_cache_dir(), CACHE_NAME)


def machine_key(threads):
    """What a measurement holds for: this CPU, this build of the extension, the threads."""
    from .. import _native
    from .._version import __version__
    info = _native.build_info()
    return "|".join([_cpu_model(), f"engine {__version__}", info["simd"],
                     info["compile_args"], f"{threads} threads"])


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _short_epoch(width, dtype, gemm, threads, rows):
    """A callable running a short epoch (rows of 784 inputs) of 784-width-10 on one path."""
    from .. import _native
    rng = np.random.default_rng(0)
    z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    sizes = [INPUTS, width, CLASSES]
    layers = list(zip(sizes[:-1], sizes[1:]))
    plan = _native.EpochPlan(
        [rng.normal(0, 0.01, (o, i)).astype(dtype) for i, o in layers],
        [z(o) for _, o in layers], [z(BATCH, o) for _, o in layers],
        [z(BATCH, o) for _, o in layers], [z(o) for _, o in layers], z(BATCH, INPUTS),
        z(BATCH, CLASSES), ("sigmoid", "softmax"), "cross_entropy", gemm=gemm,
        threads=threads)
    X = rng.random((rows, INPUTS)).astype(dtype)
    y = rng.integers(0, CLASSES, rows)
    order, losses = np.arange(rows), np.empty(-(-rows // BATCH))
    return lambda: plan.run(X, y, order, 0.001, 0.0, losses)


def _best_seconds(run, repeats):
    best = float("inf")
    for _ in range(repeats + 1):            # the first run warms caches and threads up
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def _seconds_per_minibatch(width, dtype, gemm, threads):
    """The time of one more minibatch: the difference of a long and a short epoch, so that
    what an epoch pays once (copying the weights into panels, waking threads) drops out, as
    it does over the hundreds of minibatches of a real epoch."""
    repeats = 2 if width <= 512 else 1
    short = _best_seconds(_short_epoch(width, dtype, gemm, threads, SHORT_ROWS), repeats)
    long = _best_seconds(_short_epoch(width, dtype, gemm, threads, LONG_ROWS), repeats)
    return max(long - short, 1e-9) / ((LONG_ROWS - SHORT_ROWS) // BATCH)


def measure(dtype, threads):
    """{"max_width": w, "seconds": {width: [tiles, blas]}} for one dtype.

    Every BLAS timing comes first, then a pause, then every tile timing: BLAS's idle
    threads spin for a while after each call, and measured right after one, the tiles
    (which share the cores) would look slower than they are in a real epoch."""
    import contextlib
    try:
        from threadpoolctl import threadpool_limits
        blas_threads = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        blas_threads = contextlib.nullcontext()
    with blas_threads:
        blas = {w: _seconds_per_minibatch(w, dtype, "blas", threads) for w in WIDTHS}
    time.sleep(BLAS_SPIN_SECONDS)
    seconds, limit = {}, 0
    for width in WIDTHS:
        tiles = _seconds_per_minibatch(width, dtype, "tiles", threads)
        if tiles > blas[width] * MARGIN:     # a crossover, or a hiccup of a shared machine?
            tiles = min(tiles, _seconds_per_minibatch(width, dtype, "tiles", threads))
        seconds[width] = [tiles, blas[width]]
        if tiles > blas[width] * MARGIN:     # past the crossover; wider only gets worse
            break
        limit = width
    return {"max_width": limit, "seconds": seconds}


def _read_cache(path):
    try:
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict) and data.get("version") == CACHE_VERSION:
            return data
    except (OSError, ValueError):
        pass                                  # missing or corrupt: measure again
    return {"version": CACHE_VERSION, "machines": {}}


def tiles_max_width(dtype, threads, *, retune=False, path=None):
    """The widest layer gemm="auto" trains on the tiles for this dtype here: from the cache,
    or measured now (and cached)."""
    path = path or cache_path()
    dtype = np.dtype(dtype).name
    key = machine_key(threads)
    data = _read_cache(path)
    entry = data["machines"].get(key, {})
    if retune or dtype not in entry:
        entry[dtype] = measure(dtype, threads)
        data["machines"][key] = entry
        try:
            atomic_write_bytes(path, json.dumps(data, indent=1).encode())
        except OSError:
            pass                              # a read-only home: measure again next time
    return int(entry[dtype]["max_width"])


def cached_choices(threads, path=None):
    """What the cache holds for this machine and thread count: {dtype: entry}."""
    return _read_cache(path or cache_path())["machines"].get(machine_key(threads), {})
