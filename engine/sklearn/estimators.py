"""`MLPClassifier` and `MLPRegressor`: scikit-learn's estimators, trained by the engine.

The constructor, validation, fitted attributes and methods are scikit-learn's (1.9); so
are the numbers: the same random_state gives the same coefs_, loss_curve_ and n_iter_
(engine/sklearn/solvers.py says how). Two parameters come after scikit-learn's:
``backend`` (an engine backend name or instance) and ``dropout``.
"""
from __future__ import annotations

import numpy as np
import sklearn.neural_network as sk_nn
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (_check_partial_fit_first_call, type_of_target,
                                      unique_labels)
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .base import _constraints, _EngineMLP


class MLPClassifier(ClassifierMixin, _EngineMLP):
    """scikit-learn's MLPClassifier (same parameters, attributes and results), trained by
    the engine. backend: "auto", "numpy", "native", "cuda" or an engine backend instance;
    dropout: a rate in [0, 1) for every hidden layer or one per hidden layer (inverted
    dropout, engine/dropout.py); not in scikit-learn, off by default. precision: None, or
    "bf16-mixed" (float32 weights, bfloat16 operands in the training products; X is taken
    as float32; engine/precision.py).

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, ...
        scikit-learn's, with its defaults and constraints (sklearn.neural_network).
    backend : str or Backend, default="auto"
    dropout : float or list of float, optional
    precision : {None, "bf16-mixed"}, default=None

    Raises
    ------
    ValueError, TypeError
        scikit-learn's parameter validation and messages, and the engine's for its own.

    Examples
    --------
    >>> import numpy as np
    >>> from engine.sklearn import MLPClassifier
    >>> X = np.random.default_rng(0).normal(size=(60, 4)); y = (X[:, 0] > 0).astype(int)
    >>> clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=300,
    ...                     random_state=0, backend="numpy").fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _parameter_constraints = _constraints(sk_nn.MLPClassifier)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="auto", dropout=None, precision=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dropout = dropout
        self.precision = precision

    _is_classifier = True
    _score_function = staticmethod(accuracy_score)

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # classes_: defined by a new fit; checked against by warm_start and partial_fit
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` "
                        f"has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        # bool, so that float32 X does not train against float64 targets
        return X, self._label_binarizer.transform(y).astype(bool)

    def _score_targets(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _predictions(self, out):
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict(self, X):
        """Predicted classes (labels of classes_; indicator rows for multi-label)."""
        check_is_fitted(self)
        return self._predictions(self._forward_pass_fast(X))

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); `classes` (every class of all calls) on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of classes_."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _EngineMLP):
    """scikit-learn's MLPRegressor (same parameters, attributes and results), trained by
    the engine; loss "squared_error" (half the mean squared error) or "poisson" (half the
    Poisson deviance, exp output). backend, dropout and precision: as MLPClassifier's.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
    hidden_layer_sizes, activation, solver, alpha, ...
        scikit-learn's, with its defaults and constraints.
    backend, dropout, precision
        As MLPClassifier's.

    Raises
    ------
    ValueError, TypeError
        scikit-learn's parameter validation and messages, and the engine's for its own.

    Examples
    --------
    >>> import numpy as np
    >>> from engine.sklearn import MLPRegressor
    >>> X = np.random.default_rng(0).normal(size=(80, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=500, random_state=0,
    ...                    backend="numpy").fit(X, y)
    >>> reg.score(X, y) > 0.8
    True
    """

    _parameter_constraints = _constraints(sk_nn.MLPRegressor)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="auto", dropout=None, precision=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dropout = dropout
        self.precision = precision

    _is_classifier = False
    _score_function = staticmethod(r2_score)

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _score_targets(self, Y):
        return Y

    def _predictions(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    def predict(self, X):
        """Predicted values, (n,) for one output, (n, n_outputs) for more."""
        check_is_fitted(self)
        return self._predictions(self._forward_pass_fast(X))

    # scikit-learn 1.9 tests `est._check_solver` without calling it: partial_fit stays
    # available for lbfgs, which then runs L-BFGS on the batch. Kept for parity.
    @available_if(lambda est: est._check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
