"""The model API: `MLP`, a thin layer over the backend contract."""
from __future__ import annotations

import warnings

import numpy as np

from . import checks, evaluation, fit_options, training
from .backends import backend_for
from .backends.base import TARGETS, Backend
from .history import History
from .model_persistence import Persistence
from .precision import BF16_MIXED, check_range
from .precision import check as precision_check
from .train_state import TrainState

INITS = ("normal", "he", "glorot")


def init_weights(sizes, init, init_scale, seed):
    """Float64 weights (n_out, n_in) and zero biases; the same draw for every dtype."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        if init == "normal":
            w = rng.normal(0.0, init_scale, size=(n_out, n_in))
        elif init == "he":
            w = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
        else:  # glorot (uniform)
            limit = np.sqrt(6.0 / (n_in + n_out))
            w = rng.uniform(-limit, limit, size=(n_out, n_in))
        weights.append(w)
    return weights, [np.zeros(n) for n in sizes[1:]]


class MLP(Persistence):
    """A fully connected network trained with minibatch SGD.

    Parameters
    ----------
    layer_sizes : [n_in, hidden..., n_classes]; any depth.
    hidden_activation : "sigmoid", "relu", "leaky_relu" (slope 0.01 below 0), "silu"
        (z * sigmoid(z)), "tanh" or "identity" (every hidden layer; engine/ops.py lists
        them).
    output_activation, loss : one of the pairs
        "sigmoid" + "mse" (labels; mean over batch x classes), "softmax" + "cross_entropy"
        (labels; mean over the batch), "identity" + "mse" (regression: real targets (n,) or
        (n, k)), "sigmoid" + "binary_cross_entropy" (0/1 indicators: binary with one output
        unit, multi-label with k), "exp" + "poisson" (count regression); formulas in
        engine/backends/numpy_backend.py.
    dtype : "float32" or "float64"; data is converted once, at the API boundary.
    backend : "auto", "numpy", "native" or "cuda", or a backend instance with its own
        options (e.g. ``engine.get_backend("native", gemm="tiles", threads=1)``).
    seed : seeds the initial weights and the shuffling.
    init : "normal" draws N(0, init_scale); "he" N(0, sqrt(2/fan_in)); "glorot"
        U(+-sqrt(6/(fan_in+fan_out))). Biases start at zero.
    precision : None (the dtype's own) or "bf16-mixed" (float32 models): training's
        products take bfloat16 operands with float32 sums, everything else stays float32
        (engine/precision.py); evaluation and predictions use the float32 weights.

    Raises
    ------
    ValueError, TypeError
        An unknown name, an output/loss pair that does not go together, sizes < 1, a
        backend that is not available (with why), bf16-mixed on a float64 model.

    Examples
    --------
    >>> import engine
    >>> engine.MLP([784, 100, 10], "sigmoid", "softmax", "cross_entropy", backend="numpy")
    MLP([784, 100, 10], hidden='sigmoid', output='softmax', loss='cross_entropy', dtype='float32', backend='numpy')
    """

    def __init__(self, layer_sizes, hidden_activation="sigmoid", output_activation="softmax",
                 loss="cross_entropy", *, dtype="float32", backend="auto", seed=1,
                 init="normal", init_scale=0.1, precision=None, _weights=None):
        self.layer_sizes = checks.layer_sizes(layer_sizes)
        checks.architecture(hidden_activation, output_activation, loss)
        checks.choice("init", init, INITS)
        checks.non_negative_float("init_scale", init_scale)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.loss = loss
        self.dtype = checks.dtype(dtype)
        self.precision = precision_check(precision, self.dtype)
        self.seed = int(seed)
        self.init, self.init_scale = init, float(init_scale)
        self.backend = backend_for(backend, self.layer_sizes)
        if self.precision == BF16_MIXED and \
                type(self.backend).gemm_bf16 is Backend.gemm_bf16:
            raise ValueError(f"precision='bf16-mixed' trains on the numpy and native "
                             f"backends; the {self.backend.name} backend has no bf16 products")
        init_ss, shuffle_ss = np.random.SeedSequence(self.seed).spawn(2)
        n_hidden = len(self.layer_sizes) - 2
        self.state = TrainState(self.backend, self.dtype,
                                (hidden_activation,) * n_hidden + (output_activation,), loss,
                                self.precision == BF16_MIXED, np.random.default_rng(shuffle_ss))
        self._lock = self.state.lock
        if _weights is None:            # (load passes the stored ones: no draw to throw away)
            weights, biases = init_weights(self.layer_sizes, init, init_scale, init_ss)
            self._check_finite_in_dtype(weights, biases, "init_scale gives initial weights")
            self.state.set_params(weights, biases)
        else:
            self.set_weights(*_weights)

    # ------------------------------------------------------------------ parameters
    @property
    def weights(self):
        """Copies of the weight matrices as NumPy arrays, each (n_out, n_in)."""
        return self.state.host_params()[0]

    @property
    def biases(self):
        """Copies of the bias vectors as NumPy arrays."""
        return self.state.host_params()[1]

    def set_params(self, weights, biases):
        """Deprecated name of `set_weights` (scikit-learn keeps set_params for
        hyperparameters); it will be removed in the next release."""
        warnings.warn("MLP.set_params(weights, biases) is deprecated; use set_weights",
                      DeprecationWarning, stacklevel=2)
        self.set_weights(weights, biases)

    def set_weights(self, weights, biases):
        """Replace every weight and bias. A fit running in another thread finishes first:
        its epochs are never silently discarded. The optimizer's state starts afresh.

        Parameters
        ----------
        weights : list of arrays, layer l of shape (layer_sizes[l + 1], layer_sizes[l])
        biases : list of arrays, layer l of shape (layer_sizes[l + 1],)

        Raises
        ------
        ValueError, TypeError
            Wrong count or shapes, complex or non-finite values, or values that overflow
            the model's dtype.

        Examples
        --------
        >>> import numpy as np, engine
        >>> model = engine.MLP([2, 1], "identity", "identity", "mse", backend="numpy")
        >>> model.set_weights([np.array([[1.0, 2.0]])], [np.array([0.5])])
        >>> model.predict([[1.0, 1.0]])
        array([[3.5]], dtype=float32)
        """
        sizes = self.layer_sizes
        if len(weights) != len(sizes) - 1 or len(biases) != len(sizes) - 1:
            raise ValueError(f"expected {len(sizes) - 1} weight matrices and bias vectors")
        for l, (w, b) in enumerate(zip(weights, biases)):
            if np.shape(w) != (sizes[l + 1], sizes[l]) or np.shape(b) != (sizes[l + 1],):
                raise ValueError(f"layer {l}: expected W {(sizes[l + 1], sizes[l])} and "
                                 f"b {(sizes[l + 1],)}; got {np.shape(w)} and {np.shape(b)}")
            for name, a in (("W", w), ("b", b)):
                kind = np.asarray(a).dtype.kind
                if kind not in "biuf":
                    raise TypeError(f"layer {l}: {name} must hold real numbers; got "
                                    f"{np.asarray(a).dtype}")
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ValueError(f"layer {l}: weights and biases must be finite")
        self._check_finite_in_dtype(weights, biases, "the weights")
        with self._lock:
            self.state.set_params(weights, biases)

    def _check_finite_in_dtype(self, weights, biases, what):
        """Finite values can still overflow the model's dtype (1e39 in float32)."""
        for l, (w, b) in enumerate(zip(weights, biases)):
            with np.errstate(over="ignore"):
                ok = np.isfinite(np.asarray(w).astype(self.dtype)).all() and \
                    np.isfinite(np.asarray(b).astype(self.dtype)).all()
            if not ok:
                raise ValueError(f"{what} of layer {l} overflow {self.dtype.name}: their "
                                 f"magnitude must stay below {np.finfo(self.dtype).max:.3g}")

    @property
    def n_params(self):
        s = self.layer_sizes
        return sum(a * b + b for a, b in zip(s[:-1], s[1:]))

    # ------------------------------------------------------------------ training
    def fit(self, X, y, **options) -> History:
        """Train with minibatches and return the `History`.

        Every epoch visits each row once, in a fresh random order when `shuffle`.
        The last minibatch of an epoch is kept even when it is shorter than
        `batch_size` (its gradient is the mean over its own rows). After each
        epoch the loss and accuracy over the whole training set (and over
        `validation_data`, an (X, y) pair) are recorded. With `diagnostics`,
        per-layer gradient norms, weight norms and dead/saturated unit fractions
        are recorded too (see `History.diagnostics`).

        optimizer: "sgd" (with `momentum`, and `nesterov=True` for Nesterov's form) or
        "adam" (`beta_1`, `beta_2`, `epsilon`); engine/optimizers.py writes out each step.
        The optimizer's state (velocities, Adam's moments and step count) belongs to the
        model: a later fit with the same optimizer carries on from it, `save` keeps it.
        alpha: L2 penalty on the weights (loss += alpha/2 * sum(W**2) / batch, gradient
        += alpha * W / batch; biases exempt). schedule: the learning rate per epoch:
        "constant", "invscaling" (learning_rate / (t + 1) ** power_t, t the samples seen),
        "adaptive" (divided by 5 when more than n_iter_no_change epochs fail to lower the
        training loss by tol; training stops when that happens at lr <= 1e-6), or a
        callable epoch -> lr.
        early_stopping: hold out `validation_fraction` of the rows (stratified by class,
        drawn from the model's seed) unless validation_data is given, stop once the
        validation loss has not improved by tol for more than n_iter_no_change epochs, and
        keep the weights of the best epoch (History.best_epoch, History.stop_reason).
        sample_weight: one weight >= 0 per row; each minibatch's loss and gradient become
        weighted means sum(w_i loss_i) / sum(w_i) (scikit-learn's convention, the L2 term
        divided by sum(w_i) too); the recorded losses and accuracies are weighted likewise.
        dropout: a drop rate in [0, 1) for every hidden layer, or one per hidden layer:
        inverted dropout in training only, its masks drawn from counters keyed by the
        model's seed, the epoch, the minibatch, the row and the unit (engine/dropout.py),
        so results are the same on every backend and thread count.
        on_divergence: "raise" (default) stops with engine.TrainingDiverged, naming the
        epoch, minibatch and learning rate, when a minibatch loss or the weights stop being
        finite, and leaves the model with the weights of the last epoch that ended finite;
        "continue" trains on regardless. A second thread's fit of the same model waits
        until this one ends.
        checkpoint: a path written atomically every `checkpoint_every` epochs (and at the
        end) with the weights, the optimizer's and the shuffling's state, the epochs done
        and the history; resume=True continues from it when it exists (else starts
        afresh), ending exactly where an uninterrupted fit of `epochs` epochs ends.

        Every option, its default and its constraint: engine/fit_options.py (checked
        once there, for every entry point; the Parameters below are generated from it).

        Returns
        -------
        History
            Losses, accuracies and times per epoch, and why training stopped.

        Raises
        ------
        ValueError, TypeError
            A bad option or bad data, before any step; the message names it.
        engine.TrainingDiverged
            A loss or weight stopped being finite (on_divergence="raise").
        KeyboardInterrupt
            Ctrl-C, at a minibatch boundary; the model stays usable.

        Examples
        --------
        >>> import engine
        >>> X, y, Xt, yt = engine.load_mnist_sample()
        >>> model = engine.MLP([784, 30, 10], "relu", backend="numpy", seed=1)
        >>> history = model.fit(X, y, epochs=2, learning_rate=0.1, progress=False)
        >>> history.epochs
        2
        """
        with self._lock:
            return training.fit(self, X, y, **options)

    fit.__signature__ = fit_options.signature(("self", "X", "y"))
    if fit.__doc__:                    # (python -OO strips docstrings)
        fit.__doc__ += "\n" + fit_options.numpydoc_parameters(indent="        ") + "\n"

    def epoch_runner(self, X, y, *, order=None, **options):
        """A callable training one epoch per call over (X, y) in a fixed order, returning the
        minibatch losses; X and y are checked and converted once (for benchmarks and
        step-by-step experiments). `options`: fit's batch_size, learning_rate, alpha,
        dropout and optimizer options. See engine.training.epoch_runner."""
        return training.epoch_runner(self, X, y, order=order, **options)

    epoch_runner.__signature__ = fit_options.signature(
        ("self", "X", "y"), training.RUNNER_OPTIONS, (("order", None),))

    @property
    def target_kind(self):
        """What y holds for this output/loss pair: "labels" (integer classes),
        "indicators" (0/1 per output unit) or "values" (real targets)."""
        return TARGETS[self.output_activation, self.loss]

    def check_xy(self, X, y, xname="X", yname="y"):
        """(X, y) checked against this model and converted as fit takes them: X (n,
        n_in) in the model's dtype; y labels (int64), 0/1 indicators or target values."""
        X = checks.features(X, self.layer_sizes[0], self.dtype, xname)
        if self.precision == BF16_MIXED:
            check_range(X, xname)
        if self.target_kind == "labels":
            y = checks.labels(y, X.shape[0], self.layer_sizes[-1], yname)
        else:
            y = checks.targets(y, X.shape[0], self.layer_sizes[-1], self.target_kind,
                               self.dtype, yname, non_negative=self.loss == "poisson")
        return X, y

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X):
        """Output activations: class probabilities, per-label probabilities, or (regression)
        the predicted values.

        Parameters
        ----------
        X : array of shape (n, n_in)
            Converted once to the model's dtype.

        Returns
        -------
        ndarray of shape (n, n_outputs)

        Raises
        ------
        ValueError, TypeError
            X of the wrong shape, not real numbers, or not finite.

        Examples
        --------
        >>> import engine
        >>> model = engine.MLP([4, 3, 2], backend="numpy")
        >>> model.predict_proba([[0.0, 1.0, 2.0, 3.0]]).shape
        (1, 2)
        """
        return evaluation.predict_proba(self, checks.features(X, self.layer_sizes[0],
                                                              self.dtype))

    def predict(self, X):
        """Predicted class labels (int64) for labels; 0/1 indicators (int64, one column per
        output unit) for binary_cross_entropy; the output values for regression.

        Parameters
        ----------
        X : array of shape (n, n_in)

        Returns
        -------
        ndarray of shape (n,) or (n, n_outputs)

        Raises
        ------
        ValueError, TypeError
            As predict_proba.

        Examples
        --------
        >>> import engine
        >>> model = engine.MLP([4, 3, 2], backend="numpy")
        >>> model.predict([[0.0, 1.0, 2.0, 3.0]]).dtype
        dtype('int64')
        """
        out = self.predict_proba(X)
        if self.target_kind == "labels":
            return np.argmax(out, axis=1)
        if self.target_kind == "indicators":
            return (out > 0.5).astype(np.int64)
        return out

    def evaluate(self, X, y, sample_weight=None):
        """The mean loss and the accuracy over (X, y).

        Parameters
        ----------
        X : array of shape (n, n_in)
        y : labels, 0/1 indicators or target values, as the model's output/loss pair takes
        sample_weight : array of shape (n,), optional
            Weighted means instead of plain ones.

        Returns
        -------
        dict
            {"loss": mean loss, "accuracy": fraction correct}; accuracy counts a row right
            when every label is (indicators), and is nan for regression.

        Raises
        ------
        ValueError, TypeError
            Data that does not fit the model (the message says what was expected).

        Examples
        --------
        >>> import engine
        >>> X, y, Xt, yt = engine.load_mnist_sample()
        >>> model = engine.MLP([784, 10, 10], backend="numpy")
        >>> sorted(model.evaluate(Xt, yt))
        ['accuracy', 'loss']
        """
        X, y = self.check_xy(X, y)
        w = checks.sample_weight(sample_weight, X.shape[0], self.dtype)
        loss, acc = evaluation.evaluate(self, self.backend.asarray(X), self.backend.asarray(y),
                                        weights=w)
        return {"loss": loss, "accuracy": acc}

    def loss_and_gradients(self, X, y):
        """The loss and its gradients on one batch (for checks and notebooks).

        Parameters
        ----------
        X : array of shape (n, n_in)
        y : labels, indicators or target values for the model's output/loss pair

        Returns
        -------
        tuple
            (loss, [dL/dW per layer], [dL/db per layer]) as a float and NumPy arrays.

        Raises
        ------
        ValueError, TypeError
            Data that does not fit the model.

        Examples
        --------
        >>> import numpy as np, engine
        >>> model = engine.MLP([3, 2], backend="numpy", dtype="float64")
        >>> loss, gw, gb = model.loss_and_gradients(np.ones((4, 3)), np.array([0, 1, 1, 0]))
        >>> gw[0].shape, gb[0].shape
        ((2, 3), (2,))
        """
        X, y = self.check_xy(X, y)
        be = self.backend
        m = X.shape[0]
        ws = self.state.workspace(m)
        be.gather_(be.asarray(X), be.asarray(y), be.asarray(np.arange(m)), ws.x[:m], ws.t[:m])
        loss = be.loss_and_grads(self.state.net, ws, m)
        be.synchronize()
        return (loss, [np.array(be.to_numpy(g)) for g in ws.gw],
                [np.array(be.to_numpy(g)) for g in ws.gb])

    def __repr__(self):
        bf16 = ", precision='bf16-mixed'" if self.precision == BF16_MIXED else ""
        return (f"MLP({self.layer_sizes}, hidden={self.hidden_activation!r}, "
                f"output={self.output_activation!r}, loss={self.loss!r}, "
                f"dtype={self.dtype.name!r}{bf16}, backend={self.backend.name!r})")
