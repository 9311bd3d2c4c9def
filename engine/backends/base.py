"""The backend contract.

A backend owns the arrays and the kernels. The model never touches array
elements itself: it speaks only the methods below. `Backend` declares every
kernel and implements the composite operations (forward pass, backward pass,
a training step, a whole epoch) generically in terms of those kernels, so a
new backend only has to supply kernels; it overrides a composite where it can
do better (the native backend runs `train_epoch` without returning to Python).

Conventions shared by every backend (see DESIGN.md):
- weights are (n_out, n_in); a layer computes ``Z = A @ W.T + b``;
- ``*_`` methods work in place on their first argument;
- derivatives are taken from activation *outputs*, or, for the activations whose
  output does not determine z (ops.KEEPS_SLOPE: silu), from the slope act'(z) that a
  training step's forward pass keeps (Workspace.s);
- the ``1/n_batch`` factor lives in the output delta and nowhere else.
"""
from __future__ import annotations

import numpy as np

from .. import interrupt, ops
from ..dropout import minibatch_key
from ..optimizers import STATE_ARRAYS
from .buffers import Network, Workspace, batch_weight, keeps_slope  # noqa: F401

HIDDEN_ACTIVATIONS = tuple(ops.HIDDEN)
OUTPUT_ACTIVATIONS = tuple(ops.OUTPUT)
LOSSES = ops.LOSSES
# the output/loss pairs (engine/ops.py PAIRS), and what each trains on
OUTPUT_LOSS_PAIRS = tuple(ops.PAIRS)
TARGETS = {pair: p.targets for pair, p in ops.PAIRS.items()}
DTYPES = ("float32", "float64")


