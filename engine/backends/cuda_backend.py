"""The CUDA backend: Numba CUDA kernels on device-resident arrays.

Weights, workspaces and the training set stay on the device for the whole `fit`;
per epoch only the shuffled index vector goes to the device and the minibatch
losses come back (one synchronization per epoch).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .base import Backend
from .cudasim import cuda_simulator_enabled

# numba.cuda, imported on first need: importing it takes most of a second, and
# `engine info` or the `auto` choice on a machine without a GPU should not pay for that.
cuda = None


def _import_numba_cuda():
    """numba.cuda, or the reason it cannot be imported (never raises)."""
    global cuda
    if cuda is None:
        try:
            from numba import cuda as numba_cuda
        except Exception as exc:  # no numba / numba-cuda: report why, never fail
            return f"numba-cuda is not installed ({type(exc).__name__}: {exc})"
        cuda = numba_cuda
    return None


def _driver_missing():
    """Why no CUDA driver can be there, found without importing numba; None if one may."""
    import ctypes.util
    import importlib.util
    if importlib.util.find_spec("numba") is None:
        return "numba-cuda is not installed"
    if ctypes.util.find_library("cuda") is None:
        try:
            ctypes.CDLL("libcuda.so.1")
        except OSError:
            return ("no CUDA driver library (libcuda.so) on this machine: no NVIDIA driver "
                    "installed")
    return None


def _on_device(x):
    # the simulator's arrays lack __cuda_array_interface__; both have copy_to_host
    return hasattr(x, "copy_to_host")


simulator_enabled = cuda_simulator_enabled

# products of at least this many FLOP go to cuBLAS when CuPy is there: a 512^3 product is
# where a vendor GEMM's lead over ours starts to outweigh a call through another library
CUBLAS_MIN_FLOP = 2 * 512 ** 3
_CUPY = []


def use_cublas(m, n, k, simulated):
    """Whether an m x n x k product goes to cuBLAS (never under the simulator)."""
    return not simulated and 2 * m * n * k >= CUBLAS_MIN_FLOP


def _cupy():
    """CuPy, or None where it is not installed or not working (looked up once)."""
    if not _CUPY:
        try:
            import cupy
            cupy.cublas.gemm             # noqa: B018  (the API this backend calls)
            _CUPY.append(cupy)
        except Exception:
            _CUPY.append(None)
    return _CUPY[0]


class CudaBackend(Backend):
    name = "cuda"

    @classmethod
    def availability(cls):
        if not simulator_enabled():
            missing = _driver_missing()
            if missing:
                return False, missing + "; `pip install .[cuda]` on a machine with an NVIDIA GPU"
        failed = _import_numba_cuda()
        if failed:
            return False, failed + "; `pip install .[cuda]` on a machine with an NVIDIA GPU"
        if simulator_enabled():
            return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but slow, for tests"
        try:
            if not cuda.is_available():
                from numba.cuda.cudadrv import driver
                why = str(getattr(driver.driver, "initialization_error", "") or "").strip()
                return False, ("no usable CUDA driver or device"
                               + (f": {why.splitlines()[0]}" if why else ""))
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
            return True, f"{name} (compute capability {dev.compute_capability})"
        except Exception as exc:
            return False, f"CUDA initialisation failed: {type(exc).__name__}: {exc}"

    def __init__(self):
        ok, reason = self.availability()
        if not ok:
            raise RuntimeError(reason)
        from . import cuda_kernels as k
        from . import cuda_step_kernels as s
        self.k, self.s = k, s
        self._scratch = {}

    # ------------------------------------------------------------------ arrays
    def asarray(self, x, dtype=None):
        if _on_device(x):
            if dtype is None or np.dtype(dtype) == x.dtype:
                return x
            x = x.copy_to_host()
        return cuda.to_device(np.ascontiguousarray(x, dtype=dtype))

    def to_numpy(self, x):
        return x.copy_to_host() if _on_device(x) else np.asarray(x)

    def empty(self, shape, dtype):
        return cuda.device_array(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return cuda.to_device(np.zeros(shape, dtype=dtype))

    def synchronize(self):
        cuda.synchronize()

    # ------------------------------------------------------------------ kernels
    @staticmethod
    def _flat(x):
        return x.reshape(x.size)

    def _cublas(self, a, b, out, trans_a, trans_b, alpha, beta, m, n, k):
        """Large products go to cuBLAS through CuPy when it is importable: on the same
        (default) stream, through __cuda_array_interface__ views (no copies), TF32 off
        (CuPy's default unless CUPY_TF32=1), so results stay comparable. Returns whether
        it took the product."""
        if not use_cublas(m, n, k, simulator_enabled()):
            return False
        cp = _cupy()
        if cp is None:
            return False
        cp.cublas.gemm("T" if trans_a else "N", "T" if trans_b else "N", cp.asarray(a),
                       cp.asarray(b), cp.asarray(out), alpha=alpha, beta=beta)
        return True

    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if kb != k or out.shape != (m, n) or a.dtype != b.dtype or a.dtype != out.dtype:
            raise ValueError(f"gemm: op(a) {m}x{k}, op(b) {kb}x{n}, out {out.shape}, dtypes "
                             f"{a.dtype}/{b.dtype}/{out.dtype} do not fit together")
        if m == 0 or n == 0:
            return
        if self._cublas(a, b, out, trans_a, trans_b, alpha, beta, m, n, k):
            return
        dummy = self._scratch_array("gemm_ctrl", (2,), np.int64)   # no gather: unread
        splits = self.k.split_count(m, n, k)
        if splits > 1:                   # the slices add into beta * c
            self.k.scale(out.dtype)[self.k.grid_1d(out.size)](self._flat(out), float(beta))
        self.k.gemm(a.dtype, bool(trans_a), bool(trans_b), self.k.NO_GATHER, self.k.PLAIN,
                    splits > 1)[self.k.gemm_grid(m, n, splits)](
            a, b, out, m, n, k, float(alpha), float(beta), dummy, dummy, out, out, 0)

    def bias_act_(self, z, bias, activation, slope=None):
        if activation == "softmax":
            self.k.softmax_rows(z.dtype)[self.k.softmax_grid(z.shape[0])](z, bias, True)
        else:
            code = self.k.ACTIVATIONS[activation]
            keep = slope is not None and activation in ops.KEEPS_SLOPE
            self.k.bias_act(z.dtype)[self.k.grid_1d(z.size)](
                z, bias, code, slope if keep else z, keep)

    def act_backward_(self, delta, a, activation):
        code = self.k.ACTIVATIONS[activation]
        self.k.act_backward(delta.dtype)[self.k.grid_1d(delta.size)](
            self._flat(delta), self._flat(a), code)

    def output_delta(self, a, t, out, output, loss, weights=None):
        n, c = a.shape
        kind = self.k.OUTPUT_LOSS[output, loss]
        # the 1/n factor's numerator; the kernel divides by n, or by the weights' sum
        numerator = self.k.delta_numerator(kind, c)
        wsum = self._scratch_array("weight_sum", (1,), np.float64)
        if weights is not None:
            self.s.weight_sum(a.dtype)[1, self.k.THREADS](weights, wsum)
        self.s.output_delta(a.dtype)[self.k.grid_1d(a.size)](
            self._flat(a), self._flat(t), self._flat(out), kind,
            numerator if weights is not None else numerator / n,
            weights if weights is not None else self._flat(a), wsum, c, weights is not None)

    def loss_into(self, a, t, output, loss, losses, slot, weights=None):
        n, c = a.shape
        kind = self.k.OUTPUT_LOSS[output, loss]
        per_element = kind in self.k.PER_ELEMENT
        self.s.loss_into(a.dtype)[1, self.k.THREADS](
            self._flat(a), self._flat(t), kind, n, c, per_element,
            weights if weights is not None else self._flat(a), weights is not None, losses,
            slot)

    def dropout_(self, a, rate, key, layer, row0=0):
        from .. import dropout as masks
        self.s.dropout(a.dtype)[self.k.grid_1d(a.size)](
            a, int(key), int(layer), int(row0), masks.threshold(rate), 1.0 / (1.0 - rate))

    def dropout_backward_(self, delta, a, activation, rate, key, layer, row0=0):
        from .. import dropout as masks
        self.s.dropout_backward(a.dtype)[self.k.grid_1d(a.size)](
            delta, a, self.k.ACTIVATIONS[activation], int(key), int(layer), int(row0),
            masks.threshold(rate), 1.0 / (1.0 - rate))

    def take_(self, values, index, out):
        index = self.asarray(index, np.int64)
        self.s.take(values.dtype)[self.k.grid_1d(out.size)](values, index, out)

    def _scratch_array(self, name, shape, dtype):
        key = (name, shape, np.dtype(dtype).name)
        if key not in self._scratch:
            self._scratch[key] = cuda.device_array(shape, dtype=dtype)
        return self._scratch[key]

    def loss(self, a, t, output, loss, weights=None):
        out = self._scratch_array("loss", (1,), np.float64)
        self.loss_into(a, t, output, loss, out, 0, weights)
        return float(out.copy_to_host()[0])

    def bias_grad(self, delta, out):
        blocks = -(-delta.shape[1] // 32)
        self.s.bias_grad(delta.dtype)[blocks, (32, 8)](delta, out)

    def optimizer_step_(self, param, grad, state, rule, l2=0.0):
        flat = self._flat(param)
        s1 = self._flat(state[0]) if len(state) > 0 else flat
        s2 = self._flat(state[1]) if len(state) > 1 else flat
        self.s.optimizer_step(param.dtype, rule.kind)[self.k.grid_1d(param.size)](
            flat, self._flat(grad), s1, s2, float(rule.step_size()), float(rule.momentum),
            float(rule.beta_1), float(rule.beta_2), float(rule.epsilon), float(l2))

    def gather_(self, X, y, index, x_out, t_out):
        index = self.asarray(index, np.int64)
        if x_out is None:                  # the targets only: no columns of X to copy
            x_out = self._scratch_array("gather_no_x", (len(index), 0), X.dtype)
        n = max(x_out.size, t_out.size)
        self.s.gather(X.dtype, len(y.shape) == 2)[self.k.grid_1d(n)](X, y, index, x_out, t_out)

    def alive_units(self, a):
        out = cuda.device_array(a.shape[1], dtype=np.uint8)
        self.s.alive_units(a.dtype)[self.k.grid_1d(a.shape[1])](a, out)
        return out

    def saturated_count(self, a, activation, threshold=0.95):
        code = self.k.ACTIVATIONS[activation]
        out = cuda.to_device(np.zeros(1, dtype=np.int64))
        self.s.saturated_count(a.dtype)[self.k.grid_1d(a.size)](
            self._flat(a), code, float(threshold), out)
        return int(out.copy_to_host()[0])

    def sq_norm(self, x):
        out = cuda.to_device(np.zeros(1, dtype=np.float64))
        self.s.sq_norm(x.dtype)[self.k.grid_1d(x.size)](self._flat(x), out)
        return float(out.copy_to_host()[0])

    # ------------------------------------------------------------------ training
    def train_epoch(self, net, X, y, order, batch_size, rule, alpha, ws, batch_losses,
                    grad_norms=None, sample_weight=None, dropout=None, reduce=None):
        """The fused epoch (engine/backends/cuda_epoch.py: 3L + 2 launches per minibatch);
        with sample weights, dropout, diagnostics or a reduction, the generic one below."""
        if reduce is not None:
            return super().train_epoch(net, X, y, order, batch_size, rule, alpha, ws,
                                       batch_losses, grad_norms, sample_weight, dropout,
                                       reduce)
        if grad_norms is None and sample_weight is None and dropout is None:
            from .cuda_epoch import fused_epoch
            return fused_epoch(self, net, X, y, order, batch_size, rule, alpha, ws,
                               batch_losses)
        return super().train_epoch(net, X, y, order, batch_size, rule, alpha, ws,
                                   batch_losses, grad_norms, sample_weight, dropout)

    # The generic epoch of the base class, with the minibatch losses kept on the device
    # until it ends (one synchronization per epoch).
    def loss_buffer(self, batch_losses, n):
        return self._scratch_array("epoch_losses", (n,), np.float64)

    def copy_losses(self, losses, batch_losses, n):
        batch_losses[:n] = losses.copy_to_host()
