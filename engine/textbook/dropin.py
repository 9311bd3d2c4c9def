"""`engine.NeuralNetMLP`: the textbook API of `engine.reference`, computed by backend kernels.

Same constructor, same public float64 attributes (which a caller may update in
place or rebind), same `forward`/`backward` results. On top of the textbook API:
`step` (one fused SGD step) and `fit` (the textbook's epochs as a configuration of the
engine's Trainer, engine/training.py: whole epochs in C on the native backend).
"""
from __future__ import annotations

import numpy as np

from .. import checks, training
from ..backends import Network, get_backend
from ..backends.base import Backend
from ..model import MLP
from ..optimizers import StepRule
from .reference import NeuralNetMLP as _TextbookMLP

_LAYERS = ("weight_h", "weight_out")
_BIASES = ("bias_h", "bias_out")
_ACTS = ("sigmoid", "sigmoid")
# The textbook's output gradient is 2 (a - onehot) / n: the engine's sigmoid + mse delta
# (the gradient of the mean over all n x C elements, 2 (a - onehot) / (n C)) times C. That
# factor lives here, as a scale on the delta and on the learning rate (the loss the
# textbook reports, the mean over elements, is mse's own), not in the kernels.


def _default_backend():
    try:
        return get_backend("native")
    except RuntimeError:
        return get_backend("numpy")


