"""What engine.sklearn's MLPClassifier and MLPRegressor share: scikit-learn's
BaseMultilayerPerceptron with the engine doing the training (the fit, the first draw of
the weights, the engine network behind the estimator, the forward pass scikit-learn's
scoring uses)."""
from __future__ import annotations

from numbers import Real

import warnings

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import _check_sample_weight, validate_data

from ..backends import backend_for
from ..backends.numpy_backend import ACTIVATIONS
from .network import EngineNet
from .solvers import fit_lbfgs, fit_stochastic


STOCHASTIC_SOLVERS = ("sgd", "adam")
# scikit-learn's activation names -> the engine's
ENGINE_ACTIVATION = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
                     "relu": "relu", "softmax": "softmax", "exp": "exp"}
# scikit-learn's output activation -> the engine's output/loss pair
ENGINE_PAIR = {"identity": ("identity", "squared_error"), "exp": ("exp", "poisson"),
               "softmax": ("softmax", "cross_entropy"),
               "logistic": ("sigmoid", "binary_cross_entropy")}

_ENGINE_CONSTRAINTS = {
    "backend": "no_validation",            # get_backend checks it, naming the choices
    "dropout": [None, Interval(Real, 0, 1, closed="left"), "array-like"],
    "precision": [None, StrOptions({"bf16-mixed"})],
}


class _EngineMLP(BaseEstimator):
    """What the classifier and the regressor share: scikit-learn's BaseMultilayerPerceptron
    with the engine doing the training."""

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if self.precision == "bf16-mixed":      # float32 master weights (engine/precision.py)
            X = X.astype(np.float32)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        else:
            layer_units = self._fitted_units(hidden)
        net = self._engine_net(layer_units)
        if self.solver not in STOCHASTIC_SOLVERS and np.any(np.asarray(
                self.dropout if self.dropout is not None else 0.0, dtype=float) > 0):
            warnings.warn(f"dropout={self.dropout!r} is ignored by solver='{self.solver}': "
                          f"L-BFGS needs a deterministic objective; dropout trains with "
                          f"solver='sgd' or 'adam'", UserWarning)
        if self.solver in STOCHASTIC_SOLVERS:
            fit_stochastic(self, net, X, y, sample_weight, incremental)
        else:
            fit_lbfgs(self, net, X, y, sample_weight)
        self.coefs_, self.intercepts_ = net.params()
        if not all(np.isfinite(p).all() for p in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data "
                             "may contain large values and need to be preprocessed.")
        return self

    def _initialize(self, y, layer_units, dtype):
        """First fit: scikit-learn's Glorot-uniform draws (coef, then intercept, layer by
        layer) and the bookkeeping its solvers start from."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(coef.astype(dtype, copy=False))
            self.intercepts_.append(intercept.astype(dtype, copy=False))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        self._net = self._net_state = self._solver_lr = None

    def _fitted_units(self, hidden):
        """A warm start trains the network that coefs_ holds, as scikit-learn does: a
        hidden_layer_sizes changed by set_params since it was fitted is not applied (its
        widths), or refused with a ValueError (its depth, where scikit-learn's own fit
        fails with an AttributeError)."""
        fitted = [c.shape[0] for c in self.coefs_] + [self.coefs_[-1].shape[1]]
        if len(fitted) != len(hidden) + 2:
            raise ValueError(f"warm_start=True continues the fitted network of "
                             f"{len(fitted) - 2} hidden layers {tuple(fitted[1:-1])}, but "
                             f"hidden_layer_sizes={tuple(hidden)} asks for {len(hidden)}; "
                             f"set warm_start=False (or fit a new estimator) to start afresh")
        if fitted[-1] != self.n_outputs_:
            raise ValueError(f"warm_start=True continues the fitted network of "
                             f"{fitted[-1]} outputs; these targets need {self.n_outputs_}")
        return fitted

    def _engine_net(self, layer_units):
        """The engine network holding coefs_ and intercepts_ (made, or brought in line with
        them when the user changed them or the backend parameter)."""
        backend = backend_for(self.backend, layer_units)
        dtype = self.coefs_[0].dtype
        net = getattr(self, "_net", None)
        precision = getattr(self, "precision", None)
        hidden = ENGINE_ACTIVATION[self.activation]
        out, loss = ENGINE_PAIR[self.out_activation_]
        same_shape = (net is not None and net.layer_units == layer_units and net.dtype == dtype
                      and net.backend is backend)
        if not (same_shape and net.precision == (precision or dtype.name)
                and (net.model.hidden_activation, net.model.output_activation,
                     net.model.loss) == (hidden, out, loss)):
            # a new network whenever an architecture parameter changed (set_params between
            # warm-start fits): scikit-learn keeps its optimizer's state across that, so the
            # old network's state comes along when the shapes still fit
            state = getattr(self, "_net_state", None) or (net.state() if same_shape else None)
            net = EngineNet(layer_units, hidden, out, loss, dtype, backend, self.coefs_,
                            self.intercepts_, precision=precision)
            if state is not None:
                net.restore(state)
            self._net, self._net_state = net, None
        elif not net.matches(self.coefs_, self.intercepts_):
            net.load(self.coefs_, self.intercepts_, keep_state=True)
        return net

    def _dropout_seed(self):
        """The key of the dropout masks: drawn from the RandomState only when dropout is
        on, so that without it the draws stay scikit-learn's."""
        if self.dropout is None:
            return 0
        return int(self._random_state.randint(0, 2 ** 31 - 1))

    def _engine_targets(self, Y):
        """scikit-learn's 2-D targets in the form the engine's output/loss pair trains on:
        class numbers for softmax, rows of the network's dtype otherwise."""
        if self.out_activation_ == "softmax":
            return np.ascontiguousarray(np.argmax(Y, axis=1), dtype=np.int64)
        return np.ascontiguousarray(Y, dtype=self.coefs_[0].dtype)

    # ------------------------------------------------------------------ prediction
    def _forward(self, X, coefs=None, intercepts=None):
        """The output layer's activations for validated X (NumPy, as scikit-learn's
        _forward_pass_fast)."""
        coefs = self.coefs_ if coefs is None else coefs
        intercepts = self.intercepts_ if intercepts is None else intercepts
        hidden = ACTIVATIONS[ENGINE_ACTIVATION[self.activation]]
        act = X
        for i, (c, b) in enumerate(zip(coefs, intercepts)):
            act = safe_sparse_dot(act, c)
            act += b
            if i < len(coefs) - 1:
                hidden(act)
        ACTIVATIONS[ENGINE_ACTIVATION[self.out_activation_]](act)
        return act

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return self._forward(X)

    def _score_with_params(self, coefs, intercepts, X, y, sample_weight):
        """The early-stopping score (accuracy or R^2) of these parameters; nan when the
        predictions are not finite."""
        y_pred = self._predictions(self._forward(X, coefs, intercepts))
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_params(self.coefs_, self.intercepts_, X, y, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (scikit-learn's signature and
        meaning); float32 X trains in float32, anything else in float64."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "%s is not stochastic." % self.solver)
        return True

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = super().__getstate__()
        net = state.pop("_net", None)
        if net is not None:            # the optimizer's state travels as NumPy arrays
            state["_net_state"] = net.state()
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _constraints(sk_class):
    return {**sk_class._parameter_constraints, **_ENGINE_CONSTRAINTS}