class Backend:
    """Base class: the kernel signatures, and composites built from them."""

    name = "base"

    # ------------------------------------------------------------------
    # availability
    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(available, reason). The reason says why not, or what was found."""
        return False, "abstract base class"

    # ------------------------------------------------------------------
    # array moves
    def asarray(self, x, dtype=None):
        """A backend array holding ``x`` (C-contiguous, of ``dtype`` if given)."""
        raise NotImplementedError

    def to_numpy(self, x):
        """A NumPy array with the contents of backend array ``x``."""
        raise NotImplementedError

    def empty(self, shape, dtype):
        raise NotImplementedError

    def zeros(self, shape, dtype):
        raise NotImplementedError

    def synchronize(self):
        """Wait until every queued kernel has finished (a no-op on the CPU)."""

    # ------------------------------------------------------------------
    # kernels
    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        """out = alpha * op(a) @ op(b) + beta * out, op transposing when asked."""
        raise NotImplementedError

    def bf16_rows(self, X):
        """X's rows in this backend's own bf16 form, for forward passes that read them
        again and again (a bf16-mixed fit's scores of its validation data each epoch), or
        None where the bf16 forward pass reads X as it is."""
        return None

    def gemm_bf16(self, a, b, out, trans_a=False, trans_b=False):
        """out = op(a) @ op(b) with a and b rounded to bfloat16 and the products summed in
        float32 (all float32): the products of a bf16-mixed training step."""
        raise NotImplementedError(f"the {self.name} backend has no bf16-mixed products "
                                  f"(precision='bf16-mixed' trains on numpy and native)")

    def bias_act_(self, z, bias, activation, slope=None):
        """z = activation(z + bias), in place; activation may be "softmax". For the
        activations of ops.KEEPS_SLOPE, slope (given in training) = activation'(z + bias)."""
        raise NotImplementedError

    def act_backward_(self, delta, a, activation):
        """``delta *= activation'(z)``, where ``a = activation(z)`` (for ops.KEEPS_SLOPE:
        a is the slope ``bias_act_`` kept); in place."""
        raise NotImplementedError

    def output_delta(self, a, t, out, output, loss, weights=None):
        """out = dL/dz of the output layer for activations a and targets t (one-hot for
        labels); weights: per-row sample weights (row i counts w_i / sum(w), not 1/n)."""
        raise NotImplementedError

    def loss(self, a, t, output, loss, weights=None):
        """The loss value (a float) of activations a against targets t; with per-row
        sample weights, sum(w_i loss_i) / sum(w)."""
        raise NotImplementedError

    def take_(self, values, index, out):
        """out = values[index] for 1-D values (the minibatch's sample weights)."""
        raise NotImplementedError

    def dropout_(self, a, rate, key, layer, row0=0):
        """Inverted dropout of hidden layer `layer`'s outputs a in place (rows row0, ... of
        the minibatch whose mask key is `key`): kept units times 1 / (1 - rate), the rest
        0; the masks are engine/dropout.py's."""
        raise NotImplementedError

    def dropout_backward_(self, delta, a, activation, rate, key, layer, row0=0):
        """delta *= the dropout mask times 1 / (1 - rate) times activation'(z), the
        derivative taken from the output before dropout (a times 1 - rate), or from the
        kept slope a (ops.KEEPS_SLOPE); in place."""
        raise NotImplementedError

    def bias_grad(self, delta, out):
        """out = column sums of delta."""
        raise NotImplementedError

    def optimizer_step_(self, param, grad, state, rule, l2=0.0):
        """One optimizer step of param in place with the gradient grad + l2 * param, by
        `rule` (an engine.optimizers.StepRule; its formulas are in that module). state: the
        rule's state arrays, updated in place: () for sgd, (velocity,) for momentum and
        nesterov, (m1, m2) for adam."""
        raise NotImplementedError

    def gather_(self, X, y, index, x_out, t_out):
        """x_out = X[index]; t_out = one_hot(y[index]) over t_out.shape[1] classes when y
        holds integer labels (1-D), t_out = y[index] when y holds target rows (2-D, the
        model's dtype). x_out None: the targets only."""
        raise NotImplementedError

    def alive_units(self, a):
        """A uint8 vector over the columns of a: 1 where some row is > 0.

        A ReLU unit that is never alive over a data set is dead.
        """
        raise NotImplementedError

    def saturated_count(self, a, activation, threshold=0.95):
        """How many entries of a lie within 1 - threshold of their activation's bound.

        sigmoid: |2a - 1| > threshold; tanh: |a| > threshold; others: 0.
        """
        raise NotImplementedError

    def sq_norm(self, x):
        """The squared Frobenius norm of x, as a float."""
        raise NotImplementedError

    # ------------------------------------------------------------------
    # composites, generic in terms of the kernels above
    def workspace(self, net: Network, batch_size: int) -> Workspace:
        sizes, dt = net.sizes, net.dtype
        return Workspace(
            batch_size=batch_size,
            x=self.empty((batch_size, sizes[0]), dt),
            t=self.empty((batch_size, sizes[-1]), dt),
            a=[self.empty((batch_size, n), dt) for n in sizes[1:]],
            d=[self.empty((batch_size, n), dt) for n in sizes[1:]],
            gw=[self.empty(w.shape, dt) for w in net.weights],
            gb=[self.empty(b.shape, dt) for b in net.biases],
            w=self.empty((batch_size,), dt),
            s=[self.empty((batch_size, n), dt) if keeps_slope(net, l) else None
               for l, n in enumerate(sizes[1:])],
        )

    def forward(self, net: Network, x, acts, dropout=None, bf16=False, slopes=None):
        """Fill acts[l] with the outputs of every layer for the input rows x; in training,
        dropout = (rate per layer, the minibatch's mask key) drops hidden units, bf16
        takes the products in bf16-mixed precision (gemm_bf16), and slopes (Workspace.s)
        receive the slopes that backward reads."""
        product = self.gemm_bf16 if bf16 else self.gemm
        inp = x
        for l, (w, b, act, out) in enumerate(zip(net.weights, net.biases, net.activations,
                                                 acts)):
            product(inp, w, out, trans_b=True)
            self.bias_act_(out, b, act, None if slopes is None else slopes[l])
            if dropout is not None and dropout[0][l] > 0:
                self.dropout_(out, dropout[0][l], dropout[1], l)
            inp = out

    def backward(self, net: Network, x, acts, deltas, gw, gb, dropout=None, bf16=False,
                 slopes=None):
        """Gradients of every layer, given the output delta in deltas[-1] (and the
        forward pass's dropout, if it had one; bf16 and slopes: as in `forward`).

        The input layer's delta is never formed: nothing consumes it.
        """
        product = self.gemm_bf16 if bf16 else self.gemm
        for l in range(len(net.weights) - 1, -1, -1):
            inp = x if l == 0 else acts[l - 1]
            product(deltas[l], inp, gw[l], trans_a=True)
            self.bias_grad(deltas[l], gb[l])
            if l > 0:
                product(deltas[l], net.weights[l], deltas[l - 1])
                # the derivative reads the outputs, or the slopes kept for it
                a = slopes[l - 1] if keeps_slope(net, l - 1) else acts[l - 1]
                if dropout is not None and dropout[0][l - 1] > 0:
                    self.dropout_backward_(deltas[l - 1], a, net.activations[l - 1],
                                           dropout[0][l - 1], dropout[1], l - 1)
                else:
                    self.act_backward_(deltas[l - 1], a, net.activations[l - 1])

    def loss_and_grads(self, net: Network, ws: Workspace, m: int, losses=None, slot=0,
                       weighted=False, dropout=None):
        """Forward and backward over the first m rows of ws.x/ws.t (weighted by ws.w when
        `weighted`; dropout: as `forward` takes it). The loss goes to losses[slot] when a
        loss buffer (see `loss_buffer`) is given, and is returned otherwise."""
        x, t = ws.x[:m], ws.t[:m]
        w = ws.w[:m] if weighted else None
        acts = [a[:m] for a in ws.a]
        deltas = [d[:m] for d in ws.d]
        slopes = [None if s is None else s[:m] for s in ws.s]
        self.forward(net, x, acts, dropout, net.bf16, slopes)
        if losses is None:
            value = self.loss(acts[-1], t, net.output, net.loss, w)
        else:
            value = None
            self.loss_into(acts[-1], t, net.output, net.loss, losses, slot, w)
        self.output_delta(acts[-1], t, deltas[-1], net.output, net.loss, w)
        self.backward(net, x, acts, deltas, ws.gw, ws.gb, dropout, net.bf16, slopes)
        return value

    # Hooks of the generic epoch: where the minibatch losses collect. On the host they go
    # straight into the caller's float64 array; a device backend keeps them on the device
    # and copies them back once per epoch.
    def loss_buffer(self, batch_losses, n):
        """Room for n minibatch losses (float64), later copied into batch_losses[:n]."""
        return batch_losses

    def loss_into(self, a, t, output, loss, losses, slot, weights=None):
        """losses[slot] = the loss value of activations a against targets t."""
        losses[slot] = self.loss(a, t, output, loss, weights)

    def copy_losses(self, losses, batch_losses, n):
        """Bring a loss buffer's n values into batch_losses (nothing to do on the host)."""

    def apply_gradients(self, net: Network, ws: Workspace, rule, alpha=0.0, m=1):
        """One optimizer step of every parameter from the gradients in ws; the weights'
        gradients get the L2 term alpha * W / m."""
        n_state = STATE_ARRAYS[rule.kind]
        params, grads = net.weights + net.biases, ws.gw + ws.gb
        n_weights = len(net.weights)
        for i, (p, g) in enumerate(zip(params, grads)):
            self.optimizer_step_(p, g, net.state(i, n_state), rule,
                                 alpha / m if i < n_weights else 0.0)

    def train_epoch(self, net: Network, X, y, order, batch_size, rule, alpha, ws: Workspace,
                    batch_losses, grad_norms=None, sample_weight=None, dropout=None,
                    reduce=None):
        """One epoch of minibatch training over the rows of X in the given order.

        rule: an engine.optimizers.StepRule whose t counts the steps taken before this
        epoch (each minibatch takes the next); alpha: the L2 penalty. Writes the loss of
        minibatch i (before its update, with its L2 term) into batch_losses[i]; the last,
        shorter batch is kept. ``order`` is an int64 NumPy array. With ``grad_norms`` (a
        float64 NumPy array, one entry per layer), adds each minibatch's Frobenius norm of
        dL/dW (without the L2 term) to it (diagnostics). sample_weight (a backend array,
        one per row of X): each minibatch's loss and gradient become weighted means, and
        the L2 term's batch size the minibatch's weight sum. dropout: (rate per layer,
        the epoch's mask key), engine/dropout.py. reduce: a callable run between each
        minibatch's gradients and its step: reduce(i, loss, weight, grads) gets the
        minibatch's mean loss (without the L2 term), its rows (or sample-weight sum, 0 when
        all are 0) and the arrays holding its gradients (ws.gw + ws.gb here; a backend may
        keep them in a layout of its own, so only elementwise changes are meaningful),
        may rewrite them in place, and returns the (loss, weight) to step with;
        data-parallel training sums the ranks' gradients there.
        Returns the minibatches trained: all, unless Ctrl-C asked for a stop
        (engine/interrupt.py).
        """
        if reduce is not None:
            return self._reduced_epoch(net, X, y, order, batch_size, rule, alpha, ws,
                                       batch_losses, sample_weight, dropout, reduce)
        n = len(order)
        n_batches = -(-n // batch_size)
        index = self.asarray(order, np.int64)       # moved once per epoch, not per batch
        losses = self.loss_buffer(batch_losses, n_batches)
        penalties = np.zeros(n_batches) if alpha else None
        host_weights = None if sample_weight is None else self.to_numpy(sample_weight)
        done = n_batches
        for i, start in enumerate(range(0, n, batch_size)):
            if interrupt.requested():               # Ctrl-C: stop at this boundary
                done = i
                break
            m = min(batch_size, n - start)
            weight = m
            if host_weights is not None:
                self.take_(sample_weight, index[start:start + m], ws.w[:m])
                weight = batch_weight(host_weights[order[start:start + m]], m)
            if alpha:
                penalties[i] = 0.5 * alpha * sum(self.sq_norm(w) for w in net.weights) / weight
            self.gather_(X, y, index[start:start + m], ws.x[:m], ws.t[:m])
            drop = None if dropout is None else \
                (dropout[0], minibatch_key(dropout[1], i))
            self.loss_and_grads(net, ws, m, losses, i, host_weights is not None, drop)
            if grad_norms is not None:
                for l, g in enumerate(ws.gw):
                    grad_norms[l] += self.sq_norm(g) ** 0.5
            self.apply_gradients(net, ws, rule._replace(t=rule.t + i + 1), alpha, weight)
        self.copy_losses(losses, batch_losses, n_batches)
        if alpha:
            batch_losses[:n_batches] += penalties
        return done

    def _reduced_epoch(self, net, X, y, order, batch_size, rule, alpha, ws, batch_losses,
                       sample_weight, dropout, reduce):
        """train_epoch with a reduction between each gradient and its step."""
        index = self.asarray(order, np.int64)
        host_weights = None if sample_weight is None else self.to_numpy(sample_weight)
        n = len(order)
        for i, start in enumerate(range(0, n, batch_size)):
            if interrupt.requested():
                return i
            m = min(batch_size, n - start)
            rows = float(m)
            if host_weights is not None:
                self.take_(sample_weight, index[start:start + m], ws.w[:m])
                rows = float(np.sum(host_weights[order[start:start + m]], dtype=np.float64))
            self.gather_(X, y, index[start:start + m], ws.x[:m], ws.t[:m])
            drop = None if dropout is None else (dropout[0], minibatch_key(dropout[1], i))
            loss = self.loss_and_grads(net, ws, m, None, 0, host_weights is not None, drop)
            penalty = 0.5 * alpha * sum(self.sq_norm(w) for w in net.weights) if alpha else 0.0
            loss, weight = reduce(i, float(loss), rows, ws.gw + ws.gb)
            weight = weight if weight > 0 else 1.0
            batch_losses[i] = loss + penalty / weight
            self.apply_gradients(net, ws, rule._replace(t=rule.t + i + 1), alpha, weight)
        return -(-n // batch_size)

    def whole_set_loss_and_grads(self, net: Network, X, y, sample_weight=None, chunk=8192):
        """(mean loss, [dL/dW], [dL/db]) over every row of host arrays X (NumPy, or SciPy
        sparse: densified a chunk at a time) and y (labels, or target rows in the model's
        dtype), a sample-weighted mean with sample_weight, without any L2 term, as NumPy
        arrays; None when every weight is 0. Chunks of rows through loss_and_grads, each
        weighted by its share; a backend may do it in one pass (native)."""
        n = X.shape[0]
        chunk = max(1, min(chunk, n))
        ws = self.workspace(net, chunk)
        w_all = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        grand = float(n if w_all is None else w_all.sum())
        loss, sums = 0.0, None
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            m = stop - start
            w = None if w_all is None else w_all[start:stop]
            share = (m if w is None else float(w.sum())) / grand if grand else 0.0
            if share == 0.0:
                continue
            Xc = X[start:stop]
            Xc = Xc.toarray() if hasattr(Xc, "toarray") else Xc
            rows = self.asarray(np.arange(m), np.int64)
            self.gather_(self.asarray(np.ascontiguousarray(Xc, dtype=net.dtype)),
                         self.asarray(np.ascontiguousarray(y[start:stop])), rows, ws.x[:m],
                         ws.t[:m])
            if w is not None:
                self.take_(self.asarray(np.asarray(w, net.dtype)), rows, ws.w[:m])
            part = float(self.loss_and_grads(net, ws, m, weighted=w is not None))
            self.synchronize()
            grads = [share * np.array(self.to_numpy(g)) for g in ws.gw + ws.gb]
            loss += share * part
            if sums is None:
                sums = grads
            else:
                for acc, g in zip(sums, grads):
                    acc += g
        if sums is None:
            return None
        k = len(net.weights)
        return loss, sums[:k], sums[k:]
