"""`TrainState`: everything training changes, and that a checkpoint keeps, in one object.

A model owns one (`MLP.state`); the trainer (engine/training.py), the model file, the
distributed fit and the scikit-learn estimators read and write the model's state through
it, never through the model's private attributes:

- `net`: the parameters (and the optimizer's state arrays) as backend arrays: views of one
  flat buffer, `buffer` (weights, then biases, then each state array in the same order),
  so that a whole-model operation (an average across ranks, a norm) is one operation;
- `counters`: which optimizer the state arrays belong to, and its steps `t` (Adam's bias
  correction), `samples` seen (inverse scaling) and `epochs` trained (dropout keys);
- `rng` and `order`: the shuffling generator and the row order the last epoch visited;
- `workspaces`: the buffers a step writes, one per (purpose, batch size);
- `lock`: one fit at a time per model.
"""
from __future__ import annotations

import threading

import numpy as np

from .backends import Network
from .backends.buffers import carve


class TrainState:
    def __init__(self, backend, dtype, activations, loss, bf16, rng):
        self.backend, self.dtype = backend, dtype
        self.activations, self.loss, self.bf16 = tuple(activations), loss, bf16
        self.rng = rng
        self.order = None
        self.net = None
        self.buffer = None
        self.counters = None
        self.workspaces = {}
        # a second thread's fit, save or weight change waits for the running fit (two
        # interleaved fits would lose each other's updates)
        self.lock = threading.RLock()

    def set_params(self, weights, biases, keep_state=False):
        """New parameter values (copied into a new buffer: training must never write into
        an array the caller still holds); the optimizer's state starts afresh unless
        keep_state."""
        old = self.net
        params = [np.asarray(p, dtype=self.dtype) for p in list(weights) + list(biases)]
        state = []
        if keep_state and old is not None:
            state = [[self.backend.to_numpy(a) for a in arrays]
                     for arrays in (old.velocities, old.second_moments) if arrays is not None]
        w, b, v, m = self._allocate(params, state, len(weights))
        self.net = Network(weights=w, biases=b, activations=self.activations, loss=self.loss,
                           dtype=self.dtype, bf16=self.bf16, velocities=v, second_moments=m,
                           flat=self.buffer)
        if not (keep_state and old is not None):
            self.reset_optimizer()
        self.workspaces = {}

    def _allocate(self, params, state, n_weights):
        """A new buffer holding params (NumPy arrays) and `state` (lists of NumPy arrays,
        one list per state kind); (weights, biases, velocities, second moments) as views
        of it (None for the state kinds not given)."""
        be, dt = self.backend, self.dtype
        shapes = [p.shape for p in params]
        host = np.concatenate([np.ravel(a) for a in params + sum(state, [])]).astype(dt) \
            if params else np.zeros(0, dt)
        self.buffer = be.asarray(host)
        views, end = carve(self.buffer, shapes)
        kinds = [carve(self.buffer, shapes, end * (k + 1))[0] for k in range(len(state))] \
            + [None, None]
        return views[:n_weights], views[n_weights:], kinds[0], kinds[1]

    def reset_optimizer(self):
        """The next step starts a new optimizer: no state arrays, no steps taken (the
        epochs trained still count: they key the dropout masks)."""
        epochs = self.counters["epochs"] if self.counters else 0
        self.counters = {"optimizer": None, "t": 0, "samples": 0, "epochs": epochs}

    def optimizer_state(self, opt):
        """The counters of optimizer `opt`, with the state arrays it needs allocated. The
        same optimizer as last time carries on where it stopped; another starts afresh."""
        if self.counters["optimizer"] != opt:
            self._rebuild([None] * opt.n_state)
            self.counters = {"optimizer": opt, "t": 0, "samples": 0,
                             "epochs": self.counters["epochs"]}
        return self.counters

    def restore_optimizer(self, counters, velocities, second_moments):
        """The optimizer's counters and state arrays (lists of NumPy arrays, or None) saved
        earlier, back in a buffer with the parameters."""
        self._rebuild([arrays for arrays in (velocities, second_moments) if arrays is not None])
        self.counters = dict(counters)

    def _rebuild(self, state):
        """A new buffer: the parameters as they are, then one state kind per entry of
        `state` (a list of NumPy arrays, one per parameter, or None: zeros). The same
        Network holds the new views (plans prepared for the old arrays compare them by
        identity, and are rebuilt)."""
        net = self.net
        params = [np.array(self.backend.to_numpy(p)) for p in net.weights + net.biases]
        state = [[np.zeros_like(p) for p in params] if arrays is None
                 else [np.asarray(a) for a in arrays] for arrays in state]
        net.weights, net.biases, net.velocities, net.second_moments = self._allocate(
            params, state, len(net.weights))
        net.flat = self.buffer
        net.prepared.clear()

    def row_order(self, n):
        """The order the last epoch visited n rows in, shuffled further by the next epoch:
        a fit of 2 + 2 epochs visits the rows as one of 4 does. A new n starts in order."""
        if self.order is None or self.order.size != n:
            self.order = np.arange(n)
        return self.order

    def workspace(self, batch_size, purpose="train"):
        """The step buffers for minibatches of batch_size rows (allocated once)."""
        key = (purpose, batch_size)
        ws = self.workspaces.get(key)
        if ws is None:
            # partial_fit on chunks of many sizes: a few training workspaces, not one per
            # size (evaluation passes already come in a few power-of-two sizes)
            same = [k for k in self.workspaces if k[0] == purpose == "train"]
            if len(same) >= 4:
                for k in same:
                    del self.workspaces[k]
            ws = self.workspaces[key] = self.backend.workspace(self.net, batch_size)
        return ws

    def forget_data(self):
        """A fit starts or ends: drop the backends' copies of training rows (the same array
        may hold other numbers by the next fit, and they take memory)."""
        for ws in self.workspaces.values():
            ws.data = None

    def data_copy(self, X):
        """The backend's own copy of the training rows X made in this fit (native bf16: the
        packed rows its epoch reads), or None."""
        for ws in self.workspaces.values():
            if ws.data is not None and ws.data[0] is X:
                return ws.data[1]
        return None

    def host_params(self):
        """(weights, biases): copies as NumPy arrays."""
        be = self.backend
        be.synchronize()
        return ([np.array(be.to_numpy(w)) for w in self.net.weights],
                [np.array(be.to_numpy(b)) for b in self.net.biases])

    def params_finite(self):
        """Whether every weight and bias is finite (the divergence guard's check): one pass
        over the buffer's parameters."""
        n = sum(int(np.prod(p.shape)) for p in self.net.weights + self.net.biases)
        return bool(np.isfinite(self.backend.sq_norm(self.buffer[:n])))
