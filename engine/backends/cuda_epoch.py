"""The cuda backend's fused epoch: 3L + 2 kernel launches per minibatch for L layers (8 for
the lecture network), no Python allocation per minibatch.

Per minibatch:
- L forward products (cuda_kernels.gemm: register-blocked tiles, coalesced loads), each
  with its bias and activation as the GEMM's epilogue; the first
  reads its input rows straight from the training set through the epoch's row order (the
  gather folded into its loads); the output layer's epilogue adds the bias only;
- one block applies the output activation (softmax, sigmoid, identity, exp), writes the
  minibatch's loss and the output delta (labels or target rows read through the order);
- L weight-gradient products (the first layer's reads its input rows through the order
  again; cut along k into slices that add atomically where the output has few tiles) and
  L - 1 delta products with the activation's derivative as their epilogue;
- one launch for every layer's bias gradient, one for the optimizer step of every parameter
  (they live in one flat buffer, weights first: the L2 term covers the first n_weights);
  it also sums the squared weights before the step, the L2 term of the minibatch's loss,
  and clears each gradient after using it, for the next split products to add into.

The parameters and the optimizer's state are copied into the flat buffers when an epoch
starts and back when it ends. Sample weights, dropout and the diagnostics take the generic
epoch (engine/backends/base.py).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from .. import interrupt
from . import cuda_kernels as k
from .cuda_kernels import (BIAS_ACT, GATHER_A, GATHER_B, NO_GATHER, PLAIN, SIGMOID_MSE,
                           SIGMOID_MSE_REF, SOFTMAX, THREADS, TIMES_DERIVATIVE, _block_sum,
                           _numba_type, cached, gemm)


@cached
def output_step(dtype, target_rows):
    """One block: z (m x c, the output layer's z) becomes the output activation in place;
    losses[slot] = the loss, d = the output delta (scale: its 1/n factor); targets are
    labels y[order[base + i]] (one-hot) or target rows (target_rows)."""
    nb = _numba_type(dtype)
    activate, _, loss_term = k.elementwise(dtype)

    @cuda.jit
    def kernel(z, y, order, base, d, act, kind, scale, divisor, losses, slot):
        part = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        m, c = z.shape
        acc = 0.0
        s = nb(scale)
        for i in range(tid, m, THREADS):
            if act == SOFTMAX:
                mx = z[i, 0]
                for j in range(1, c):
                    mx = max(mx, z[i, j])
                total = nb(0.0)
                for j in range(c):
                    e = math.exp(z[i, j] - mx)
                    z[i, j] = e
                    total += e
                for j in range(c):
                    z[i, j] = z[i, j] / total
            else:
                for j in range(c):
                    z[i, j] = activate(z[i, j], act)
            row = order[base + i]
            for j in range(c):
                a = z[i, j]
                if target_rows:
                    t = y[row, j]
                else:
                    t = nb(1.0) if y[row] == j else nb(0.0)
                acc += loss_term(kind, a, t)
                if kind == SIGMOID_MSE or kind == SIGMOID_MSE_REF:
                    d[i, j] = s * (a - t) * a * (nb(1.0) - a)
                else:
                    d[i, j] = s * (a - t)
        part[tid] = acc
        _block_sum(part, tid)
        if tid == 0:
            losses[slot] = part[0] / divisor

    return kernel


@cached
def bias_grads(dtype):
    """Every layer's bias gradient: g[goff[l] + j] = sum of rows < m of layer l's delta
    (flat[doff[l] + i * width[l] + j])."""
    nb = _numba_type(dtype)

    @cuda.jit
    def kernel(dflat, doff, width, goff, layers, m, g):
        total = 0
        for l in range(layers):
            total += width[l]
        for t in range(cuda.grid(1), total, cuda.gridsize(1)):
            l = 0
            j = t
            while j >= width[l]:
                j -= width[l]
                l += 1
            acc = nb(0.0)
            for i in range(m):
                acc += dflat[doff[l] + i * width[l] + j]
            g[goff[l] + j] = acc

    return kernel


@cached
def update_all(dtype, kind):
    """One optimizer step of every parameter of the flat buffer p (its first n_l2 entries
    are the weights: L2 term l2 * p; engine/optimizers.py writes out the rules); sq[slot]
    += the sum of their squares before the step (per block, one atomic each)."""
    nb = _numba_type(dtype)
    step = k.optimizer_rule(dtype, kind)

    @cuda.jit
    def kernel(p, g, s1, s2, n_l2, lr, mom, b1, b2, eps, l2, sq, slot):
        part = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        lr_, mom_, b1_, b2_, eps_, l2_ = nb(lr), nb(mom), nb(b1), nb(b2), nb(eps), nb(l2)
        acc = 0.0
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            gi = g[i]
            g[i] = nb(0.0)              # split-K weight gradients add into zeros
            if i < n_l2:
                acc += float64(p[i]) * float64(p[i])
                gi += l2_ * p[i]
            step(p, s1, s2, i, gi, lr_, mom_, b1_, b2_, eps_)
        part[tid] = acc
        _block_sum(part, tid)
        if tid == 0:
            cuda.atomic.add(sq, slot, part[0])

    return kernel


def _views(flat, shapes, start=0):
    out = []
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out, start


class CudaEpochPlan:
    """The device buffers and views of the fused epoch for one network and batch size,
    made once (and again only when the network's arrays are replaced)."""

    def __init__(self, net, batch):
        dt = np.dtype(net.dtype)
        self.dtype, self.batch = dt, batch
        self.sizes = net.sizes
        self.acts = [k.ACTIVATIONS[a] for a in net.activations]
        self.L = len(net.weights)
        w_shapes = [w.shape for w in net.weights]
        b_shapes = [b.shape for b in net.biases]
        self.n_weights = sum(int(np.prod(s)) for s in w_shapes)
        n_params = self.n_weights + sum(int(np.prod(s)) for s in b_shapes)
        self.P = cuda.device_array(n_params, dt)
        # the update clears each gradient after using it: split products add into zeros
        self.G = cuda.to_device(np.zeros(n_params, dt))
        self.S1 = cuda.device_array(n_params, dt)
        self.S2 = cuda.device_array(n_params, dt)
        self.W, end = _views(self.P, w_shapes)
        self.B, _ = _views(self.P, b_shapes, end)
        self.GW, end = _views(self.G, w_shapes)
        self.GB, _ = _views(self.G, b_shapes, end)
        self.state = [_views(s, w_shapes + b_shapes)[0] for s in (self.S1, self.S2)]
        widths = self.sizes[1:]
        self.Aflat = cuda.device_array(batch * sum(widths), dt)
        self.Dflat = cuda.device_array(batch * sum(widths), dt)
        offsets = np.concatenate([[0], np.cumsum([batch * w for w in widths])[:-1]])
        self.doff = cuda.to_device(offsets.astype(np.int64))
        self.width = cuda.to_device(np.array(widths, dtype=np.int64))
        boffs = self.n_weights + np.concatenate([[0], np.cumsum(widths)[:-1]])
        self.goff = cuda.to_device(boffs.astype(np.int64))
        self.n_bias = int(sum(widths))
        self._rows = {}
        self.launches = 0

    def rows(self, m):
        """(activations, deltas) of m rows: views made once per m."""
        if m not in self._rows:
            widths = self.sizes[1:]
            offs = np.concatenate([[0], np.cumsum([self.batch * w for w in widths])[:-1]])
            self._rows[m] = ([self.Aflat[o:o + m * w].reshape(m, w)
                              for o, w in zip(offs, widths)],
                             [self.Dflat[o:o + m * w].reshape(m, w)
                              for o, w in zip(offs, widths)])
        return self._rows[m]

    def _pairs(self, net, n_state):
        """(the plan's view, the network's array) of every parameter and state array."""
        pairs = list(zip(self.W + self.B, net.weights + net.biases))
        for s in range(n_state):
            pairs += zip(self.state[s], (net.velocities, net.second_moments)[s])
        return pairs

    def load(self, net, n_state):
        for mine, theirs in self._pairs(net, n_state):
            mine.copy_to_device(theirs)

    def store(self, net, n_state):
        for mine, theirs in self._pairs(net, n_state):
            theirs.copy_to_device(mine)

    def _launch(self, kernel, grid, *args):
        self.launches += 1
        kernel[grid](*args)

    def step(self, X, y, order, base, m, out_kind, scale, divisor, rule, step_size, l2,
             losses, sq, slot, target_rows):
        """One minibatch: rows order[base:base + m]."""
        dt, L = self.dtype, self.L
        A, D = self.rows(m)
        unused = self.B[0]
        for l in range(L):
            last = l == L - 1
            inp = X if l == 0 else A[l - 1]
            n_out, n_in = self.W[l].shape
            self._launch(gemm(dt, False, True, GATHER_A if l == 0 else NO_GATHER, BIAS_ACT),
                         k.gemm_grid(m, n_out), inp, self.W[l], A[l], m, n_out, n_in, 1.0,
                         0.0, order, base, self.B[l], A[l],
                         k.ACTIVATIONS["identity"] if last else self.acts[l])
        self._launch(output_step(dt, target_rows), (1, THREADS), A[L - 1], y, order, base,
                     D[L - 1], self.acts[L - 1], out_kind, scale, divisor, losses, slot)
        for l in range(L - 1, -1, -1):
            n_out, n_in = self.W[l].shape
            inp = X if l == 0 else A[l - 1]
            splits = k.split_count(n_out, n_in, m)
            self._launch(gemm(dt, True, False, GATHER_B if l == 0 else NO_GATHER, PLAIN,
                              splits > 1), k.gemm_grid(n_out, n_in, splits), D[l], inp,
                         self.GW[l], n_out, n_in, m, 1.0, 0.0, order, base, unused, A[0], 0)
            if l > 0:
                self._launch(gemm(dt, False, False, NO_GATHER, TIMES_DERIVATIVE),
                             k.gemm_grid(m, n_in), D[l], self.W[l], D[l - 1], m, n_in,
                             n_out, 1.0, 0.0, order, base, unused, A[l - 1],
                             self.acts[l - 1])
        self._launch(bias_grads(dt), k.grid_1d(self.n_bias), self.Dflat, self.doff,
                     self.width, self.goff, L, m, self.G)
        self._launch(update_all(dt, rule.kind), k.grid_1d(self.P.size), self.P, self.G,
                     self.S1, self.S2, self.n_weights, step_size, rule.momentum,
                     rule.beta_1, rule.beta_2, rule.epsilon, l2, sq, slot)


def fused_epoch(backend, net, X, y, order, batch_size, rule, alpha, ws, batch_losses):
    """One epoch by CudaEpochPlan (see the module docstring); returns the minibatches
    trained (all, unless Ctrl-C asked for a stop)."""
    from ..optimizers import STATE_ARRAYS
    n_state = STATE_ARRAYS[rule.kind]
    state_ids = tuple(id(a) for a in (net.velocities, net.second_moments)[:n_state])
    key = ("cuda-fused", id(net.weights), id(net.biases), state_ids)
    if ws.plan is None or ws.plan_key != key:
        ws.plan, ws.plan_key = CudaEpochPlan(net, batch_size), key
    plan = ws.plan
    n = len(order)
    n_batches = -(-n // batch_size)
    order_dev = backend.asarray(order, np.int64)
    losses = backend._scratch_array("epoch_losses", (n_batches,), np.float64)
    sq = cuda.to_device(np.zeros(n_batches))
    plan.load(net, n_state)
    out_kind = k.OUTPUT_LOSS[net.output, net.loss]
    c = plan.sizes[-1]
    target_rows = len(y.shape) == 2
    rows = np.empty(n_batches)
    done = n_batches
    for i, start in enumerate(range(0, n, batch_size)):
        if interrupt.requested():               # Ctrl-C: stop at this boundary
            done = i
            break
        m = min(batch_size, n - start)
        rows[i] = m
        now = rule._replace(t=rule.t + i + 1)
        divisor = float(m * c if out_kind in k.PER_ELEMENT else m)
        plan.step(X, y, order_dev, start, m, out_kind, k.delta_numerator(out_kind, c) / m,
                  divisor, now, float(now.step_size()), float(alpha / m), losses, sq, i,
                  target_rows)
    plan.store(net, n_state)
    batch_losses[:done] = losses.copy_to_host()[:done]
    if alpha:
        batch_losses[:done] += 0.5 * alpha * sq.copy_to_host()[:done] / rows[:done]
    return done
