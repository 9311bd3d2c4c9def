"""The per-step halves of engine.distributed: synchronous SGD's gradient all-reduce (the
reduction hook of the backend's epoch), local SGD's parameter averaging, scores summed
over the ranks, and the broadcast of rank 0's parameters."""
from __future__ import annotations

import numpy as np

# the buffer's two slots after the gradients: the summed loss and the rows (or weights)
EXTRA_SLOTS = 2


class _GradientAllreduce:
    """Synchronous SGD: per step, the gradient of every rank's rows, summed by one
    Allreduce of one flat buffer, between the gradient and the step of the backend's epoch
    (train_epoch(reduce=...): on the native backend the C epoch, tiles or BLAS, calls
    back). The workspace's gradient arrays are views into that buffer (then the loss and
    the row count), so a step allocates nothing."""

    def __init__(self, MPI, comm, model, batch_size, steps, alpha, data):
        be, net = model.backend, model.state.net
        if be.name not in ("numpy", "native"):
            raise ValueError(f"distributed training runs on the numpy or native backend; "
                             f"this model's is {be.name!r}")
        self.MPI, self.comm, self.model = MPI, comm, model
        self.batch_size, self.alpha, self.data = batch_size, alpha, data
        self.n_steps = steps
        self.flat = np.zeros(sum(p.size for p in net.weights + net.biases) + EXTRA_SLOTS,
                             dtype=net.dtype)
        self.grads = self.flat[:-EXTRA_SLOTS]
        views, start = [], 0
        for p in net.weights + net.biases:
            views.append(self.flat[start:start + p.size].reshape(p.shape))
            start += p.size
        self.ws = be.workspace(net, batch_size)
        self.ws.gw, self.ws.gb = views[:len(net.weights)], views[len(net.weights):]
        self.views = views

    def epoch(self, order, rule, drop, losses):
        be, net = self.model.backend, self.model.state.net
        X, y, w = self.data
        done = 0
        if order.size:
            # one rank: its gradient is the global one, and the epoch runs unhooked
            reduce = self.reduce if self.comm.Get_size() > 1 else None
            done = be.train_epoch(net, X, y, order, self.batch_size, rule, self.alpha,
                                  self.ws, losses, None, w, drop, reduce=reduce)
        for k in range(done, self.n_steps):     # this shard ran out before the others
            losses[k] = self.empty_step(rule._replace(t=rule.t + k + 1))

    def reduce(self, i, loss, weight, grads):
        """This rank's mean loss and gradient (in the buffer: the workspace's gradients
        `grads` are views into it) over rows weighing `weight` become the global ones:
        sums, one Allreduce, divided by the global weight, which it returns with the loss
        (an all-zero minibatch counts 1: a zero step)."""
        flat = self.flat
        if weight > 0:
            self.grads *= weight        # the local mean back into a sum
            flat[-2], flat[-1] = loss * weight, weight
        else:
            flat[...] = 0
        self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        total = float(flat[-1])
        total = total if total > 0 else 1.0
        self.grads /= flat.dtype.type(total)
        return float(flat[-2]) / total, total

    def empty_step(self, rule):
        """A step of a rank without rows: it adds nothing to the sums, and steps with the
        others' gradient; returns the global minibatch's loss."""
        be, net = self.model.backend, self.model.state.net
        loss, total = self.reduce(None, 0.0, 0.0, self.views)
        if self.alpha:
            loss += 0.5 * self.alpha * sum(be.sq_norm(W) for W in net.weights) / total
        be.apply_gradients(net, self.ws, rule, self.alpha, total)
        return loss


class _LocalSGD:
    """sync_every=k: rounds of k local minibatches per rank through the backend's own
    epoch, then one Allreduce of every parameter and optimizer-state array, each times the
    rows (or sample weight) the rank trained, divided by their sum. The L2 penalty is
    shared out between the ranks that trained, so that with k = 1 a linear step (SGD,
    momentum, Nesterov) equals the synchronous one."""

    def __init__(self, MPI, comm, model, batch_size, steps, alpha, data, k, counts):
        be = model.backend
        if be.name not in ("numpy", "native"):
            raise ValueError(f"distributed training runs on the numpy or native backend; "
                             f"this model's is {be.name!r}")
        self.MPI, self.comm, self.model, self.k = MPI, comm, model, k
        self.batch_size, self.alpha, self.data, self.counts = batch_size, alpha, data, counts
        self.flat = None
        self.n_steps = -(-steps // k)            # rounds
        self.local = np.empty(k)
        self.ws = model.state.workspace(batch_size)

    def _buffer(self):
        """Room for the model's whole buffer (parameters and optimizer state, which exists
        once the state was asked for, before the first epoch) and the two slots."""
        params = self.model.state.buffer
        if self.flat is None or self.flat.size != params.size + EXTRA_SLOTS:
            self.flat = np.zeros(params.size + EXTRA_SLOTS, dtype=params.dtype)
        return self.flat

    def epoch(self, order, rule, drop, out):
        be, net = self.model.backend, self.model.state.net
        X, y, w = self.data
        span = self.k * self.batch_size
        for j in range(self.n_steps):
            flat = self._buffer()
            rows = order[j * span:(j + 1) * span]
            m = rows.shape[0]
            # the ranks that train in this round share the L2 penalty
            active = sum(1 for c in self.counts if c > j * span)
            flat[...] = 0
            if m:
                n_local = -(-m // self.batch_size)
                losses = self.local[:n_local]
                be.train_epoch(net, X, y, np.ascontiguousarray(rows), self.batch_size,
                               rule._replace(t=rule.t + j * self.k), self.alpha / active,
                               self.ws, losses, None, w, drop)
                weight = float(m if w is None else be.to_numpy(w)[rows].sum())
                flat[:-EXTRA_SLOTS] = self.model.state.buffer
                flat[:-EXTRA_SLOTS] *= weight
                flat[-2] = float(np.mean(losses)) * weight
                flat[-1] = weight
            self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
            total = float(flat[-1]) or 1.0
            flat /= flat.dtype.type(total)
            self.model.state.buffer[...] = flat[:-EXTRA_SLOTS]
            out[j] = float(flat[-2])


def _evaluate(MPI, comm, model, X, y, w):
    """(loss, accuracy) over every rank's rows: each rank's sums, added up (a bf16-mixed
    fit's with bf16 products, as MLP.fit scores it)."""
    from .evaluation import evaluate
    from .precision import BF16_MIXED
    n = X.shape[0]
    local = np.zeros(3)                 # weighted loss sum, weighted correct count, weight
    if n:
        loss, acc = evaluate(model, model.backend.asarray(X), model.backend.asarray(y),
                             weights=w, bf16=model.precision == BF16_MIXED)
        weight = float(n if w is None else np.sum(w, dtype=np.float64))
        local[:] = (loss * weight, (acc if acc == acc else 0.0) * weight, weight)
    comm.Allreduce(MPI.IN_PLACE, local, op=MPI.SUM)
    if not local[2]:
        return float("nan"), float("nan")
    acc = local[1] / local[2] if model.target_kind != "values" else float("nan")
    return float(local[0] / local[2]), float(acc)


def _unflatten(model, flat):
    weights, biases, start = [], [], 0
    for w in model.weights:
        weights.append(flat[start:start + w.size].reshape(w.shape))
        start += w.size
    for b in model.biases:
        biases.append(flat[start:start + b.size].copy())
        start += b.size
    model.state.set_params(weights, biases, keep_state=True)
