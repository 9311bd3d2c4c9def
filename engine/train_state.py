"""`TrainState`: everything training changes, and that a checkpoint keeps, in one object.

A model owns one (`MLP.state`); the trainer (engine/training.py), the model file, the
distributed fit and the scikit-learn estimators read and write the model's state through
it, never through the model's private attributes:

- `net`: the parameters (and the optimizer's state arrays) as backend arrays;
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


class TrainState:
    def __init__(self, backend, dtype, activations, loss, bf16, rng):
        self.backend, self.dtype = backend, dtype
        self.activations, self.loss, self.bf16 = tuple(activations), loss, bf16
        self.rng = rng
        self.order = None
        self.net = None
        self.counters = None
        self.workspaces = {}
        # a second thread's fit, save or weight change waits for the running fit (two
        # interleaved fits would lose each other's updates)
        self.lock = threading.RLock()

    def set_params(self, weights, biases, keep_state=False):
        """New parameter arrays (copied into the backend's); the optimizer's state starts
        afresh unless keep_state."""
        be, dt = self.backend, self.dtype
        old = self.net
        self.net = Network(
            # copies: training must never write into an array the caller still holds
            weights=[be.asarray(np.array(w, dtype=dt)) for w in weights],
            biases=[be.asarray(np.array(b, dtype=dt)) for b in biases],
            activations=self.activations, loss=self.loss, dtype=dt, bf16=self.bf16)
        if keep_state and old is not None:
            self.net.velocities, self.net.second_moments = old.velocities, old.second_moments
        else:
            self.reset_optimizer()
        self.workspaces = {}

    def reset_optimizer(self):
        """The next step starts a new optimizer: no state arrays, no steps taken (the
        epochs trained still count: they key the dropout masks)."""
        epochs = self.counters["epochs"] if self.counters else 0
        self.counters = {"optimizer": None, "t": 0, "samples": 0, "epochs": epochs}

    def optimizer_state(self, opt):
        """The counters of optimizer `opt`, with the state arrays it needs allocated. The
        same optimizer as last time carries on where it stopped; another starts afresh."""
        if self.counters["optimizer"] != opt:
            be, net = self.backend, self.net
            params = net.weights + net.biases
            net.velocities = ([be.zeros(p.shape, net.dtype) for p in params]
                              if opt.n_state >= 1 else None)
            net.second_moments = ([be.zeros(p.shape, net.dtype) for p in params]
                                  if opt.n_state == 2 else None)
            self.counters = {"optimizer": opt, "t": 0, "samples": 0,
                             "epochs": self.counters["epochs"]}
        return self.counters

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
        """Whether every weight is finite (the divergence guard's check)."""
        return all(np.isfinite(self.backend.sq_norm(w)) for w in self.net.weights)
