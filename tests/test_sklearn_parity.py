"""engine.sklearn against scikit-learn itself: with the same random_state, data and
parameters, in float64, the fitted coefs_, intercepts_, loss_curve_, validation_scores_,
n_iter_ and t_ agree to 1e-6 relative, for every solver, activation, schedule, early
stopping, warm_start, partial_fit, sample weights and odd batch sizes, on scikit-learn's
bundled data sets."""
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is an optional extra")

from sklearn import datasets, neural_network as sk_nn  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import engine.sklearn as en  # noqa: E402

RTOL = 1e-6


def _data(name):
    if name == "multilabel":
        X, y = datasets.make_multilabel_classification(n_samples=150, n_features=8,
                                                       n_classes=4, random_state=0)
        return X.astype(np.float64), y
    loader = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
              "iris": datasets.load_iris, "diabetes": datasets.load_diabetes,
              "linnerud": datasets.load_linnerud}[name]
    X, y = loader(return_X_y=True)
    if name == "digits":
        X, y = X[:600], y[:600]
    X = StandardScaler().fit_transform(X)
    if name in ("diabetes", "linnerud"):
        y = y / np.abs(y).max(axis=0)        # targets of order 1, as a user would scale them
    return X, y


def _close(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = np.max(np.abs(want)) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-9 * scale + 1e-300,
                               err_msg=what)


def assert_same_fit(ours, theirs):
    for attr in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_",
                 "n_features_in_"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert len(ours.coefs_) == len(theirs.coefs_)
    for l, (a, b) in enumerate(zip(ours.coefs_, theirs.coefs_)):
        assert a.dtype == b.dtype
        _close(a, b, f"coefs_[{l}]")
    for l, (a, b) in enumerate(zip(ours.intercepts_, theirs.intercepts_)):
        _close(a, b, f"intercepts_[{l}]")
    _close(ours.loss_, theirs.loss_, "loss_")
    for attr in ("loss_curve_", "validation_scores_", "best_loss_", "best_validation_score_"):
        mine, want = getattr(ours, attr, None), getattr(theirs, attr, None)
        assert (mine is None) == (want is None), attr
        if want is not None:
            _close(mine, want, attr)
    if hasattr(theirs, "classes_"):
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)


def _both(kind, **params):
    cls = {"classifier": (en.MLPClassifier, sk_nn.MLPClassifier),
           "regressor": (en.MLPRegressor, sk_nn.MLPRegressor)}[kind]
    return cls[0](**params), cls[1](**params)


def _fit_both(kind, data, params, fit_kw=None):
    X, y = _data(data)
    ours, theirs = _both(kind, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # both warn alike (ConvergenceWarning)
        theirs.fit(X, y, **(fit_kw or {}))
        ours.fit(X, y, **(fit_kw or {}))
    assert_same_fit(ours, theirs)
    return ours, theirs, X, y


SOLVERS = [dict(solver="adam", max_iter=8), dict(solver="sgd", max_iter=8),
           dict(solver="lbfgs", max_iter=15)]


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s["solver"])
def test_every_solver_and_activation_on_digits(solver, activation):
    ours, theirs, X, _ = _fit_both("classifier", "digits",
                                   dict(hidden_layer_sizes=(20, 12), activation=activation,
                                        **solver))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6,
                               atol=1e-12)


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_schedules_and_momentum(schedule, nesterov):
    # a high tol makes the adaptive schedule divide its rate within the run
    _fit_both("classifier", "iris",
              dict(solver="sgd", learning_rate=schedule, nesterovs_momentum=nesterov,
                   learning_rate_init=0.05, max_iter=40, tol=0.05, n_iter_no_change=2,
                   hidden_layer_sizes=(7,)))


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("data,kind", [("breast_cancer", "classifier"), ("iris", "classifier"),
                                       ("diabetes", "regressor")])
def test_early_stopping(solver, data, kind):
    ours, _, _, _ = _fit_both(kind, data, dict(solver=solver, early_stopping=True,
                                               max_iter=60, n_iter_no_change=3, tol=1e-2,
                                               learning_rate_init=0.02,
                                               hidden_layer_sizes=(10,),
                                               validation_fraction=0.2))
    assert ours.n_iter_ < 60                     # it did stop early


@pytest.mark.parametrize("data,kind", [("breast_cancer", "classifier"),
                                       ("multilabel", "classifier"),
                                       ("diabetes", "regressor"), ("linnerud", "regressor")])
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s["solver"])
def test_binary_multilabel_and_regression(data, kind, solver):
    _fit_both(kind, data, dict(hidden_layer_sizes=(9,), activation="tanh", **solver))


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s["solver"])
def test_poisson_regression(solver):
    X, y = _data("diabetes")
    _fit_both("regressor", "diabetes", dict(loss="poisson", hidden_layer_sizes=(6,),
                                            **solver))
    assert y.min() > 0


