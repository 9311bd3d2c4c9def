"""Numba CUDA kernels of the training step besides the products and the activations (those
are in cuda_kernels.py): loss and output delta, dropout, the minibatch's sample weights
and rows, bias gradients, the optimizer steps, and the diagnostics' reductions. Built once
per dtype and cached."""
from __future__ import annotations

import math

from numba import cuda, float64, int64

from .cuda_kernels import (IDENTITY_MSE, SIGMOID, SIGMOID_MSE, TANH,
                           THREADS, _block_sum, _numba_type, cached, elementwise)


# ---------------------------------------------------------------- loss and deltas
@cached
def weight_sum(dtype):
    """out[0] = the sum of w (1 when it is not positive: a zero step), one block."""
    @cuda.jit
    def kernel(w, out):
        part = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        acc = 0.0
        for i in range(tid, w.size, THREADS):
            acc += float64(w[i])
        part[tid] = acc
        _block_sum(part, tid)
        if tid == 0:
            out[0] = part[0] if part[0] > 0 else 1.0

    return kernel


@cached
def output_delta(dtype):
    """out = dL/dz; scale is the unweighted 1/n factor, or, with weights (w, their sum in
    wsum[0]), the factor's numerator (1, 2/c or 2), divided here by the sum and multiplied
    by each row's weight."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(a, t, out, kind, scale, w, wsum, c, weighted):
        one = nb(1.0)
        s = nb(scale)
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            if weighted:
                s = nb(scale / wsum[0]) * w[i // c]
            if kind == SIGMOID_MSE:
                out[i] = s * (a[i] - t[i]) * a[i] * (one - a[i])
            elif kind == IDENTITY_MSE:
                out[i] = s * (a[i] - t[i])
            else:
                out[i] = (a[i] - t[i]) * s

    return kernel


@cached
def loss_into(dtype):
    """out[slot] = the loss of (a, t) (weighted by w per row of c when `weighted`); one
    block of THREADS threads, reduced in float64. per_element: divide by c as well."""
    loss_term = elementwise(dtype)[2]

    @cuda.jit
    def kernel(a, t, kind, rows, c, per_element, w, weighted, out, slot):
        part = cuda.shared.array(THREADS, float64)
        weights = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        acc = 0.0
        total = 0.0
        for i in range(tid, a.size, THREADS):
            term = loss_term(kind, a[i], t[i])
            if weighted:
                term *= float64(w[i // c])
                if i % c == 0:
                    total += float64(w[i // c])
            acc += term
        part[tid] = acc
        weights[tid] = total
        _block_sum(part, tid)
        _block_sum(weights, tid)
        if tid == 0:
            n = float64(rows)
            if weighted:
                n = weights[0] if weights[0] > 0 else 1.0
            out[slot] = part[0] / (n * c if per_element else n)

    return kernel


@cuda.jit(device=True)
def _mix32(h):
    """murmur3's finalizer (engine/dropout.py), in 64-bit integers kept to 32 bits."""
    m = 0xFFFFFFFF
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & m
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & m
    return h ^ (h >> 16)


