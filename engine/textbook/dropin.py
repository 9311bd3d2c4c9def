"""`engine.NeuralNetMLP`: the textbook API of `engine.reference`, computed by backend kernels.

Same constructor, same public float64 attributes (which a caller may update in
place or rebind), same `forward`/`backward` results. On top of the textbook API:
`step` (one fused SGD step) and `fit` (whole epochs in C on the native backend).
"""
from __future__ import annotations

import numpy as np

from .. import checks
from ..backends import Network, get_backend
from ..backends.base import Backend
from ..optimizers import StepRule
from .reference import NeuralNetMLP as _TextbookMLP

_LAYERS = ("weight_h", "weight_out")
_BIASES = ("bias_h", "bias_out")
_ACTS = ("sigmoid", "sigmoid")


def _default_backend():
    try:
        return get_backend("native")
    except RuntimeError:
        return get_backend("numpy")


class NeuralNetMLP(_TextbookMLP):
    """features -> sigmoid hidden layer -> sigmoid outputs; float64 throughout.

    backend: "native" (the default when built), "numpy", or a Backend instance whose
    arrays are NumPy arrays.
    """

    def __init__(self, num_features, num_hidden, num_classes, random_seed=123, *,
                 backend=None):
        super().__init__(num_features, num_hidden, num_classes, random_seed)
        be = _default_backend() if backend is None else get_backend(backend)
        if not isinstance(be, Backend) or be.name not in ("native", "numpy"):
            raise ValueError(f"NeuralNetMLP runs on a host backend ('native' or 'numpy'); "
                             f"got {getattr(be, 'name', be)!r}")
        self._backend = be
        self._workspaces = {}

    # The attributes stay plain float64 NumPy arrays; kernels need them contiguous.
    def _params(self):
        params = []
        for name in _LAYERS + _BIASES:
            value = getattr(self, name)
            if not (isinstance(value, np.ndarray) and value.dtype == np.float64
                    and value.flags.c_contiguous and value.flags.writeable):
                value = np.array(value, dtype=np.float64)
                setattr(self, name, value)
            params.append(value)
        return params

    def _network(self):
        w_h, w_out, b_h, b_out = self._params()
        return Network(weights=[w_h, w_out], biases=[b_h, b_out], activations=_ACTS,
                       loss="mse_ref", dtype=np.dtype(np.float64))

    def forward(self, x):
        """(hidden activations, output activations) for the rows of x."""
        be, net = self._backend, self._network()
        x = np.ascontiguousarray(x, dtype=np.float64)
        acts = [np.empty((x.shape[0], w.shape[0])) for w in net.weights]
        be.forward(net, x, acts)
        return acts[0], acts[1]

    def backward(self, x, a_h, a_out, y):
        """Gradients (d_loss__dw_out, d_loss__db_out, d_loss__d_w_h, d_loss__d_b_h)
        with the output gradient 2 * (a_out - onehot) / n."""
        be, net = self._backend, self._network()
        x = np.ascontiguousarray(x, dtype=np.float64)
        acts = [np.ascontiguousarray(a_h, dtype=np.float64),
                np.ascontiguousarray(a_out, dtype=np.float64)]
        n = x.shape[0]
        t = np.zeros((n, self.num_classes))
        t[np.arange(n), y] = 1.0
        deltas = [np.empty_like(a) for a in acts]
        gw = [np.empty_like(w) for w in net.weights]
        gb = [np.empty_like(b) for b in net.biases]
        be.output_delta(acts[1], t, deltas[1], "sigmoid", "mse_ref")
        be.backward(net, x, acts, deltas, gw, gb)
        return gw[1], gb[1], gw[0], gb[0]

    def _epochs(self, X, y, order, learning_rate, minibatch_size):
        be, net = self._backend, self._network()
        ws = self._workspaces.get(minibatch_size)
        if ws is None:
            ws = self._workspaces[minibatch_size] = be.workspace(net, minibatch_size)
        n_batches = -(-len(order) // minibatch_size)
        losses = np.empty(n_batches)
        be.train_epoch(net, X, y, order, minibatch_size, StepRule("sgd", learning_rate), 0.0,
                       ws, losses)
        return losses

    def _checked(self, X, y):
        """X and y checked as the engine's MLP checks them (finite, shapes, labels)."""
        X = checks.features(X, np.shape(self.weight_h)[1], np.dtype(np.float64))
        y = checks.labels(y, X.shape[0], self.num_classes)
        return X, np.ascontiguousarray(y, dtype=np.int64)

    def step(self, X, y, learning_rate=0.1):
        """One SGD step on the minibatch (X, y), updating the attributes in place.

        Returns the minibatch's MSE before the update."""
        X, y = self._checked(X, y)
        checks.non_negative_float("learning_rate", learning_rate)
        return float(self._epochs(X, y, np.arange(len(y)), learning_rate, len(y))[0])

    def fit(self, X, y, num_epochs=1, learning_rate=0.1, minibatch_size=100):
        """Epochs of plain SGD exactly as the textbook `train` loop runs them (shuffled with
        the global np.random, the last partial minibatch dropped), without its evaluation.

        Returns the MSE of every minibatch (before its update) as one array."""
        X, y = self._checked(X, y)
        num_epochs = checks.positive_int("num_epochs", num_epochs)
        minibatch_size = checks.positive_int("minibatch_size", minibatch_size)
        checks.non_negative_float("learning_rate", learning_rate)
        if minibatch_size > len(y):
            raise ValueError(f"minibatch_size={minibatch_size} is more than the {len(y)} rows: "
                             f"the textbook loop keeps only full minibatches")
        full = (len(y) // minibatch_size) * minibatch_size
        losses = []
        for _ in range(num_epochs):
            order = np.arange(len(y))
            np.random.shuffle(order)
            losses.append(self._epochs(X, y, order[:full], learning_rate, minibatch_size))
        return np.concatenate(losses)
