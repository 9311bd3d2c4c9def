"""The engine side of a scikit-learn estimator: an engine `MLP` spoken to in scikit-learn's
terms (coefs as (n_in, n_out), intercepts), with its optimizer state.

The estimator keeps scikit-learn's attributes (`coefs_`, `intercepts_`) as NumPy arrays;
this object holds the backend's copy that training updates, and is rebuilt from those
attributes after unpickling.
"""
from __future__ import annotations

import numpy as np

from ..model import MLP


class EngineNet:
    def __init__(self, layer_units, hidden, output, loss, dtype, backend, coefs, intercepts,
                 seed=0, precision=None):
        self.layer_units = list(layer_units)
        self.model = MLP(self.layer_units, hidden, output, loss, dtype=dtype,
                         backend=backend, seed=seed, precision=precision,
                         _weights=([np.transpose(c) for c in coefs], list(intercepts)))

    @property
    def backend(self):
        return self.model.backend

    @property
    def dtype(self):
        return self.model.dtype

    @property
    def precision(self):
        return self.model.precision

    # ------------------------------------------------------------------ parameters
    def load(self, coefs, intercepts, keep_state):
        """Put scikit-learn-layout parameters into the network (the optimizer's state is
        kept when keep_state). Host arrays are overwritten in place, so that prepared
        epochs stay valid."""
        net = self.model.state.net
        if keep_state and all(isinstance(w, np.ndarray) for w in net.weights):
            for w, b, c, i in zip(net.weights, net.biases, coefs, intercepts):
                w[...] = np.transpose(c)
                b[...] = i
        else:
            with self.model.state.lock:
                self.model.state.set_params([np.transpose(c) for c in coefs],
                                            list(intercepts), keep_state=keep_state)

    def params(self):
        """(coefs, intercepts) as new C-ordered NumPy arrays in scikit-learn's layout."""
        coefs = [np.ascontiguousarray(w.T) for w in self.model.weights]
        return coefs, self.model.biases

    def matches(self, coefs, intercepts):
        """Whether the network holds exactly these parameters."""
        mine, mine_b = self.params()
        return (len(coefs) == len(mine)
                and all(np.shape(c) == m.shape and np.array_equal(c, m)
                        for c, m in zip(coefs, mine))
                and all(np.array_equal(i, m) for i, m in zip(intercepts, mine_b)))

    # ------------------------------------------------------------------ optimizer state
    def reset_optimizer(self):
        """The next step starts a new optimizer: no velocities or moments, step count 0."""
        self.model.state.reset_optimizer()

    def state(self):
        """The optimizer's state as NumPy arrays (what a pickle keeps)."""
        net, be = self.model.state.net, self.backend
        host = (lambda arrays: None if arrays is None
                else [np.array(be.to_numpy(a)) for a in arrays])
        return {"opt": dict(self.model.state.counters), "velocities": host(net.velocities),
                "second_moments": host(net.second_moments)}

    def restore(self, state):
        self.model.state.restore_optimizer(state["opt"], state["velocities"],
                                           state["second_moments"])

    # ------------------------------------------------------------------ passes
    def train_epoch(self, X, T, order, batch_size, rule, alpha, losses, weights, dropout):
        """The backend's epoch over rows `order` of (X, T); returns the minibatches done."""
        model = self.model
        state = self.model.state
        ws = state.workspace(batch_size)
        done = model.backend.train_epoch(state.net, X, T, order, batch_size, rule, alpha,
                                         ws, losses, None, weights, dropout)
        model.backend.synchronize()
        return len(losses) if done is None else int(done)

    def whole_set(self, X, T, weights=None, chunk=8192):
        """(mean loss, [dL/dW] (n_out, n_in), [dL/db]) over every row of (X, T), sample-
        weighted means with weights, without the L2 term; None when every weight is 0
        (the backend's whole_set_loss_and_grads: one pass in C on the native backend)."""
        return self.backend.whole_set_loss_and_grads(self.model.state.net, X, T, weights, chunk)
