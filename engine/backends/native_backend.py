"""The native CPU backend, through the Cython extension engine._native: C kernels (csrc/),
its own GEMM tiles and threaded fused epoch, and SciPy's BLAS for wide layers."""
from __future__ import annotations

import os

import numpy as np

from .. import interrupt
from ..optimizers import STATE_ARRAYS

from .host import HostBackend

try:
    from .. import _native
    _IMPORT_ERROR = None
except ImportError as exc:  # not built: `auto` falls back to numpy and says why
    _native = None
    _IMPORT_ERROR = exc


# rows from which forward() uses the tiles (see NativeBackend.forward)
TILED_FORWARD_MIN_ROWS = 1000
# where bf16-mixed epochs may run (NativeBackend.bf16_epoch_path)
BF16_EPOCHS = ("auto", "kernels", "tiles")


class NativeBackend(HostBackend):
    name = "native"

    @classmethod
    def availability(cls):
        if _native is None:
            return False, (f"engine._native is not built ({_IMPORT_ERROR}); "
                           f"install with `pip install .` to compile it")
        info = _native.build_info()
        omp = (f"OpenMP: {info['epoch_threads']} threads for the tiled epoch"
               if info["openmp"] else "no OpenMP")
        return True, (f"C kernels ({info['simd']} SIMD; own GEMM tiles for narrow layers, "
                      f"SciPy BLAS for wide ones, the cut measured on this machine), {omp}, "
                      f"flags {info['compile_args']}")

    def __init__(self, gemm=None, threads=None, bf16="auto"):
        """gemm: how train_epoch forms its products: "auto" (own tiles for narrow layers,
        BLAS for wide ones), "tiles" or "blas" (see engine._native.EpochPlan); default: the
        ENGINE_NATIVE_GEMM environment variable, else "auto".
        threads: the most threads this backend's fused epochs use, on the tiles and on the
        bf16 kernels (default: the process's setting, engine._native.set_epoch_threads).
        bf16: where bf16-mixed epochs run (bf16_epoch_path): "auto", "kernels" or "tiles"."""
        ok, reason = self.availability()
        if not ok:
            raise RuntimeError(reason)
        gemm = os.environ.get("ENGINE_NATIVE_GEMM", "auto") if gemm is None else gemm
        if gemm not in _native.GEMM_CHOICES:
            raise ValueError(f"gemm must be one of {_native.GEMM_CHOICES}; got {gemm!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer or None; got {threads!r}")
        if bf16 not in BF16_EPOCHS:
            raise ValueError(f"bf16 must be one of {BF16_EPOCHS}; got {bf16!r}")
        self._gemm, self._threads, self._bf16 = gemm, threads, bf16
        self._limits = {}      # dtype -> the widest layers "auto" trains on the tiles

    @property
    def epoch_gemm(self):
        """The product path of this backend's epochs ("auto", "tiles" or "blas")."""
        return self._gemm

    @property
    def threads(self):
        return self._threads

    def __repr__(self):
        return (f"NativeBackend(gemm={self._gemm!r}, threads={self._threads!r}, "
                f"bf16={self._bf16!r})")

    def product_path(self, sizes, dtype):
        """"tiles" or "blas": how this backend trains and evaluates a network of these
        widths. Under gemm="auto", the tiles up to the widest layers measured on this
        machine to run no slower than BLAS (engine/backends/native_tuning.py, cached per
        CPU)."""
        if self._gemm != "auto":
            return self._gemm
        return "tiles" if _native.tiles_chosen(sizes, "auto", *self._tuning(dtype)[:2]) \
            else "blas"

    def _tuning(self, dtype):
        """(max_width, max_inner_width, min_team_work) measured for gemm="auto"."""
        tuning = self._limits.get(dtype)
        if tuning is None:
            from . import native_tuning
            threads = self._threads or _native.get_epoch_threads()
            entry = native_tuning.measured_entry(np.dtype(dtype).name, threads)
            tuning = (int(entry["max_width"]), int(entry["max_inner_width"]),
                      int(entry["min_team_work"]))
            self._limits[dtype] = tuning
        return tuning

    def team_threads(self, sizes, batch, dtype):
        """Threads for a tiled epoch of this network and batch: one where a minibatch is
        less work than the team needs to pay for its barriers (measured under
        gemm="auto"; native_tuning), else this backend's cap (0: the process setting)."""
        if self._gemm == "auto":
            from .native_tuning import work_per_minibatch
            if work_per_minibatch(sizes, batch) < self._tuning(dtype)[2]:
                return 1
        return self._threads or 0

    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        _native.gemm(a, b, out, trans_a, trans_b, alpha, beta)

    def bf16_rows(self, X):
        # what forward() reads fastest: bf16 rows for a bf16 kernel; where the CPU has no
        # bf16 instructions X itself (the tiles round each block of rows as they read it,
        # and a rounded copy of the validation set would cost its size in memory for no
        # gain)
        return None if _bf16_portable() else _native.bf16_pack_rows(X)

    def gemm_bf16(self, a, b, out, trans_a=False, trans_b=False):
        _native.gemm_bf16(a, b, out, trans_a, trans_b)

    def forward(self, net, x, acts, dropout=None, bf16=False, slopes=None):
        """Evaluation-sized passes run in C on the epoch's tiles where they train this
        network, so that evaluating between epochs wakes no BLAS threads (their spinning
        made the next tiled epoch 50% slower); BLAS per layer otherwise. Minibatch-sized
        passes, as in the textbook loop, stay on BLAS: alternating an OpenMP team with
        BLAS's threads call by call made that loop 7x slower."""
        if slopes is not None:         # a training step's pass (Workspace.s): per layer
            super().forward(net, x, acts, dropout, bf16, slopes)
        elif (dropout is None and bf16 and x.dtype == np.float32
              and x.shape[0] >= TILED_FORWARD_MIN_ROWS and _bf16_portable()):
            # no bf16 instructions: the float32 tiles on rounded operands, as the epochs
            # (the portable kernel, which widens every operand it reads, scored a lecture
            # epoch's 60,000 rows in twice float32's time on a Zen 3)
            _native.tiled_forward(net.weights, net.biases, net.activations, x, acts, bf16=True)
        elif dropout is None and bf16:
            # bf16 products on the path's kernel, each layer's weights packed once per call
            _native.bf16_forward(net.weights, net.biases, net.activations, x, acts)
        elif (dropout is None and not bf16 and x.shape[0] >= TILED_FORWARD_MIN_ROWS
                and self.product_path(net.sizes, net.dtype) == "tiles"):
            _native.tiled_forward(net.weights, net.biases, net.activations, x, acts)
        else:
            super().forward(net, x, acts, dropout, bf16)

    def bias_act_(self, z, bias, activation, slope=None):
        _native.bias_act_(z, bias, activation, slope)

    def act_backward_(self, delta, a, activation):
        _native.act_backward_(delta, a, activation)

    def output_delta(self, a, t, out, output, loss, weights=None):
        _native.output_delta(a, t, out, output, loss, weights)

    def loss(self, a, t, output, loss, weights=None):
        return _native.loss(a, t, output, loss, weights)

    def take_(self, values, index, out):
        np.take(values, index, out=out)

    def dropout_(self, a, rate, key, layer, row0=0):
        _native.dropout_(a, rate, key, layer, row0)

    def dropout_backward_(self, delta, a, activation, rate, key, layer, row0=0):
        _native.dropout_backward_(delta, a, activation, rate, key, layer, row0)

    def bias_grad(self, delta, out):
        _native.bias_grad(delta, out)

    def optimizer_step_(self, param, grad, state, rule, l2=0.0):
        _native.optimizer_step_(param, grad, state, rule, l2)

    def gather_(self, X, y, index, x_out, t_out):
        _native.gather_(X, y, index, x_out, t_out)

    def alive_units(self, a):
        return _native.alive_units(a)

    def saturated_count(self, a, activation, threshold=0.95):
        return _native.saturated_count(a, activation, threshold)

    def sq_norm(self, x):
        return _native.sq_norm(x)

    def train_epoch(self, net, X, y, order, batch_size, rule, alpha, ws, batch_losses,
                    grad_norms=None, sample_weight=None, dropout=None, reduce=None):
        """The whole epoch in C (see engine._native.EpochPlan); no Python per minibatch
        but the reduce callback, which the C epoch calls between each gradient and its
        step (on the tiles too: their stored-gradient mode). bf16-mixed epochs run where
        bf16_epoch_path says."""
        if not net.bf16:
            path = self.product_path(net.sizes, net.dtype)
        else:
            path = self.bf16_epoch_path(net.sizes, reduce is None and sample_weight is None
                                        and dropout is None, grad_norms is not None)
            if path == "kernels":
                return self._bf16_epoch(net, X, y, order, batch_size, rule, alpha, ws,
                                        batch_losses)
            if path == "tiles":                 # the tiles read X rounded, once per fit
                X = ws.copy_of(X, _native.bf16_round)
        n_state = STATE_ARRAYS[rule.kind]
        velocities = net.velocities if n_state >= 1 else None
        moments = net.second_moments if n_state == 2 else None
        threads = self.team_threads(net.sizes, batch_size, net.dtype) if path == "tiles" \
            else self._threads or 0
        # the model replaces these lists whole when it replaces what they hold
        plan = ws.prepared(
            (path, threads, net.bf16, net.weights, net.biases, velocities, moments),
            lambda: _native.EpochPlan(net.weights, net.biases, ws.a, ws.d, ws.gb, ws.x,
                                      net.activations, net.loss, velocities, ws.gw,
                                      gemm=path, threads=threads, second_moments=moments,
                                      bf16=net.bf16, slopes=ws.s))
        return plan.run(X, y, order, rule, batch_losses, grad_norms, alpha=alpha,
                        sample_weight=sample_weight,
                        dropout=None if dropout is None else np.asarray(dropout[0], np.float64),
                        dropout_key=0 if dropout is None else dropout[1], reduce=reduce)

    def whole_set_loss_and_grads(self, net, X, y, sample_weight=None, chunk=8192):
        """One pass in C for dense X: the BLAS-path epoch over chunks of rows with a step
        of size 0, whose reduce hook adds up each chunk's gradients (sparse X: the generic
        chunks)."""
        if hasattr(X, "toarray") or net.bf16:
            return super().whole_set_loss_and_grads(net, X, y, sample_weight, chunk)
        from ..optimizers import StepRule
        n = X.shape[0]
        chunk = max(1, min(chunk, n))
        key = ("whole_set", chunk)
        if key not in net.prepared:
            ws = self.workspace(net, chunk)
            gw = [np.zeros_like(w) for w in net.weights]
            gb = [np.zeros_like(b) for b in net.biases]
            plan = _native.EpochPlan(net.weights, net.biases, ws.a, ws.d, gb, ws.x,
                                     net.activations, net.loss, None, gw, gemm="blas",
                                     slopes=ws.s)
            net.prepared[key] = (plan, gw, gb)
        plan, gw, gb = net.prepared[key]
        sums = [np.zeros_like(g) for g in gw + gb]
        total = [0.0, 0.0]                     # weighted loss, weight

        def add(i, loss, weight, grads):
            if weight > 0:
                for acc, g in zip(sums, gw + gb):
                    acc += weight * g
                total[0] += loss * weight
                total[1] += weight
            for g in gw + gb:                  # the step of size 0 must not meet a nan
                g[...] = 0
            return loss, (weight if weight > 0 else 1.0)
        X = np.ascontiguousarray(X, dtype=net.dtype)
        w = None if sample_weight is None else np.ascontiguousarray(sample_weight, net.dtype)
        plan.run(X, np.ascontiguousarray(y), np.arange(n, dtype=np.int64), StepRule("sgd", 0.0),
                 np.empty(-(-n // chunk)), sample_weight=w, reduce=add)
        if total[1] <= 0:
            return None
        k = len(gw)
        return (total[0] / total[1], [a / total[1] for a in sums[:k]],
                [a / total[1] for a in sums[k:]])

    def bf16_epoch_path(self, sizes, plain=True, diagnostics=False):
        """Where a bf16-mixed epoch of a network of these widths runs: "kernels" (its own
        fused epoch, csrc/bf16_epoch.c, on the AMX, AVX512-BF16 or portable kernel; plain
        epochs only: no sample weights, dropout or reduce hook), "tiles" (the float32
        tiles on operands rounded to bf16) or "blas" (BLAS on rounded operands; the
        diagnostics always). Under bf16="auto": the kernels where the CPU has bf16
        instructions, otherwise the float32 tiles or BLAS as float32's epochs run there,
        which on a CPU without bf16 instructions run about as fast as float32 (the portable
        kernel widens every operand as it reads it: its epoch of 784-1024-1024-10 took
        1.33x float32's on a Zen 3, BLAS on rounded operands 1.05x)."""
        if diagnostics:
            return "blas"
        if self._bf16 == "kernels":
            return "kernels" if plain else "blas"
        if self._bf16 == "tiles":
            return "tiles"
        if plain and not _bf16_portable():
            return "kernels"
        return "tiles" if self.product_path(sizes, np.float32) == "tiles" else "blas"

    def _bf16_epoch(self, net, X, y, order, batch_size, rule, alpha, ws, batch_losses):
        """bf16-mixed: the fused C epoch on the AVX512 or AMX path, X packed to bf16 rows
        once per fit (Workspace.copy_of)."""
        packed = ws.copy_of(X, _native.bf16_pack_rows)
        n_state = STATE_ARRAYS[rule.kind]
        state = [arrays for arrays in (net.velocities, net.second_moments)[:n_state]]
        return _native.bf16_epoch(net.weights, net.biases, ws.gw, ws.gb, ws.a, ws.d, ws.t,
                                  net.activations, net.loss, packed, y, order, rule, alpha,
                                  batch_losses, state, slopes=ws.s,
                                  most_threads=self._threads or 0)


def _bf16_portable():
    """Whether bf16 products run on the portable path here (no AMX, and no AVX512-BF16
    or one slower than float32 FMAs)."""
    return _native.bf16_info()["path"] == "portable"


def bf16_paths():
    """{"path": the bf16 product path in use, "paths": {name: (runs here, why)},
    "dot_vs_fma": vdpbf16ps's rate over float32 FMAs' (0 without AVX512-BF16), "epochs":
    where a default backend's bf16-mixed epochs run (NativeBackend.bf16_epoch_path)}: AMX
    tiles, AVX512-BF16 or portable, the best this CPU runs (csrc/bf16.c)."""
    info = dict(_native.bf16_info(), dot_vs_fma=_native.bf16_dot_vs_fma())
    info["epochs"] = (
        f"the {info['path']} kernel's own fused epoch; with dropout, sample weights or a "
        f"reduction, the float32 tiles (BLAS for networks too wide for them) on operands "
        f"rounded to bf16"
        if info["path"] != "portable" else
        "the float32 tiles on operands rounded to bf16 (no bf16 instructions worth "
        "using: about float32's speed); networks too wide for the tiles: BLAS on rounded "
        "operands; the scores between epochs: the tiles on rounded operands")
    return info


# The extension's process-wide runtime, for the modules outside engine/backends (Ctrl-C
# handling, `engine info`/`tune`, the benchmarks): they ask here instead of importing
# engine._native themselves. Each needs the extension built (see available()).
def available():
    """Whether engine._native is built and importable."""
    return _native is not None


def build_info():
    """How the extension was built: SIMD variant, OpenMP, flags, epoch threads."""
    return _native.build_info()


def epoch_threads():
    """The threads a tiled epoch's team uses now (the process setting, or the default)."""
    return _native.get_epoch_threads()


def epoch_threads_setting():
    """What set_epoch_threads last set (0: the default)."""
    return _native.epoch_threads_setting()


def set_epoch_threads(n):
    """The process-wide team size of the tiled epochs (0: the default)."""
    _native.set_epoch_threads(n)


def peaks(threads):
    """The machine's measured FMA peak on `threads` threads (GFLOP/s per dtype), the SIMD
    variant, and the bf16 path with its one-thread peak."""
    path = _native.bf16_info()["path"]
    return {"simd": _native.build_info()["simd"], "peak_threads": threads,
            "fma_peak_gflops": {dt: _native.fma_peak_gflops(dt, threads)
                                for dt in ("float32", "float64")},
            "bf16_path": path, "bf16_peak_gflops": _native.bf16_peak_gflops(path)}


def gemm_floor(sizes, batch, dtype, X, y):
    """A callable making exactly the BLAS calls of one native epoch (batch rows per step,
    as many rows as X, y hold) and nothing else: the floor the benchmarks compare an epoch
    with (EpochPlan.gemm_floor)."""
    # all-zero arrays: the deltas keep the weights fixed, while alpha != 0 keeps BLAS from
    # skipping a call
    zeros = lambda *shape: np.zeros(shape, dtype=dtype)  # noqa: E731
    layers = list(zip(sizes[:-1], sizes[1:]))
    plan = _native.EpochPlan([zeros(o, i) for i, o in layers], [zeros(o) for _, o in layers],
                             [zeros(batch, o) for _, o in layers],
                             [zeros(batch, o) for _, o in layers],
                             [zeros(o) for _, o in layers], zeros(batch, sizes[0]),
                             ("sigmoid",) * (len(layers) - 1) + ("softmax",), "cross_entropy",
                             gemm="blas")
    return lambda: plan.gemm_floor(len(y))


class InterruptHooks:
    """SIGINT as a flag that the C epochs poll between minibatches (csrc/runtime.c)."""

    @staticmethod
    def requested():
        return _native.stop_requested()

    @staticmethod
    def clear():
        _native.clear_stop()

    @staticmethod
    def request_stop():
        """What SIGINT does (for tests and embedding applications)."""
        _native.request_stop()

    @staticmethod
    def install():
        _native.install_interrupt_handler()

    @staticmethod
    def remove():
        _native.remove_interrupt_handler()


if _native is not None:
    interrupt.register(InterruptHooks)