class NeuralNetMLP(_TextbookMLP):
    """The textbook's NeuralNetMLP with its kernels on an engine backend: features ->
    sigmoid hidden layer -> sigmoid outputs, float64 throughout, the same initial weights
    and the same numbers as engine.reference.NeuralNetMLP (to 1e-12).

    Parameters
    ----------
    num_features, num_hidden, num_classes : int
    random_seed : int, default=123
        Seeds the initial weights as the textbook does.
    backend : str or Backend, optional
        "native" (the default when built), "numpy", or a Backend instance whose arrays are
        NumPy arrays.

    Raises
    ------
    ValueError
        A backend that does not keep its arrays on the host (cuda).

    Examples
    --------
    >>> import numpy as np, engine
    >>> model = engine.NeuralNetMLP(num_features=4, num_hidden=3, num_classes=2,
    ...                             backend="numpy")
    >>> a_h, a_out = model.forward(np.ones((5, 4)))
    >>> a_out.shape
    (5, 2)
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
        self._trained = None      # the engine MLP that fit trains (made on the first fit)

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
                       loss="mse", dtype=np.dtype(np.float64))

    def forward(self, x):
        """The textbook's forward pass.

        Parameters
        ----------
        x : array of shape (n, num_features)

        Returns
        -------
        tuple
            (hidden activations (n, num_hidden), output activations (n, num_classes)).

        Raises
        ------
        ValueError
            x without num_features columns.

        Examples
        --------
        >>> import numpy as np, engine
        >>> a_h, a_out = engine.NeuralNetMLP(4, 3, 2, backend="numpy").forward(np.ones((1, 4)))
        >>> a_h.shape, a_out.shape
        ((1, 3), (1, 2))
        """
        be, net = self._backend, self._network()
        x = checks.features(x, np.shape(self.weight_h)[1], np.dtype(np.float64))
        acts = [np.empty((x.shape[0], w.shape[0])) for w in net.weights]
        be.forward(net, x, acts)
        return acts[0], acts[1]

    def backward(self, x, a_h, a_out, y):
        """The textbook's backward pass, with its output gradient 2 * (a_out - onehot) / n.

        Parameters
        ----------
        x : array of shape (n, num_features)
        a_h, a_out : the activations `forward` returned for x
        y : integer labels of shape (n,)

        Returns
        -------
        tuple
            (d_loss__dw_out, d_loss__db_out, d_loss__d_w_h, d_loss__d_b_h), the textbook's
            names and order.

        Raises
        ------
        ValueError
            Shapes that do not fit the network, labels outside [0, num_classes).

        Examples
        --------
        >>> import numpy as np, engine
        >>> model = engine.NeuralNetMLP(4, 3, 2, backend="numpy")
        >>> x, y = np.ones((2, 4)), np.array([0, 1])
        >>> [g.shape for g in model.backward(x, *model.forward(x), y)]
        [(2, 3), (2,), (3, 4), (3,)]
        """
        be, net = self._backend, self._network()
        x, y = self._checked(x, y)
        acts = [np.ascontiguousarray(a_h, dtype=np.float64),
                np.ascontiguousarray(a_out, dtype=np.float64)]
        n = x.shape[0]
        t = np.zeros((n, self.num_classes))
        t[np.arange(n), y] = 1.0
        deltas = [np.empty_like(a) for a in acts]
        gw = [np.empty_like(w) for w in net.weights]
        gb = [np.empty_like(b) for b in net.biases]
        be.output_delta(acts[1], t, deltas[1], "sigmoid", "mse")
        deltas[1] *= self.num_classes
        be.backward(net, x, acts, deltas, gw, gb)
        return gw[1], gb[1], gw[0], gb[0]

    def _epochs(self, X, y, order, learning_rate, minibatch_size):
        be, net = self._backend, self._network()
        ws = self._workspaces.get(minibatch_size)
        if ws is None:
            ws = self._workspaces[minibatch_size] = be.workspace(net, minibatch_size)
        n_batches = -(-len(order) // minibatch_size)
        losses = np.empty(n_batches)
        be.train_epoch(net, X, y, order, minibatch_size,
                       StepRule("sgd", learning_rate * self.num_classes), 0.0, ws, losses)
        return losses

    def _checked(self, X, y):
        """X and y checked as the engine's MLP checks them (finite, shapes, labels)."""
        X = checks.features(X, np.shape(self.weight_h)[1], np.dtype(np.float64))
        y = checks.labels(y, X.shape[0], self.num_classes)
        return X, np.ascontiguousarray(y, dtype=np.int64)

    def step(self, X, y, learning_rate=0.1):
        """One SGD step on the minibatch (X, y), updating the attributes in place.

        Parameters
        ----------
        X : array of shape (m, num_features)
        y : integer labels of shape (m,)
        learning_rate : float, default=0.1

        Returns
        -------
        float
            The minibatch's MSE before the update.

        Raises
        ------
        ValueError, TypeError
            Data that does not fit the network, a negative learning rate.

        Examples
        --------
        >>> import numpy as np, engine
        >>> model = engine.NeuralNetMLP(4, 3, 2, backend="numpy")
        >>> loss = model.step(np.ones((5, 4)), np.array([0, 1, 0, 1, 0]))
        >>> 0 < loss < 1
        True
        """
        X, y = self._checked(X, y)
        checks.non_negative_float("learning_rate", learning_rate)
        return float(self._epochs(X, y, np.arange(len(y)), learning_rate, len(y))[0])

    def fit(self, X, y, num_epochs=1, learning_rate=0.1, minibatch_size=100):
        """Epochs of plain SGD exactly as the textbook `train` loop runs them (shuffled with
        the global np.random, the last partial minibatch dropped), without its evaluation.

        Parameters
        ----------
        X : array of shape (n, num_features)
        y : integer labels of shape (n,)
        num_epochs : int, default=1
        learning_rate : float, default=0.1
        minibatch_size : int, default=100

        Returns
        -------
        ndarray
            The MSE of every minibatch (before its update).

        Raises
        ------
        ValueError, TypeError
            Bad data or settings, a minibatch larger than the data.

        Examples
        --------
        >>> import numpy as np, engine
        >>> model = engine.NeuralNetMLP(4, 3, 2, backend="numpy")
        >>> model.fit(np.ones((10, 4)), np.arange(10) % 2, num_epochs=2,
        ...           minibatch_size=5).shape
        (4,)
        """
        X, y = self._checked(X, y)
        num_epochs = checks.positive_int("num_epochs", num_epochs)
        minibatch_size = checks.positive_int("minibatch_size", minibatch_size)
        checks.non_negative_float("learning_rate", learning_rate)
        if minibatch_size > len(y):
            raise ValueError(f"minibatch_size={minibatch_size} is more than the {len(y)} rows: "
                             f"the textbook loop keeps only full minibatches")
        model = self._engine_model()
        options = dict(epochs=num_epochs, batch_size=minibatch_size,
                       learning_rate=learning_rate * self.num_classes, on_divergence="continue",
                       progress=False)
        try:
            history = training.fit(model, X, y, _TextbookHooks(len(y) // minibatch_size),
                                   **options)
        finally:                  # Ctrl-C too: the attributes keep the minibatches trained
            weights, biases = model.state.host_params()
            for name, trained in zip(_LAYERS + _BIASES, weights + biases):
                getattr(self, name)[...] = trained
        return np.asarray(history.batch_loss)

    def _engine_model(self):
        """The engine MLP that fit trains, holding the attributes' values now."""
        w_h, w_out, b_h, b_out = self._params()
        if self._trained is None:
            self._trained = MLP([w_h.shape[1], w_h.shape[0], self.num_classes],
                                "sigmoid", "sigmoid", "mse", dtype="float64",
                                backend=self._backend, _weights=([w_h, w_out], [b_h, b_out]))
            return self._trained
        net = self._trained.state.net
        for name, value, held in zip(_LAYERS + _BIASES, (w_h, w_out, b_h, b_out),
                                     net.weights + net.biases):
            if value.shape != held.shape:
                raise ValueError(f"{name} has shape {value.shape}; this network's is "
                                 f"{held.shape}")
            held[...] = value
        return self._trained


class _TextbookHooks(training.Hooks):
    """The textbook's `train` loop as a configuration of the engine's Trainer: each epoch a
    fresh permutation of the rows drawn from the global np.random, only its whole
    minibatches trained, every epoch run (no stopping rule, no divergence guard), and no
    scores, files or progress bar."""

    name = "textbook"
    writes_files = False

    def __init__(self, n_batches):
        self.batches = n_batches

    def check_data(self, model, X, y):
        return X, y                                 # NeuralNetMLP._checked ran already

    def n_batches(self, trainer):
        return self.batches

    def shuffle(self, trainer, order):
        order[:] = np.arange(order.size)
        np.random.shuffle(order)

    def epoch(self, trainer, order, rule, norms, drop):
        return super().epoch(trainer, order[:self.batches * trainer.batch_size], rule, norms,
                             drop)

    def evaluate(self, trainer, X, y, weights, stats=None):
        return float("nan"), float("nan")

    def epoch_done(self, trainer, epoch, history, losses):
        return None
