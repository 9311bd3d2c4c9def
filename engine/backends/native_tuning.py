"""Which product path the native backend's gemm="auto" takes on this machine: its own GEMM
tiles, or BLAS. The crossover depends on the CPU (vector width, cache sizes), the BLAS
build and the thread count, so it is measured here, once, and kept in the user's cache
folder (`engine tune` measures again; ENGINE_NATIVE_GEMM or NativeBackend(gemm=...) forces a
path).

The measurement: the time per minibatch (100 rows, drawn in shuffled order from 1,600 rows,
more than L2 holds) on both paths, at growing widths w, for two shapes of layer:
784-w-10 networks (a hidden layer fed by the inputs) and 784-w-w-10 (one hidden layer fed
by another). BLAS's packed kernels pull ahead sooner on the square w x w products, so each
shape gets its own limit: the widest w at which the tiles were at most 5% slower. About a second
per dtype, once per (CPU, build, threads).

And the least work per minibatch that pays for a thread team: small networks (scikit-learn's
iris or digits fits) do microseconds of work between the team's barriers, so a teammate
descheduled by another process stalls them for a whole scheduler slice (a 150-row epoch went
from 150 us to 1-5 ms beside one busy process). Such minibatches run on one thread. The cut:
the work of the smallest 784-w-10 network (batch 100) whose minibatch the team trains
TEAM_GAIN times faster than one thread. A measurement taken while other processes keep the
CPUs busy is used for this process only, never cached (engine/machine_load.py)."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ..io import atomic_write_bytes, is_regular_file
from ..machine_load import busy_warning
from ..optimizers import StepRule

WIDTHS = (128, 256, 512, 1024, 2048)
# The tiles keep a width while they are at most this much slower per minibatch: near parity
# the noise of a shared machine decides, and the tiles' side of a tie is the one that wakes
# no BLAS threads (when something else in the process calls BLAS between epochs, their
# spinning has cost the next tiled epoch up to 50%).
MARGIN = 1.05
BATCH, INPUTS, CLASSES = 100, 784, 10
POOL_ROWS = 1600           # rows the minibatches are drawn from: 5 MB in float32
BLAS_SPIN_SECONDS = 0.15   # how long OpenBLAS threads may spin after a call
CACHE_NAME = "native-tuning.json"
# 1: one limit, from 784-w-10 only; 2: no team cut; 3: a team cut that a single unlucky
# timing could push past the networks people train (kept for good: measure them again)
CACHE_VERSION = 4
# the team must train a minibatch this much faster than one thread to be used: on a quiet
# machine it gains little below that, beside other work it loses many times more
TEAM_GAIN = 1.15
TEAM_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)


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


def _minibatches(width):
    """Minibatches per timed run: enough to dwarf what a run pays once, few when wide."""
    return 8 if width <= 512 else 4 if width <= 1024 else 2


def work_per_minibatch(sizes, batch):
    """Multiply-adds of one minibatch's forward products: the measure of a minibatch's
    work that the team cut is stated in."""
    return batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _epoch(width, hidden, dtype, gemm, threads):
    """A callable running a few minibatches of 784-(width x hidden)-10 on one path."""
    from .. import _native
    rng = np.random.default_rng(0)
    z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    sizes = [INPUTS] + [width] * hidden + [CLASSES]
    layers = list(zip(sizes[:-1], sizes[1:]))
    plan = _native.EpochPlan(
        [rng.normal(0, 0.01, (o, i)).astype(dtype) for i, o in layers],
        [z(o) for _, o in layers], [z(BATCH, o) for _, o in layers],
        [z(BATCH, o) for _, o in layers], [z(o) for _, o in layers], z(BATCH, INPUTS),
        ("sigmoid",) * hidden + ("softmax",), "cross_entropy", gemm=gemm,
        threads=threads)
    X = rng.random((POOL_ROWS, INPUTS)).astype(dtype)
    y = rng.integers(0, CLASSES, POOL_ROWS)
    order = rng.permutation(POOL_ROWS)[:BATCH * _minibatches(width)]
    losses = np.empty(_minibatches(width))
    return lambda: plan.run(X, y, order, StepRule("sgd", 0.001), losses)


def _seconds_per_minibatch(width, hidden, dtype, gemm, threads):
    """The best of two timed runs (one when wide), after one to warm caches and threads
    up, per minibatch."""
    run = _epoch(width, hidden, dtype, gemm, threads)
    run()
    best = float("inf")
    for _ in range(2 if width <= 512 else 1):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best / _minibatches(width)


def _blas_threads(threads):
    import contextlib
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        return contextlib.nullcontext()


def _limit(hidden, widths, dtype, threads):
    """(the widest of `widths` where the tiles were at most MARGIN slower,
    {width: [tiles, blas]}).

    Every BLAS timing comes first, then a pause, then the tile timings: BLAS's idle
    threads spin for a while after each call, and measured right after one, the tiles
    (which share the cores) would look slower than they are in a real epoch."""
    with _blas_threads(threads):
        blas = {w: _seconds_per_minibatch(w, hidden, dtype, "blas", threads) for w in widths}
    time.sleep(BLAS_SPIN_SECONDS)
    seconds, limit = {}, 0
    for width in widths:
        tiles = _seconds_per_minibatch(width, hidden, dtype, "tiles", threads)
        if tiles > blas[width] * MARGIN:     # a crossover, or a hiccup of a shared machine?
            tiles = min(tiles, _seconds_per_minibatch(width, hidden, dtype, "tiles", threads))
        seconds[width] = [tiles, blas[width]]
        if tiles > blas[width] * MARGIN:     # past the crossover; wider only gets worse
            break
        limit = width
    return limit, seconds


def _team_cut(dtype, threads):
    """(the least work per minibatch at which `threads` threads trained TEAM_GAIN times
    faster than one, {width: [one thread, team]}); 0 for a team of one."""
    if threads < 2:
        return 0, {}
    seconds = {}
    for width in TEAM_WIDTHS:
        def one_and_team():
            return [_seconds_per_minibatch(width, 1, dtype, "tiles", t) for t in (1, threads)]
        one, team = one_and_team()
        if one < TEAM_GAIN * team:
            # no gain, or a hiccup of a shared machine? A cut cached too high trains the
            # lecture's network on one thread for good (1.8x slower on a 2-core Zen 3 host,
            # where one unlucky measurement had put it at 784-128-10), so measure again and
            # keep the better of each
            one, team = map(min, (one, team), one_and_team())
        seconds[width] = [one, team]
        if one >= TEAM_GAIN * team:
            break
    else:
        width = 2 * TEAM_WIDTHS[-1]              # never: only wider networks get a team
    return work_per_minibatch([INPUTS, width, CLASSES], BATCH), seconds


def measure(dtype, threads):
    """{"max_width": w, "max_inner_width": v, "seconds": {width: [tiles, blas]},
    "seconds_inner": {...}, "min_team_work": m, "seconds_team": {width: [one, team]}}
    for one dtype: the limits for hidden layers fed by the inputs (784-w-10) and for
    layers between hidden layers (784-w-w-10, measured up to max_width only: a wider
    inner layer is a wider hidden layer too), and the team cut (_team_cut)."""
    limit, seconds = _limit(1, WIDTHS, dtype, threads)
    inner = [w for w in WIDTHS if w <= limit]
    inner_limit, inner_seconds = _limit(2, inner, dtype, threads) if inner else (0, {})
    team_work, team_seconds = _team_cut(dtype, threads)
    return {"max_width": limit, "seconds": seconds,
            "max_inner_width": inner_limit, "seconds_inner": inner_seconds,
            "min_team_work": team_work, "seconds_team": team_seconds}


def _read_cache(path):
    """The cache's content, or an empty one for anything that is not a readable cache of
    this version: missing, corrupt, of another shape, nested too deep to parse, or not a
    regular file (a FIFO would block the read; /dev/null reads as empty). Entries that are
    not dicts are dropped, so that every lookup below may assume the shape."""
    empty = {"version": CACHE_VERSION, "machines": {}}
    if not is_regular_file(path):
        return empty
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return empty                          # missing or corrupt: measure again
    if not (isinstance(data, dict) and data.get("version") == CACHE_VERSION
            and isinstance(data.get("machines"), dict)):
        return empty
    data["machines"] = {k: v for k, v in data["machines"].items() if isinstance(v, dict)}
    return data


def _complete(measured):
    """Whether a cached measurement has both limits and the team cut as integers (a
    hand-edited, truncated or older entry is measured again)."""
    return (isinstance(measured, dict) and
            all(isinstance(measured.get(k), int) and not isinstance(measured.get(k), bool)
                for k in ("max_width", "max_inner_width", "min_team_work")))


def measured_entry(dtype, threads, *, retune=False, path=None):
    """This dtype's measurement here (see measure): from the cache, or measured now and
    cached (kept in memory only when the cache cannot be written)."""
    path = path or cache_path()
    dtype = np.dtype(dtype).name
    key = machine_key(threads)
    data = _read_cache(path)
    entry = data["machines"].get(key, {})
    if not retune and not _complete(entry.get(dtype)) and (path, key, dtype) in _busy_results:
        return _busy_results[(path, key, dtype)]
    if retune or not _complete(entry.get(dtype)):
        busy = busy_warning()
        entry[dtype] = measure(dtype, threads)
        busy = busy or busy_warning()
        if busy:
            import warnings
            warnings.warn(f"engine: measuring the native tiles on {threads} threads: {busy}; "
                          f"the result is used by this process only and not cached "
                          f"(`engine tune` on a quiet machine caches one)", RuntimeWarning,
                          stacklevel=2)
            _busy_results[(path, key, dtype)] = entry[dtype]
            return entry[dtype]
        data["machines"][key] = entry
        try:
            atomic_write_bytes(path, json.dumps(data, indent=1).encode())
        except OSError:
            pass                              # a read-only home: measure again next time
    return entry[dtype]


# measurements taken on a busy machine: this process keeps them, no file does
_busy_results: dict = {}


def tiles_limits(dtype, threads, *, retune=False, path=None):
    """(max_width, max_inner_width): the widest layers gemm="auto" trains on the tiles for
    this dtype here."""
    entry = measured_entry(dtype, threads, retune=retune, path=path)
    return int(entry["max_width"]), int(entry["max_inner_width"])


def min_team_work(dtype, threads, path=None):
    """The least work per minibatch (work_per_minibatch) that a thread team trains."""
    return int(measured_entry(dtype, threads, path=path)["min_team_work"])


def cached_choices(threads, path=None):
    """What the cache holds for this machine and thread count: {dtype: entry}, complete
    entries only."""
    entries = _read_cache(path or cache_path())["machines"].get(machine_key(threads), {})
    return {dtype: e for dtype, e in entries.items() if _complete(e)}
