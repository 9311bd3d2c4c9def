"""Numba CUDA kernels, built once per dtype (and per transpose flags) and cached.

Runs on a GPU, or on the CPU under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1), where
the tests exercise it. Elementwise kernels use grid-stride loops; the GEMM is a
register-blocked shared-memory kernel with optional epilogues and row gathers (the fused
epoch's products, engine/backends/cuda_epoch.py), any shape.
"""
from __future__ import annotations

import math
import os

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda up to at least 0.30.4 registers an overload for np.row_stack when it first
    # compiles a kernel, and NumPy 2.5 removed that alias: without it no kernel compiles
    # (AttributeError on the first launch; seen on a GPU machine with NumPy 2.5.2)
    np.row_stack = np.vstack

from numba import cuda, float32, float64  # noqa: E402

from .. import ops  # noqa: E402

# The simulator runs every CUDA thread as a Python thread: smaller blocks keep tests quick.
_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")
THREADS = 64 if _SIM else 256
MAX_BLOCKS = 1024

# codes shared with the C kernels (csrc/kernels.h)
ACTIVATIONS = dict(ops.CODES)
SIGMOID, TANH, SOFTMAX = (ACTIVATIONS[name] for name in ("sigmoid", "tanh", "softmax"))
OUTPUT_LOSS = {pair: p.code for pair, p in ops.PAIRS.items()}
_KINDS = {p.c_name: p.code for p in ops.PAIRS.values()}
(SIGMOID_MSE, SOFTMAX_CE, IDENTITY_MSE, SIGMOID_BCE, EXP_POISSON, IDENTITY_HALF_MSE) = (
    _KINDS[name] for name in ("SIGMOID_MSE", "SOFTMAX_CE", "IDENTITY_MSE", "SIGMOID_BCE",
                              "EXP_POISSON", "IDENTITY_HALF_MSE"))

_cache: dict = {}


def _numba_type(dtype):
    return float32 if np.dtype(dtype) == np.float32 else float64


def cached(builder):
    """Memoize a kernel factory on its arguments (dtype, flags)."""
    def get(*key):
        full = (builder.__name__,) + tuple(np.dtype(k).name if isinstance(k, (type, np.dtype))
                                           else k for k in key)
        if full not in _cache:
            _cache[full] = builder(*key)
        return _cache[full]
    get.__name__ = builder.__name__
    return get