@pytest.mark.parametrize("batch_size", [1, 7, 33, 10_000])
def test_odd_batch_sizes(batch_size):
    _fit_both("classifier", "iris", dict(solver="sgd", batch_size=batch_size, max_iter=5,
                                         hidden_layer_sizes=(5,)))


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s["solver"])
@pytest.mark.parametrize("data,kind", [("iris", "classifier"), ("diabetes", "regressor")])
def test_sample_weights(solver, data, kind):
    X, _ = _data(data)
    w = np.random.default_rng(0).uniform(0, 3, X.shape[0])
    w[::7] = 0.0
    _fit_both(kind, data, dict(hidden_layer_sizes=(8,), alpha=0.01, **solver),
              dict(sample_weight=w))


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s["solver"])
def test_warm_start(solver):
    X, y = _data("iris")
    ours, theirs = _both("classifier", random_state=1, warm_start=True,
                         hidden_layer_sizes=(6,), **solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in (ours, theirs):
            est.fit(X, y)
            est.set_params(max_iter=4)
            est.fit(X, y)
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit(solver):
    X, y = _data("digits")
    ours, theirs = _both("classifier", random_state=0, solver=solver,
                         hidden_layer_sizes=(15,), learning_rate="invscaling")
    classes = np.unique(y)
    for est in (ours, theirs):
        for part in np.array_split(np.arange(len(y)), 4):
            est.partial_fit(X[part], y[part], classes=classes)
    assert_same_fit(ours, theirs)


def test_partial_fit_of_a_regressor_with_sample_weights():
    X, y = _data("linnerud")
    w = np.linspace(0.5, 2, len(y))
    ours, theirs = _both("regressor", random_state=3, solver="sgd", hidden_layer_sizes=(4,))
    for est in (ours, theirs):
        for _ in range(3):
            est.partial_fit(X, y, sample_weight=w)
    assert_same_fit(ours, theirs)


def test_partial_fit_after_fit_continues_the_optimizer():
    X, y = _data("iris")
    ours, theirs = _both("classifier", random_state=0, max_iter=5, hidden_layer_sizes=(5,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in (ours, theirs):
            est.fit(X, y)
            est.partial_fit(X, y)
            est.partial_fit(X[:50], y[:50])
    assert_same_fit(ours, theirs)


def test_user_edited_coefs_are_trained_from():
    """coefs_ is scikit-learn's attribute: a change to it is what training continues from."""
    X, y = _data("iris")
    ours, theirs = _both("classifier", random_state=0, max_iter=3, hidden_layer_sizes=(5,),
                         solver="sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est in (ours, theirs):
            est.fit(X, y)
            est.coefs_[0][:2] = 0.25
            est.intercepts_[1] = est.intercepts_[1] * 0.5
            est.partial_fit(X, y)
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("kind,data", [("classifier", "iris"), ("regressor", "diabetes")])
def test_float32_trains_in_float32_close_to_scikit_learn(kind, data):
    X, y = _data(data)
    X = X.astype(np.float32)
    ours, theirs = _both(kind, random_state=0, max_iter=10, hidden_layer_sizes=(8,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X, y)
        theirs.fit(X, y)
    assert all(c.dtype == np.float32 for c in ours.coefs_ + ours.intercepts_)
    assert ours.predict(X).dtype == theirs.predict(X).dtype
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)


def test_verbose_prints_scikit_learns_lines(capsys):
    X, y = _data("iris")
    lines = []
    for est in _both("classifier", random_state=0, max_iter=3, verbose=True,
                     early_stopping=True, hidden_layer_sizes=(4,)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        lines.append(capsys.readouterr().out)
    assert "Iteration 1, loss = " in lines[0] and "Validation score: " in lines[0]
    assert lines[0] == lines[1]


def test_convergence_warning_when_scikit_learn_warns():
    X, y = _data("iris")
    for est in _both("classifier", random_state=0, max_iter=2, hidden_layer_sizes=(4,)):
        with pytest.warns(sklearn.exceptions.ConvergenceWarning, match="Maximum iterations"):
            est.fit(X, y)
    for est in _both("classifier", random_state=0, max_iter=2, hidden_layer_sizes=(4,),
                     solver="lbfgs"):
        with pytest.warns(sklearn.exceptions.ConvergenceWarning, match="lbfgs failed"):
            est.fit(X, y)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s["solver"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input(solver, fmt, monkeypatch):
    """Sparse X trains a block of minibatches at a time, densified (blocks of 64 rows here,
    so that an epoch spans several)."""
    from scipy import sparse
    from engine.sklearn import solvers
    monkeypatch.setattr(solvers, "SPARSE_BLOCK_ROWS", 64)
    monkeypatch.setattr(solvers, "LBFGS_CHUNK_ROWS", 100)
    X, y = _data("digits")
    X = np.where(np.abs(X) < 0.5, 0.0, X)
    Xs = getattr(sparse, f"{fmt}_matrix")(X)
    ours, theirs = _both("classifier", random_state=0, hidden_layer_sizes=(10,),
                         batch_size=20, **solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(Xs, y)
        theirs.fit(Xs, y)
    assert_same_fit(ours, theirs)
    np.testing.assert_array_equal(ours.predict(Xs), theirs.predict(Xs))


def test_a_diverging_fit_raises_as_scikit_learns():
    X, y = _data("diabetes")
    for est in _both("regressor", random_state=0, solver="sgd", learning_rate_init=1e6,
                     max_iter=5, hidden_layer_sizes=(8,)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="Solver produced non-finite parameter"):
                est.fit(X * 1e3, y * 1e3)


@pytest.mark.parametrize("backend", ["native", "cuda"])
def test_other_backends_train_to_the_numpy_backends_numbers(backend):
    """The same fit on every backend the engine has here (CUDA under Numba's simulator)."""
    from engine.backends import available_backends
    found = {b.name: b for b in available_backends()}
    if not found[backend].available:
        pytest.skip(f"backend {backend!r} is not available here: {found[backend].reason}")
    X, y = _data("iris")
    X, y = X[::5], y[::5]             # 30 rows: the simulator runs each thread in Python
    kw = dict(random_state=0, hidden_layer_sizes=(3,), solver="sgd", max_iter=2,
              batch_size=15)
    fits = []
    for name in ("numpy", backend):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(en.MLPClassifier(backend=name, **kw).fit(X, y))
    assert_same_fit(fits[1], fits[0])


def test_dropout_is_an_extra_that_keeps_runs_repeatable():
    X, y = _data("digits")
    kw = dict(random_state=0, hidden_layer_sizes=(30,), max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = en.MLPClassifier(**kw).fit(X, y)
        a = en.MLPClassifier(dropout=0.3, **kw).fit(X, y)
        b = en.MLPClassifier(dropout=0.3, **kw).fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.allclose(a.coefs_[0], plain.coefs_[0])
    with pytest.raises(sklearn.utils._param_validation.InvalidParameterError, match="dropout"):
        en.MLPClassifier(dropout=1.5).fit(X, y)


def test_engine_exports_the_drop_ins():
    import engine
    assert engine.MLPClassifier is en.MLPClassifier
    assert engine.MLPRegressor is en.MLPRegressor


@pytest.mark.parametrize("output,loss,targets", [("softmax", "cross_entropy", "labels"),
                                                 ("identity", "squared_error", "rows")])
def test_the_native_one_pass_objective_equals_the_chunked_one(output, loss, targets):
    """L-BFGS's whole-set loss and gradient: the native backend's single pass in C (the
    BLAS-path epoch with its reduction hook) against the NumPy backend's chunks."""
    pytest.importorskip("engine._native", reason="the native extension is not built")
    from engine.sklearn.network import EngineNet
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 6))
    T = rng.integers(0, 3, 50) if targets == "labels" else rng.normal(size=(50, 3))
    w = rng.uniform(0, 2, 50)
    w[:7] = 0.0
    coefs = [rng.normal(size=(6, 5)), rng.normal(size=(5, 3))]
    intercepts = [rng.normal(size=5), rng.normal(size=3)]
    results = []
    for backend in ("numpy", "native"):
        net = EngineNet([6, 5, 3], "tanh", output, loss, np.float64, backend, coefs,
                        intercepts)
        results.append(net.whole_set(X, T, w, chunk=8))
        assert net.whole_set(X, T, np.zeros(50), chunk=8) is None
    (l0, w0, b0), (l1, w1, b1) = results
    assert l1 == pytest.approx(l0, rel=1e-12)
    for a, b in zip(w1 + b1, w0 + b0):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("change", [{"activation": "logistic"}, {"activation": "tanh"},
                                    {"activation": "identity"}])
def test_warm_start_after_set_params_trains_as_scikit_learn(solver, change):
    """A warm-start fit after set_params of an architecture parameter trains the new
    architecture (the engine kept the old activation until round 3), with the optimizer's
    state carried over as scikit-learn carries it."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier as SkMLP

    from engine.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X = X[:400] / 16
    y = y[:400]
    losses = []
    for cls in (SkMLP, MLPClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(hidden_layer_sizes=(12,), max_iter=4, random_state=0, warm_start=True,
                      solver=solver).fit(X, y)
            est.set_params(**change)
            est.fit(X, y)
        losses.append(est.loss_)
        probas = est.predict_proba(X)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
    assert probas.shape == (400, 10)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_warm_start_after_new_hidden_widths_trains_the_fitted_network_as_scikit_learn(solver):
    """scikit-learn's warm start keeps training coefs_ as they are when set_params changed
    the hidden widths (not the depth): the engine does the same, to the same numbers; a
    changed depth, where scikit-learn's fit fails with an AttributeError, is a ValueError
    that says why."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier as SkMLP

    from engine.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16, y[:300]
    fitted = []
    for cls in (SkMLP, MLPClassifier):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(hidden_layer_sizes=(12,), max_iter=3, random_state=0, warm_start=True,
                      solver=solver).fit(X, y)
            est.set_params(hidden_layer_sizes=(20,))
            est.fit(X, y)
        fitted.append(est)
    theirs, ours = fitted
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_] == \
        [(64, 12), (12, 10)]
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-10)
    ours.set_params(hidden_layer_sizes=(12, 5))
    with pytest.raises(ValueError, match="warm_start=True continues the fitted network of 1 "
                                         "hidden layers"):
        ours.fit(X, y)
