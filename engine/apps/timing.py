"""Timing helpers of the benchmark commands: medians of repeated calls, and runners timed
in turn so that a shared machine's slow stretches hit them alike."""
from __future__ import annotations

import statistics
import time


def median_time(fn, repeats, warmup=1):
    """(median seconds of `repeats` calls of fn after `warmup` untimed ones, the times)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def interleaved_times(runners, repeats, settle=0.3, once_over=None):
    """{label: [seconds per call]} for (label, make) pairs, make() returning the callable
    to time. Each callable runs once untimed, then `repeats` rounds time every one of them
    once in turn: a slow stretch of a shared machine then hits all of them alike, and the
    ratios within a table stay fair. Before each timed call, `settle` seconds let the
    previous runner's BLAS or OpenMP threads stop spinning (they would share the cores).
    A callable whose first call took longer than `once_over` seconds is not called again:
    that call is its one time (PyTorch's bf16 autocast on a CPU without bf16 instructions
    took 171 s per wide epoch, which `repeats` more calls would have held the table up for)."""
    calls = [(label, make()) for label, make in runners]
    times = {label: [] for label, _ in calls}
    slow = set()
    for label, fn in calls:
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        if once_over is not None and first > once_over:
            slow.add(label)
            times[label].append(first)
    for _ in range(repeats):
        for label, fn in calls:
            if label in slow:
                continue
            time.sleep(settle)
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    return times