def grid_1d(n):
    """(blocks, threads) for a grid-stride loop over n items."""
    return max(1, min(MAX_BLOCKS, -(-n // THREADS))), THREADS


# ------------------------------------------------------------ per-element math, per dtype
def _switch(cases, otherwise):
    """A device function f(v, act) that returns case(v) for the (code, case) pair whose code
    is act, otherwise(v) for none: the activation codes' dispatch, generated from
    engine/ops.py's table as a chain of compile-time constant comparisons."""
    @cuda.jit(device=True)
    def f(v, act):
        return otherwise(v)

    for code, case in cases:
        f = _case(code, case, f)
    return f


def _case(code, case, rest):
    @cuda.jit(device=True)
    def f(v, act):
        if act == code:
            return case(v)
        return rest(v, act)
    return f


def _formula(expression, variable, names):
    """The device function of one of engine/ops.py's scalar formulas."""
    return cuda.jit(device=True)(eval(f"lambda {variable}: {expression}", dict(names)))


@cached
def elementwise(dtype):
    """Device functions of one dtype: activate(v, act) (not softmax), derivative(a, act)
    from the output a (for engine/ops.py's keeps_slope activations, a is the slope kept),
    loss_term(kind, a, t) (float64), keeps_slope(act) and slope(v, act), the derivative
    at v that those activations keep. Every kernel that applies an activation, its
    derivative or a loss uses these; the activations' come from engine/ops.py's formulas."""
    nb = _numba_type(dtype)
    one, zero = nb(1.0), nb(0.0)
    eps = nb(np.finfo(np.dtype(dtype)).eps)
    tiny = nb(np.finfo(np.dtype(dtype)).tiny)

    @cuda.jit(device=True)
    def sigmoid(v):              # exp only of -|v|: no overflow
        if v >= 0:
            return one / (one + math.exp(-v))
        e = math.exp(v)
        return e / (one + e)

    names = {"ONE": one, "ZERO": zero, "LEAK": nb(ops.LEAKY_SLOPE),
             "CAP": nb(ops.EXP_CAP[np.dtype(dtype).name]), "sigmoid": sigmoid,
             "tanh": math.tanh, "exp": math.exp, "min": min}
    table = ops.ACTIVATIONS.values()
    same = _formula("v", "v", names)
    activate = _switch([(op.code, _formula(op.forward, "z", names))
                        for op in table if op.forward is not None], same)
    # derivative: of the output, or the slope kept (passed in the output's place) as it is
    derivative = _switch([(op.code, same if op.keeps_slope
                           else _formula(op.derivative, "a", names))
                          for op in table if op.derivative is not None],
                         _formula("ONE", "a", names))
    slope = _switch([(op.code, _formula(op.derivative, "z", names))
                     for op in table if op.keeps_slope], _formula("ONE", "z", names))
    keeps = _switch([(op.code, _formula("True", "v", names)) for op in table
                     if op.keeps_slope], _formula("False", "v", names))

    @cuda.jit(device=True)
    def keeps_slope(act):
        return keeps(act, act)

    @cuda.jit(device=True)
    def xlogy(x, y):
        return 0.0 if x == 0 else float64(x) * float64(math.log(y))

    @cuda.jit(device=True)
    def loss_term(kind, a, t):
        if kind == SOFTMAX_CE:
            return 0.0 if t == 0 else -float64(t) * float64(math.log(max(a, eps)))
        if kind == SIGMOID_BCE:
            p = min(max(a, eps), one - eps)
            return -(xlogy(t, p) + xlogy(one - t, one - p))
        if kind == EXP_POISSON:
            return xlogy(t, t) - xlogy(t, max(a, tiny)) - float64(t) + float64(a)
        e = float64(a) - float64(t)
        return 0.5 * e * e if kind == IDENTITY_HALF_MSE else e * e

    return activate, derivative, loss_term, keeps_slope, slope


def delta_numerator(kind, c):
    """The output delta's scale times the batch's rows (or weight sum): 2/c or 1."""
    return 2.0 / c if kind in (SIGMOID_MSE, IDENTITY_MSE) else 1.0


PER_ELEMENT = (SIGMOID_MSE, IDENTITY_MSE, IDENTITY_HALF_MSE)


# ------------------------------------------------------------------------------- GEMM
# Block tiles of BM x BN outputs, BK deep, computed by (RT x RT) threads holding RB x RB
# outputs each in registers (64 x 64 by 16 x 16 threads on a GPU; 16 x 16 by 4 x 4 under
# the simulator, which runs every thread in Python: the same code, more tile edges).
RB = 4
RT = 4 if _SIM else 16
BM = BN = RT * RB
BK = 8 if _SIM else 16
TILE = BM                       # rows (and columns) of c per block
# shared-memory rows padded by one (no bank conflicts on the transposed writes); named
# constants because numba-cuda on a GPU takes only compile-time constants as a shared
# array's shape, and an expression such as BM + 1 inside a kernel is not one (the simulator
# accepts anything, so only the first real-device run showed it)
BM_PAD = BM + 1
BN_PAD = BN + 1
# the most blocks along y a launch may have (CUDA's limit); taller products stride over the
# row tiles instead (a test lowers it to check that path)
MAX_GRID_Y = 65535
# epilogues: c = alpha * acc + beta * c; act(acc + bias[col]); acc * act'(aux[row, col])
PLAIN, BIAS_ACT, TIMES_DERIVATIVE = 0, 1, 2
# operand rows read through an order vector: row r of a (GATHER_A) or of b (GATHER_B) is
# row order[ctrl[0] + r] of that array (the training set, read in the epoch's order; the
# offset lives on the device so that a captured step replays unchanged)
NO_GATHER, GATHER_A, GATHER_B = 0, 1, 2


# split-K: a product with fewer output tiles than SPLIT_TARGET blocks and a long inner
# size is cut along k into up to MAX_SPLITS slices, each block adding its partial sum into
# c atomically (c cleared or scaled by beta first). On a 132-SM H200 the lecture's first
# weight gradient (100 x 784, k = batch) has 26 tiles; split 4 ways it fills the device.
SPLIT_TARGET = 8 if _SIM else 128
MAX_SPLITS = 16


def gemm_grid(m, n, splits=1):
    """(blocks, threads) of a gemm launch: one block per BM x BN tile of c (at most
    MAX_GRID_Y along the rows) and per k slice."""
    return (-(-n // BN), max(1, min(MAX_GRID_Y, -(-m // BM))), splits), (RT, RT)


def split_count(m, n, kk):
    """How many k slices a PLAIN product of m x n x kk is cut into (1: not split)."""
    tiles = -(-m // BM) * -(-n // BN)
    if tiles >= SPLIT_TARGET or kk < 4 * BK:
        return 1
    return max(1, min(MAX_SPLITS, -(-SPLIT_TARGET // tiles), kk // (2 * BK)))


@cached
def gemm(dtype, trans_a, trans_b, gather=NO_GATHER, epilogue=PLAIN, split=False):
    """c = op(a) @ op(b) (m x n, inner size kk), then the epilogue. Launch with
    gemm_grid(m, n, slices). Each tile of a and b is read with consecutive threads on
    consecutive addresses whichever way the operand is stored (a transposed operand is
    transposed on its way into shared memory), and each thread keeps an RB x RB block of c
    in registers. alpha and beta are taken in the dtype, so a float32 epilogue stays
    float32. split (PLAIN only): each k slice (grid z) adds alpha times its partial sum into
    c atomically; c must hold beta * c already."""
    nb = _numba_type(dtype)
    activate, derivative, _, keeps_slope, slope = elementwise(dtype)
    threads = RT * RT

    @cuda.jit
    def kernel(a, b, c, m, n, kk, alpha, beta, order, ctrl, bias, aux, act):
        base = ctrl[0]          # gathered rows start at order[ctrl[0]] (cuda_epoch.py)
        As = cuda.shared.array((BK, BM_PAD), nb)        # As[k][row]
        Bs = cuda.shared.array((BK, BN_PAD), nb)        # Bs[k][col]
        acc = cuda.local.array((RB, RB), nb)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * RT + tx
        al = nb(alpha)
        be = nb(beta)
        col0 = cuda.blockIdx.x * BN
        # every thread of the block walks the same row tiles: the barriers stay matched
        for rt in range(cuda.blockIdx.y, (m + BM - 1) // BM, cuda.gridDim.y):
            row0 = rt * BM
            for i in range(RB):
                for j in range(RB):
                    acc[i, j] = nb(0.0)
            # this block's k slice, whole BK steps (all of k unless split)
            chunk = ((kk + cuda.gridDim.z - 1) // cuda.gridDim.z + BK - 1) // BK * BK
            k_lo = cuda.blockIdx.z * chunk
            k_hi = min(kk, k_lo + chunk)
            for k0 in range(k_lo, k_hi, BK):
                for e in range(tid, BM * BK, threads):
                    if trans_a:                 # a is kk x m: consecutive rows of c
                        q, r = e // BM, e % BM
                    else:                       # a is m x kk: consecutive k
                        r, q = e // BK, e % BK
                    row, kq = row0 + r, k0 + q
                    v = nb(0.0)
                    if row < m and kq < k_hi:
                        if trans_a:
                            v = a[kq, row]
                        elif gather == GATHER_A:
                            v = a[order[base + row], kq]
                        else:
                            v = a[row, kq]
                    As[q, r] = v
                for e in range(tid, BN * BK, threads):
                    if trans_b:                 # b is n x kk: consecutive k
                        r, q = e // BK, e % BK
                    else:                       # b is kk x n: consecutive columns
                        q, r = e // BN, e % BN
                    col, kq = col0 + r, k0 + q
                    v = nb(0.0)
                    if col < n and kq < k_hi:
                        if trans_b:
                            v = b[col, kq]
                        elif gather == GATHER_B:
                            v = b[order[base + kq], col]
                        else:
                            v = b[kq, col]
                    Bs[q, r] = v
                cuda.syncthreads()
                for q in range(BK):
                    for i in range(RB):
                        x = As[q, ty + RT * i]
                        for j in range(RB):
                            acc[i, j] += x * Bs[q, tx + RT * j]
                cuda.syncthreads()
            for i in range(RB):
                row = row0 + ty + RT * i
                for j in range(RB):
                    col = col0 + tx + RT * j
                    if row < m and col < n:
                        v = acc[i, j]
                        if epilogue == BIAS_ACT:
                            z = v + bias[col]
                            if keeps_slope(act):      # aux: the layer's kept slopes
                                aux[row, col] = slope(z, act)
                            c[row, col] = activate(z, act)
                        elif epilogue == TIMES_DERIVATIVE:
                            c[row, col] = v * derivative(aux[row, col], act)
                        elif split:
                            cuda.atomic.add(c, (row, col), al * v)
                        elif be == nb(0.0):
                            c[row, col] = al * v
                        else:
                            c[row, col] = al * v + be * c[row, col]

    return kernel


@cached
def scale(dtype):
    """x *= s in place, with s == 0 writing zeros (no NaN * 0)."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(x, s):
        f = nb(s)
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            x[i] = nb(0.0) if f == nb(0.0) else x[i] * f

    return kernel


# -------------------------------------------------------------------- activations
@cached
def bias_act(dtype):
    """z = act(z + b); slopes = act'(z + b) where keep (engine/ops.py KEEPS_SLOPE)."""
    activate, _, _, _, slope = elementwise(dtype)

    @cuda.jit
    def kernel(z, b, act, slopes, keep):
        n, c = z.shape
        for idx in range(cuda.grid(1), n * c, cuda.gridsize(1)):
            i = idx // c
            j = idx - i * c
            v = z[i, j] + b[j]
            if keep:
                slopes[i, j] = slope(v, act)
            z[i, j] = activate(v, act)

    return kernel


# rows of a softmax block: each row gets 32 threads (a warp), ROWS rows per block
SOFTMAX_ROWS = max(1, THREADS // 32)


def softmax_grid(n):
    return (max(1, min(MAX_BLOCKS, -(-n // SOFTMAX_ROWS))), (32, SOFTMAX_ROWS))


@cached
def softmax_rows(dtype):
    """Bias then a max-subtracted softmax per row, 32 threads per row: each lane takes
    every 32nd column, the row's max and sum are reduced in shared memory. Launch with
    softmax_grid(n)."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(z, b, has_bias):
        n, c = z.shape
        red = cuda.shared.array((SOFTMAX_ROWS, 33), nb)
        lane = cuda.threadIdx.x
        r = cuda.threadIdx.y
        groups = (n + SOFTMAX_ROWS - 1) // SOFTMAX_ROWS
        for g in range(cuda.blockIdx.x, groups, cuda.gridDim.x):
            i = g * SOFTMAX_ROWS + r
            live = i < n
            mx = nb(-math.inf)          # a float64 -inf would carry the row into float64
            if live:
                for j in range(lane, c, 32):
                    if has_bias:
                        z[i, j] += b[j]
                    mx = max(mx, z[i, j])
            red[r, lane] = mx
            cuda.syncthreads()
            width = 16
            while width > 0:
                if lane < width:
                    red[r, lane] = max(red[r, lane], red[r, lane + width])
                cuda.syncthreads()
                width //= 2
            mx = red[r, 0]
            cuda.syncthreads()
            s = nb(0.0)
            if live:
                for j in range(lane, c, 32):
                    e = math.exp(z[i, j] - mx)
                    z[i, j] = e
                    s += e
            red[r, lane] = s
            cuda.syncthreads()
            width = 16
            while width > 0:
                if lane < width:
                    red[r, lane] += red[r, lane + width]
                cuda.syncthreads()
                width //= 2
            s = red[r, 0]
            cuda.syncthreads()
            if live:
                for j in range(lane, c, 32):
                    z[i, j] = z[i, j] / s

    return kernel


@cached
def act_backward(dtype):
    derivative = elementwise(dtype)[1]

    @cuda.jit
    def kernel(d, a, act):
        for i in range(cuda.grid(1), d.size, cuda.gridsize(1)):
            d[i] *= derivative(a[i], act)

    return kernel


# ---------------------------------------------------------------- reductions
@cuda.jit(device=True)
def _block_sum(part, tid):
    """part[0] = the sum of part[0:THREADS] (tree reduction; every thread of the block
    calls it)."""
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if tid < step:
            part[tid] += part[tid + step]
        cuda.syncthreads()
        step //= 2