@cached
def dropout(dtype):
    """Inverted dropout of rows of a (engine/dropout.py's masks)."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(a, key, layer, row0, threshold, scale):
        n, c = a.shape
        s = nb(scale)
        for idx in range(cuda.grid(1), n * c, cuda.gridsize(1)):
            i = idx // c
            j = idx - i * c
            row_key = _mix32((key ^ (layer << 24) ^ (row0 + i)) & 0xFFFFFFFF)
            bits = _mix32((row_key + j * 0x9E3779B1) & 0xFFFFFFFF) >> 8
            a[i, j] = a[i, j] * s if bits >= threshold else nb(0.0)

    return kernel


@cached
def dropout_backward(dtype):
    """delta = dL/dz through a hidden layer with dropout (the derivative from a / scale, or
    from a itself where a is the kept slope: engine/ops.py KEEPS_SLOPE)."""
    nb = _numba_type(dtype)
    derivative, keeps_slope = elementwise(dtype)[1], elementwise(dtype)[3]

    @cuda.jit
    def kernel(d, a, act, key, layer, row0, threshold, scale):
        n, c = a.shape
        s = nb(scale)
        keep = nb(1.0) if keeps_slope(act) else nb(1.0) / s
        for idx in range(cuda.grid(1), n * c, cuda.gridsize(1)):
            i = idx // c
            j = idx - i * c
            row_key = _mix32((key ^ (layer << 24) ^ (row0 + i)) & 0xFFFFFFFF)
            bits = _mix32((row_key + j * 0x9E3779B1) & 0xFFFFFFFF) >> 8
            g = derivative(a[i, j] * keep, act)
            d[i, j] = d[i, j] * s * g if bits >= threshold else nb(0.0)

    return kernel


@cached
def take(dtype):
    """out = values[index] (1-D)."""
    @cuda.jit
    def kernel(values, index, out):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = values[index[i]]

    return kernel


@cached
def bias_grad(dtype):
    """out[j] = sum_i d[i, j]: blocks of 32 columns x 8 row lanes, reduced in shared memory."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(d, out):
        n, c = d.shape
        part = cuda.shared.array((8, 33), nb)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        j = cuda.blockIdx.x * 32 + tx
        acc = nb(0.0)
        if j < c:
            for i in range(ty, n, 8):
                acc += d[i, j]
        part[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and j < c:
            s = part[0, tx]
            for r in range(1, 8):
                s += part[r, tx]
            out[j] = s

    return kernel


# ------------------------------------------------------------------ optimizer, data

# the optimizers' codes, as in csrc/kernels.h (ENG_SGD ...)
OPTIMIZER_KINDS = {"sgd": 0, "momentum": 1, "nesterov": 2, "adam": 3}


@cached
def optimizer_rule(dtype, kind):
    """A device function: step(p, g, s1, s2, i, gi, lr, mom, b1, b2, eps) updates p[i]
    (and its state s1[i], s2[i]) by the gradient gi, by rule `kind` (engine/optimizers.py
    writes the rules out); kind is fixed per compiled function."""
    nb = _numba_type(dtype)
    code = OPTIMIZER_KINDS[kind]
    one = nb(1.0)

    @cuda.jit(device=True)
    def step(p, s1, s2, i, gi, lr, mom, b1, b2, eps):
        if code == 0:
            p[i] -= lr * gi
        elif code == 1:
            s1[i] = mom * s1[i] - lr * gi
            p[i] += s1[i]
        elif code == 2:
            d = lr * gi
            s1[i] = mom * s1[i] - d
            p[i] += mom * s1[i] - d
        else:
            s1[i] = b1 * s1[i] + (one - b1) * gi
            s2[i] = b2 * s2[i] + (one - b2) * (gi * gi)
            p[i] -= lr * s1[i] / (math.sqrt(s2[i]) + eps)

    return step


@cached
def optimizer_step(dtype, kind):
    """One optimizer step of one parameter array, its gradient + l2 * p."""
    nb = _numba_type(dtype)
    step = optimizer_rule(dtype, kind)

    @cuda.jit
    def kernel(p, g, s1, s2, lr, mom, b1, b2, eps, l2):
        lr_, mom_, b1_, b2_, eps_, l2_ = nb(lr), nb(mom), nb(b1), nb(b2), nb(eps), nb(l2)
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            step(p, s1, s2, i, g[i] + l2_ * p[i], lr_, mom_, b1_, b2_, eps_)

    return kernel


@cached
def gather(dtype, target_rows=False):
    """x_out = X[idx]; t_out = the one-hot rows of labels y[idx], or (target_rows) the
    target rows y[idx]."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(X, y, idx, x_out, t_out):
        m, f = x_out.shape
        c = t_out.shape[1]
        start, stride = cuda.grid(1), cuda.gridsize(1)
        for k in range(start, m * f, stride):
            i = k // f
            x_out[i, k - i * f] = X[idx[i], k - i * f]
        for k in range(start, m * c, stride):
            i = k // c
            if target_rows:
                t_out[i, k - i * c] = y[idx[i], k - i * c]
            else:
                t_out[i, k - i * c] = nb(1.0) if y[idx[i]] == k - i * c else nb(0.0)

    return kernel


# -------------------------------------------------------------------- diagnostics
@cached
def alive_units(dtype):
    @cuda.jit
    def kernel(a, out):
        n, c = a.shape
        for j in range(cuda.grid(1), c, cuda.gridsize(1)):
            alive = 0
            for i in range(n):
                if a[i, j] > 0:
                    alive = 1
                    break
            out[j] = alive

    return kernel


@cached
def saturated_count(dtype):
    """out[0] += the entries near their activation's bound: each block counts its share
    in shared memory, then adds it with one atomic (launch with grid_1d)."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(a, act, thr, out):
        part = cuda.shared.array(THREADS, int64)
        tid = cuda.threadIdx.x
        th = nb(thr)
        count = 0
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            if act == SIGMOID:
                if abs(nb(2.0) * a[i] - nb(1.0)) > th:
                    count += 1
            elif act == TANH:
                if abs(a[i]) > th:
                    count += 1
        part[tid] = count
        _block_sum(part, tid)
        if tid == 0:
            cuda.atomic.add(out, 0, part[0])

    return kernel


@cached
def sq_norm(dtype):
    """out[0] += the sum of squares of x, in float64: per block in shared memory, then one
    atomic per block (launch with grid_1d)."""
    @cuda.jit
    def kernel(x, out):
        part = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        acc = 0.0
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            acc += float64(x[i]) * float64(x[i])
        part[tid] = acc
        _block_sum(part, tid)
        if tid == 0:
            cuda.atomic.add(out, 0, part[0])

    return kernel
