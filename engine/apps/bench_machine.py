"""What a benchmark table is measured on, and under which thread limits: the machine's
name, BLAS, the native build's SIMD variant and measured FMA and bf16 peaks, and the
header line that names them beside every figure."""
from __future__ import annotations

import contextlib
import os
import platform
import time

import numpy as np


@contextlib.contextmanager
def thread_limits(n):
    """Every BLAS in the process (NumPy's and SciPy's, through threadpoolctl when installed)
    and the native backend's tiled epoch run on n threads inside the block."""
    from ..backends import runnable_backends
    native = None
    if "native" in runnable_backends():
        from ..backends import native_backend as native
        saved = native.epoch_threads_setting()
        native.set_epoch_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        blas = threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        blas = contextlib.nullcontext()
    try:
        with blas:
            yield
    finally:
        if native is not None:
            native.set_epoch_threads(saved)


def machine_info(threads=2):
    """The machine a table is measured on; its FMA peak on `threads` threads is measured
    here, so call it before any timing (see native_machine_info)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = []
    try:
        from threadpoolctl import threadpool_info
        blas = sorted({f"{p['internal_api']} {p['version']}" for p in threadpool_info()
                       if p["user_api"] == "blas"})
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "blas": ", ".join(blas),
            "python": platform.python_version(), "numpy": np.__version__,
            "date": time.strftime("%Y-%m-%d"), **native_machine_info(threads)}


def native_machine_info(threads=2):
    """The native kernels' SIMD variant and the machine's measured FMA peak on `threads`
    threads (GFLOP/s per dtype), or {} without the extension."""
    from ..backends import runnable_backends
    if "native" not in runnable_backends():
        return {}
    from ..backends import native_backend
    # BLAS threads spin for a while after each call and would share the cores with the
    # loop (a peak measured after the timed rows once read a third of the real one)
    time.sleep(0.3)
    return native_backend.peaks(threads)


def bf16_fractions(info, rows):
    """The bf16 rows' (ours and PyTorch's autocast, both on the bf16 units) fraction of the
    bf16 peak of every thread the FMA peak counts (the path in use), not of the float32
    FMA peak."""
    peak = info.get("bf16_peak_gflops")
    threads = info.get("peak_threads") or 1
    for r in rows:
        if "bf16" in r["runner"]:
            r["fraction_of_peak"] = r["gflops"] / (peak * threads) if peak else None


def refine_peak(info, rows, threads):
    """Measure the FMA peak again after the rows and keep the higher of the two (a peak is a
    best case: on a shared host one measurement can land in a slow moment), re-expressing
    every row's fraction of it."""
    again = native_machine_info(threads).get("fma_peak_gflops", {})
    peak = info["fma_peak_gflops"]
    for dtype, rate in again.items():
        peak[dtype] = max(peak.get(dtype, 0.0), rate)
    for r in rows:
        if r.get("fraction_of_peak") is not None and peak.get(r["dtype"]):
            r["fraction_of_peak"] = r["gflops"] / peak[r["dtype"]]


def machine_header(info, threads, samples):
    """One line naming the machine a table was measured on."""
    head = (f"{info['date']} | {info['cpu']}, {info['cores']} cores | BLAS: {info['blas']} | "
            f"{threads} threads | {samples} samples/epoch")
    if "simd" in info:
        peak = info["fma_peak_gflops"]
        head += (f" | native SIMD: {info['simd']} | FMA peak ({info['peak_threads']} threads): "
                 f"{peak['float32']:.0f} GFLOP/s float32, {peak['float64']:.0f} float64")
        if info.get("bf16_peak_gflops"):
            head += (f" | bf16 products: {info['bf16_path']}, peak {info['bf16_peak_gflops']:.0f}"
                     f" GFLOP/s on 1 thread (the bf16 rows' \"of peak\": of "
                     f"{info['peak_threads']} threads' worth)")
        elif info.get("bf16_path") == "portable":    # NativeBackend.bf16_epoch_path
            head += (" | bf16 products: portable (bf16-mixed epochs: the"
                     " float32 tiles, or BLAS where float32 takes BLAS, on rounded operands)")
    if info.get("busy"):
        head += f"\nWARNING: {info['busy']}"
    return head
