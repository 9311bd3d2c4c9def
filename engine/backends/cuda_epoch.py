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

The flat buffers of the parameters and the optimizer's state are the model's own
(TrainState's buffer, views in the same order), so nothing is copied around an epoch; a
network without one (the textbook drop-in's) is copied in when an epoch starts and back
when it ends. Sample weights, dropout and the diagnostics take the generic
epoch (engine/backends/base.py).

The step reads its first row and its step number from two device counters that its own
kernels advance, and its step size from a per-epoch array, so every full minibatch makes
the same launches with the same arguments: on a GPU with cuda.core (numba-cuda's
dependency) the step is captured once as a CUDA graph and replayed, one host call per
minibatch instead of 3L + 2 (ENGINE_CUDA_GRAPHS=0 turns that off).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from .. import interrupt
from . import cuda_kernels as k
from . import cuda_step_kernels as steps
from .buffers import carve, keeps_slope
from .cuda_kernels import (BIAS_ACT, GATHER_A, GATHER_B, NO_GATHER, PLAIN, SIGMOID_MSE,
                           SOFTMAX, THREADS, TIMES_DERIVATIVE, _block_sum,
                           _numba_type, cached, gemm)


@cached
def output_step(dtype, target_rows):
    """One block: z (m x c, the output layer's z) becomes the output activation in place;
    losses[step] = the loss, d = the output delta (scale: its 1/n factor); targets are
    labels y[order[base + i]] (one-hot) or target rows (target_rows). base = ctrl[0],
    step = ctrl[1], which it advances (the counters of CudaEpochPlan.step)."""
    nb = _numba_type(dtype)
    activate, _, loss_term, _, _ = k.elementwise(dtype)

    @cuda.jit
    def kernel(z, y, order, ctrl, d, act, kind, scale, divisor, losses):
        part = cuda.shared.array(THREADS, float64)
        base = ctrl[0]
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
                if kind == SIGMOID_MSE:
                    d[i, j] = s * (a - t) * a * (nb(1.0) - a)
                else:
                    d[i, j] = s * (a - t)
        part[tid] = acc
        _block_sum(part, tid)
        if tid == 0:
            slot = ctrl[1]
            losses[slot] = part[0] / divisor
            ctrl[1] = slot + 1

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
    are the weights: L2 term l2 * p; engine/optimizers.py writes out the rules), with the
    step size lrs[step] of this step (step = ctrl[1] - 1: output_step advanced it); sq[step]
    += the sum of the weights' squares before the step (per block, one atomic each); then
    ctrl[0] (the next step's first row) += batch."""
    nb = _numba_type(dtype)
    step = steps.optimizer_rule(dtype, kind)

    @cuda.jit
    def kernel(p, g, s1, s2, n_l2, lrs, mom, b1, b2, eps, l2, sq, ctrl, batch):
        part = cuda.shared.array(THREADS, float64)
        tid = cuda.threadIdx.x
        slot = ctrl[1] - 1
        lr_, mom_, b1_, b2_, eps_, l2_ = nb(lrs[slot]), nb(mom), nb(b1), nb(b2), nb(eps), \
            nb(l2)
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
        if cuda.grid(1) == 0:       # no block of this kernel reads ctrl[0]
            ctrl[0] += batch

    return kernel


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
        # the model's own buffer where it has one (TrainState's: parameters, then each state
        # kind, the layout the step wants): nothing to copy in or out around an epoch
        n_state = sum(s is not None for s in (net.velocities, net.second_moments))
        self.shared = net.flat is not None and net.flat.size == n_params * (1 + n_state)
        flats = carve(net.flat, [(n_params,)] * (1 + n_state))[0] if self.shared else []
        flats += [cuda.device_array(n_params, dt) for _ in range(3 - len(flats))]
        self.P, self.S1, self.S2 = flats
        # the update clears each gradient after using it: split products add into zeros
        self.G = cuda.to_device(np.zeros(n_params, dt))
        self.W, end = carve(self.P, w_shapes)
        self.B, _ = carve(self.P, b_shapes, end)
        self.GW, end = carve(self.G, w_shapes)
        self.GB, _ = carve(self.G, b_shapes, end)
        self.state = [carve(s, w_shapes + b_shapes)[0] for s in (self.S1, self.S2)]
        widths = self.sizes[1:]
        self.Aflat = cuda.device_array(batch * sum(widths), dt)
        self.Dflat = cuda.device_array(batch * sum(widths), dt)
        # the slopes that engine/ops.py's KEEPS_SLOPE layers keep for the backward pass
        self.keeps = [keeps_slope(net, l) for l in range(self.L)]
        self.Sflat = cuda.device_array(batch * sum(widths), dt) if any(self.keeps) else None
        offsets = np.concatenate([[0], np.cumsum([batch * w for w in widths])[:-1]])
        self.doff = cuda.to_device(offsets.astype(np.int64))
        self.width = cuda.to_device(np.array(widths, dtype=np.int64))
        boffs = self.n_weights + np.concatenate([[0], np.cumsum(widths)[:-1]])
        self.goff = cuda.to_device(boffs.astype(np.int64))
        self.n_bias = int(sum(widths))
        self._rows = {}
        self.launches = 0
        self._into = None
        self.order = self.lrs = self.losses = self.sq = None
        self.ctrl = cuda.to_device(np.zeros(2, np.int64))   # first row, step of the epoch
        self.graphs = {}

    def rows(self, m):
        """(activations, deltas, what each layer's derivative reads: its kept slopes or
        its activations) of m rows: views made once per m."""
        if m not in self._rows:
            widths = self.sizes[1:]
            offs = np.concatenate([[0], np.cumsum([self.batch * w for w in widths])[:-1]])

            def views(flat):
                return [flat[o:o + m * w].reshape(m, w) for o, w in zip(offs, widths)]
            A, D = views(self.Aflat), views(self.Dflat)
            S = A if self.Sflat is None else [s if keep else a for s, a, keep in
                                              zip(views(self.Sflat), A, self.keeps)]
            self._rows[m] = (A, D, S)
        return self._rows[m]

    def _pairs(self, net, n_state):
        """(the plan's view, the network's array) of every parameter and state array."""
        pairs = list(zip(self.W + self.B, net.weights + net.biases))
        for s in range(n_state):
            pairs += zip(self.state[s], (net.velocities, net.second_moments)[s])
        return pairs

    def load(self, net, n_state):
        if not self.shared:
            for mine, theirs in self._pairs(net, n_state):
                mine.copy_to_device(theirs)

    def store(self, net, n_state):
        if not self.shared:
            for mine, theirs in self._pairs(net, n_state):
                theirs.copy_to_device(mine)

    def _launch(self, kernel, grid, *args):
        self.launches += 1
        if self._into is None:
            kernel[grid](*args)
        else:                       # recorded into a graph being built
            kernel[grid[0], grid[1], self._into](*args)

    def step(self, X, y, m, out_kind, scale, divisor, rule, l2, target_rows, into=None):
        """One minibatch of m rows: rows order[ctrl[0]:ctrl[0] + m] of (X, y), its loss to
        losses[ctrl[1]], its step size lrs[ctrl[1]]; the kernels advance both counters, so
        every full minibatch is the same 3L + 2 launches (which a CUDA graph replays).
        into: a graph builder to record the launches into instead of running them."""
        dt, L = self.dtype, self.L
        A, D, S = self.rows(m)
        unused = self.B[0]
        order, ctrl = self.order, self.ctrl
        self._into = into
        for l in range(L):
            last = l == L - 1
            inp = X if l == 0 else A[l - 1]
            n_out, n_in = self.W[l].shape
            self._launch(gemm(dt, False, True, GATHER_A if l == 0 else NO_GATHER, BIAS_ACT),
                         k.gemm_grid(m, n_out), inp, self.W[l], A[l], m, n_out, n_in, 1.0,
                         0.0, order, ctrl, self.B[l], S[l],
                         k.ACTIVATIONS["identity"] if last else self.acts[l])
        self._launch(output_step(dt, target_rows), (1, THREADS), A[L - 1], y, order, ctrl,
                     D[L - 1], self.acts[L - 1], out_kind, scale, divisor, self.losses)
        for l in range(L - 1, -1, -1):
            n_out, n_in = self.W[l].shape
            inp = X if l == 0 else A[l - 1]
            splits = k.split_count(n_out, n_in, m)
            self._launch(gemm(dt, True, False, GATHER_B if l == 0 else NO_GATHER, PLAIN,
                              splits > 1), k.gemm_grid(n_out, n_in, splits), D[l], inp,
                         self.GW[l], n_out, n_in, m, 1.0, 0.0, order, ctrl, unused, A[0], 0)
            if l > 0:
                self._launch(gemm(dt, False, False, NO_GATHER, TIMES_DERIVATIVE),
                             k.gemm_grid(m, n_in), D[l], self.W[l], D[l - 1], m, n_in,
                             n_out, 1.0, 0.0, order, ctrl, unused, S[l - 1],
                             self.acts[l - 1])
        self._launch(bias_grads(dt), k.grid_1d(self.n_bias), self.Dflat, self.doff,
                     self.width, self.goff, L, m, self.G)
        self._launch(update_all(dt, rule.kind), k.grid_1d(self.P.size), self.P, self.G,
                     self.S1, self.S2, self.n_weights, self.lrs, rule.momentum,
                     rule.beta_1, rule.beta_2, rule.epsilon, l2, self.sq, ctrl, self.batch)
        self._into = None

    # ---------------------------------------------------------------- the epoch's buffers
    def epoch_buffers(self, order, step_sizes):
        """The order, step sizes, step counters and loss sums of an epoch, in buffers that
        keep their device addresses from epoch to epoch (a graph holds them)."""
        n, steps = len(order), len(step_sizes)
        if self.order is None or self.order.size < n or self.losses.size < steps:
            self.order = cuda.device_array(n, np.int64)
            self.lrs = cuda.device_array(steps, np.float64)
            self.losses = cuda.device_array(steps, np.float64)
            self.sq = cuda.device_array(steps, np.float64)
            self.graphs.clear()                 # they hold the old addresses
        self.order[:n].copy_to_device(np.ascontiguousarray(order, np.int64))
        self.lrs[:steps].copy_to_device(np.asarray(step_sizes, np.float64))
        self.sq[:steps].copy_to_device(np.zeros(steps))
        self.ctrl.copy_to_device(np.zeros(2, np.int64))

    def graph(self, key, record):
        """The CUDA graph of one full minibatch step (record(builder) records it), made
        once per key; None where graphs are not available (the simulator, no cuda.core,
        ENGINE_CUDA_GRAPHS=0)."""
        if key not in self.graphs:
            device = _graph_device()
            if device is None:
                return None
            builder = device.create_graph_builder()
            builder.begin_building()
            record(builder)
            self.graphs[key] = (device, builder.end_building().complete())
        return self.graphs[key]


def _graph_device():
    """cuda.core's Device for graph capture and replay, or None where graphs are off."""
    import os
    if os.environ.get("ENGINE_CUDA_GRAPHS", "1") == "0" or k._SIM:
        return None
    try:
        from cuda.core import Device
        device = Device()
        device.set_current()
        device.create_graph_builder          # noqa: B018  (the API this needs)
        return device
    except Exception:
        return None


def _address(array):
    """Where a device array's data lives (the simulator's arrays have no address: their
    identity stands in; no graph is made there)."""
    try:
        return array.__cuda_array_interface__["data"][0]
    except AttributeError:
        return id(array)


def fused_epoch(backend, net, X, y, order, batch_size, rule, alpha, ws, batch_losses):
    """One epoch by CudaEpochPlan (see the module docstring); returns the minibatches
    trained (all, unless Ctrl-C asked for a stop). Full minibatches replay a CUDA graph of
    the step where graphs are available; the last, shorter one is launched directly."""
    from ..optimizers import STATE_ARRAYS
    n_state = STATE_ARRAYS[rule.kind]
    state = tuple((net.velocities, net.second_moments)[:n_state])
    plan = ws.prepared(("cuda-fused", net.weights, net.biases) + state,
                       lambda: CudaEpochPlan(net, batch_size))
    n = len(order)
    n_batches = -(-n // batch_size)
    rows = np.minimum(batch_size, n - batch_size * np.arange(n_batches)).astype(np.float64)
    plan.epoch_buffers(order, [float(rule._replace(t=rule.t + i + 1).step_size())
                               for i in range(n_batches)])
    plan.load(net, n_state)
    out_kind = k.OUTPUT_LOSS[net.output, net.loss]
    c = plan.sizes[-1]
    target_rows = len(y.shape) == 2

    # the step's settings: the same for every full minibatch of every epoch (its step
    # size and counters live on the device), so one recorded graph serves them all
    constants = rule._replace(t=0, learning_rate=0.0)

    def settings(m):
        divisor = float(m * c if out_kind in k.PER_ELEMENT else m)
        return (m, out_kind, k.delta_numerator(out_kind, c) / m, divisor, constants,
                float(alpha / m), target_rows)
    full = settings(batch_size)
    graph_key = (full, _address(X), _address(y))
    done = n_batches
    for i in range(n_batches):
        if interrupt.requested():               # Ctrl-C: stop at this boundary
            done = i
            break
        m = int(rows[i])
        graph = plan.graph(graph_key, lambda b: plan.step(X, y, *full, into=b)) \
            if m == batch_size else None
        if graph is None:
            plan.step(X, y, *(full if m == batch_size else settings(m)))
        else:
            graph[1].launch(graph[0].default_stream)
    backend.synchronize()
    plan.store(net, n_state)
    batch_losses[:done] = plan.losses[:n_batches].copy_to_host()[:done]
    if alpha:
        batch_losses[:done] += 0.5 * alpha * plan.sq[:n_batches].copy_to_host()[:done] \
            / rows[:done]
    return done
