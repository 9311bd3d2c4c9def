"""The engine side of a scikit-learn estimator: an engine `MLP` spoken to in scikit-learn's
terms (coefs as (n_in, n_out), intercepts), with its optimizer state.

The estimator keeps scikit-learn's attributes (`coefs_`, `intercepts_`) as NumPy arrays;
this object holds the backend's copy that training updates, and is rebuilt from those
attributes after unpickling.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

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
        net = self.model._net
        if keep_state and all(isinstance(w, np.ndarray) for w in net.weights):
            for w, b, c, i in zip(net.weights, net.biases, coefs, intercepts):
                w[...] = np.transpose(c)
                b[...] = i
        else:
            with self.model._lock:
                self.model._set_params([np.transpose(c) for c in coefs], list(intercepts),
                                       keep_state=keep_state)

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
        self.model._opt = {"optimizer": None, "t": 0, "samples": 0,
                           "epochs": self.model._opt.get("epochs", 0)}

    def optimizer_state(self, opt):
        """The step counters of optimizer `opt` (its arrays allocated on first use)."""
        return self.model._optimizer_state(opt)

    def state(self):
        """The optimizer's state as NumPy arrays (what a pickle keeps)."""
        net, be = self.model._net, self.backend
        host = (lambda arrays: None if arrays is None
                else [np.array(be.to_numpy(a)) for a in arrays])
        return {"opt": dict(self.model._opt), "velocities": host(net.velocities),
                "second_moments": host(net.second_moments)}

    def restore(self, state):
        net, be = self.model._net, self.backend
        dev = (lambda arrays: None if arrays is None else [be.asarray(a) for a in arrays])
        net.velocities = dev(state["velocities"])
        net.second_moments = dev(state["second_moments"])
        self.model._opt = dict(state["opt"])

    # ------------------------------------------------------------------ passes
    def train_epoch(self, X, T, order, batch_size, rule, alpha, losses, weights, dropout):
        """The backend's epoch over rows `order` of (X, T); returns the minibatches done."""
        model = self.model
        if ("train", batch_size) not in model._workspaces and len(model._workspaces) >= 4:
            # partial_fit on chunks of many sizes: keep a few workspaces, not one per size
            model._workspaces.clear()
        ws = model._workspace(batch_size)
        done = model.backend.train_epoch(model._net, X, T, order, batch_size, rule, alpha,
                                         ws, losses, None, weights, dropout)
        model.backend.synchronize()
        return len(losses) if done is None else int(done)

    def loss_and_grads(self, X, T, weights=None):
        """(mean loss, [dL/dW] (n_out, n_in), [dL/db]) over rows (X, T), as NumPy arrays,
        without the L2 term; weights: per-row sample weights."""
        model, be = self.model, self.backend
        m = X.shape[0]
        if sp.issparse(X):
            X = X.toarray()
        ws = model._workspace(m, "objective")
        be.gather_(be.asarray(np.ascontiguousarray(X, dtype=self.dtype)),
                   be.asarray(np.ascontiguousarray(T)), be.asarray(np.arange(m)), ws.x[:m],
                   ws.t[:m])
        if weights is not None:
            be.take_(be.asarray(np.asarray(weights, self.dtype)), be.asarray(np.arange(m)),
                     ws.w[:m])
        loss = be.loss_and_grads(model._net, ws, m, weighted=weights is not None)
        be.synchronize()
        return (float(loss), [np.array(be.to_numpy(g)) for g in ws.gw],
                [np.array(be.to_numpy(g)) for g in ws.gb])

    def whole_set(self, X, T, weights=None, chunk=8192):
        """(mean loss, [dL/dW], [dL/db]) over every row of (X, T), sample-weighted means
        with weights, without the L2 term; None when every weight is 0. On the native
        backend it is one pass in C: the BLAS-path epoch over chunks of rows with a step
        size of 0, whose reduction hook (EpochPlan.run(reduce=...)) adds up each chunk's
        gradients. Other backends, and sparse X, take the chunks one by one."""
        if self.backend.name != "native" or sp.issparse(X):
            return self._chunked(X, T, weights, chunk)
        from .. import _native
        from ..optimizers import StepRule
        model, be, net = self.model, self.backend, self.model._net
        n = X.shape[0]
        chunk = max(1, min(chunk, n))
        key = (chunk, id(net.weights), id(net.biases))
        if getattr(self, "_objective_key", None) != key:
            ws = be.workspace(net, chunk)
            gw = [np.zeros_like(w) for w in net.weights]
            gb = [np.zeros_like(b) for b in net.biases]
            plan = _native.EpochPlan(net.weights, net.biases, ws.a, ws.d, gb, ws.x, ws.t,
                                     net.activations, net.loss, None, gw, gemm="blas")
            self._objective, self._objective_key = (plan, gw, gb), key
        plan, gw, gb = self._objective
        sums = [np.zeros_like(g) for g in gw + gb]
        total = [0.0, 0.0]                     # weighted loss, weight

        def add(i, loss, weight):
            if weight > 0:
                for acc, g in zip(sums, gw + gb):
                    acc += weight * g
                total[0] += loss * weight
                total[1] += weight
            for g in gw + gb:                  # the step of size 0 must not meet a nan
                g[...] = 0
            return loss, (weight if weight > 0 else 1.0)
        X = np.ascontiguousarray(X, dtype=self.dtype)
        w = None if weights is None else np.ascontiguousarray(weights, dtype=self.dtype)
        plan.run(X, np.ascontiguousarray(T), np.arange(n, dtype=np.int64), 0.0, 0.0,
                 np.empty(-(-n // chunk)), rule=StepRule("sgd", 0.0), sample_weight=w,
                 reduce=add)
        if total[1] <= 0:
            return None
        k = len(gw)
        return (total[0] / total[1], [a / total[1] for a in sums[:k]],
                [a / total[1] for a in sums[k:]])

    def _chunked(self, X, T, weights, chunk):
        n = X.shape[0]
        w_all = None if weights is None else np.asarray(weights, np.float64)
        grand = float(n if w_all is None else w_all.sum())
        loss, gw, gb = 0.0, None, None
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            w = None if w_all is None else w_all[start:stop]
            share = ((stop - start) if w is None else float(w.sum())) / grand if grand else 0
            if share == 0.0:
                continue
            part, cw, cb = self.loss_and_grads(X[start:stop], T[start:stop], w)
            loss += share * part
            if gw is None:
                gw, gb = [share * g for g in cw], [share * g for g in cb]
            else:
                for acc, g in zip(gw + gb, cw + cb):
                    acc += share * g
        return None if gw is None else (loss, gw, gb)

