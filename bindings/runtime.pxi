# How the extension was built and how it runs: threads and the SIMD variant.


def op_code(str name):
    """csrc/ops.h's code of an activation (its upper-case C name, e.g. "LEAKY_RELU"), or
    -1: what tests compare engine/ops.py's table with."""
    return eng_op_code(name.encode())


def op_keeps_slope(int code):
    """Whether the activation of this code is one of csrc/ops.h's ENG_SLOPE_OPS (its
    derivative read from the slope a training step keeps)."""
    return bool(eng_op_keeps_slope(code))


def build_info():
    """How this extension was built and how it will run."""
    return {
        "openmp": bool(eng_have_openmp()),
        "openmp_threads": eng_get_num_threads(),
        "epoch_threads": eng_get_epoch_threads(),
        "tiles_max_width": TILES_MAX_WIDTH,
        "parallel_threshold_elements": eng_parallel_threshold(),
        "simd": eng_simd_variant().decode(),
        "simd_variants": simd_variants(),
        "compile_args": ENGINE_COMPILE_ARGS,
        "debug_build": bool(ENGINE_DEBUG_BUILD),
        "blas": "scipy.linalg.cython_blas (SciPy's BLAS; see `info` thread pools)",
    }


def set_epoch_threads(n):
    """Threads of the tiled fused epoch; 0 (the default) follows OpenMP's setting when each
    epoch starts, i.e. the cores, OMP_NUM_THREADS, or a threadpoolctl limit, but never more
    than the CPUs this process may use (usable_cpus). A number given here is taken as
    asked, up to ENG_MAX_EPOCH_THREADS (1024). Plans made before keep the scratch room
    they were made with."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer; got {type(n).__name__}")
    if n < 0 or n > ENG_MAX_EPOCH_THREADS:
        raise ValueError(f"n must be >= 1, or 0 to follow OpenMP's setting, and at most "
                         f"{ENG_MAX_EPOCH_THREADS}; got {n}")
    eng_set_epoch_threads(n)


def usable_cpus():
    """The CPUs this process may run on (its affinity mask), which caps the default team."""
    return eng_usable_cpus()


def epoch_threads_setting():
    """What set_epoch_threads set (0: following OpenMP's setting)."""
    return eng_epoch_threads_setting()


def get_epoch_threads():
    return eng_get_epoch_threads()


def set_num_threads(int n):
    """Threads the kernels' OpenMP loops may use (no effect without OpenMP)."""
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    eng_set_num_threads(n)


def get_num_threads():
    return eng_get_num_threads()


def simd_variants():
    """{variant name: whether this CPU can run it}, for every compiled SIMD variant."""
    cdef int i = 0
    found = {}
    while eng_simd_variant_name(i) != NULL:
        found[eng_simd_variant_name(i).decode()] = bool(eng_simd_supported(i))
        i += 1
    return found


def force_simd(name):
    """Run the named SIMD variant's workers from now on (None: the CPU's best again); the
    tests use it to check every variant this CPU can run."""
    cdef bytes raw = b"" if name is None else str(name).encode()
    rc = eng_force_simd(raw)
    if rc == -1:
        raise ValueError(f"unknown SIMD variant {name!r}; compiled: {sorted(simd_variants())}")
    if rc == -2:
        raise ValueError(f"this CPU cannot run the SIMD variant {name!r}")


def force_baseline_simd(bint on):
    """Run the baseline workers even on a CPU with AVX2 or AVX-512 (False: the best again)."""
    force_simd("baseline" if on else None)


def fma_peak_gflops(dtype, int threads=1, double seconds=0.2):
    """The machine's FMA rate in GFLOP/s for float32 or float64 on `threads` threads, with
    the SIMD variant in use: the best of three runs of a register-only loop, about
    `seconds` in all."""
    dt = np.dtype(dtype)
    if dt not in _FLOATS:
        raise TypeError(f"dtype must be float32 or float64; got {dt}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1; got {threads}")
    fn = eng_fma_gflops_f if dt.itemsize == 4 else eng_fma_gflops_d
    cdef int64_t iters = 100000
    cdef double rate, best = 0.0
    cdef int attempt
    with nogil:
        rate = fn(threads, iters)                # a first guess of the rate, to size the run
        iters = max(<int64_t>(rate * 1e9 * seconds / 3 / threads / (24.0 * 16.0)), 100000)
        for attempt in range(3):                 # the best of three: a peak is a best case
            rate = fn(threads, iters)
            best = max(best, rate)
    return best


def install_interrupt_handler():
    """Ctrl-C (SIGINT) asks a running fused epoch to stop at its next minibatch boundary
    instead of raising at once; training checks stop_requested() and raises then. Main
    thread only; remove_interrupt_handler() puts the previous handler back."""
    if eng_install_interrupt_handler() != 0:
        raise OSError("could not install the SIGINT handler")


def remove_interrupt_handler():
    eng_remove_interrupt_handler()


def request_stop():
    eng_request_stop()


def clear_stop():
    eng_clear_stop()


def stop_requested():
    return bool(eng_stop_requested())
