"""Regressions of the round-3 fuzz run that sit in the Python layer: set_weights during a
fit, sample weights whose sums overflow, complex weights, and engine.sklearn's dropout with
L-BFGS and early stopping on validation rows that all weigh zero."""
import threading
import time
import warnings

import numpy as np
import pytest

from engine import MLP

from helpers import AVAILABLE


def test_set_weights_waits_for_a_running_fit():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2000, 20)), rng.integers(0, 3, 2000)
    model = MLP([20, 32, 3], backend="numpy", dtype="float64", seed=1)
    new = [np.full_like(w, 0.01) for w in model.weights], [np.zeros_like(b)
                                                           for b in model.biases]
    fit_done = threading.Event()
    started = threading.Event()

    def fit():
        started.set()
        model.fit(X, y, epochs=8, batch_size=10, progress=False)
        fit_done.set()
    t = threading.Thread(target=fit)
    t.start()
    started.wait()
    time.sleep(0.05)                         # the fit holds the model by now
    model.set_weights(*new)
    assert fit_done.is_set()                 # it waited for the whole fit
    t.join()
    for a, b in zip(model.weights, new[0]):
        np.testing.assert_array_equal(a, b)  # and its own weights came last, not lost


def test_complex_weights_are_refused():
    model = MLP([3, 2], backend="numpy", dtype="float64")
    with pytest.raises(TypeError, match="real numbers"):
        model.set_weights([np.ones((2, 3), complex)], [np.zeros(2)])
    with pytest.raises(TypeError, match="real numbers"):
        model.set_weights([np.ones((2, 3))], [np.zeros(2, complex)])


@pytest.mark.parametrize("backend", AVAILABLE)
def test_sample_weights_whose_sums_overflow_are_refused_on_every_backend(backend):
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 2, 40)
    model = MLP([4, 3, 2], backend=backend, dtype="float32", seed=0)
    with pytest.raises(ValueError, match="sample_weight sums to .* float32"):
        model.fit(X, y, epochs=1, sample_weight=np.full(40, 1e37), progress=False)
    # large but carried: every backend steps, and the same way as with unit weights
    a = MLP([4, 3, 2], backend=backend, dtype="float32", seed=0)
    b = MLP([4, 3, 2], backend=backend, dtype="float32", seed=0)
    a.fit(X, y, epochs=1, sample_weight=np.full(40, 1e15), progress=False, shuffle=False)
    b.fit(X, y, epochs=1, sample_weight=np.ones(40), progress=False, shuffle=False)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)
    assert not np.array_equal(a.weights[0], MLP([4, 3, 2], backend=backend, dtype="float32",
                                                seed=0).weights[0])


sklearn = pytest.importorskip("sklearn")


def test_sklearn_dropout_with_lbfgs_warns_that_it_is_ignored():
    from engine.sklearn import MLPClassifier
    X = np.random.default_rng(3).normal(size=(30, 4))
    y = np.arange(30) % 2
    with pytest.warns(UserWarning, match="dropout=0.2 is ignored by solver='lbfgs'"):
        MLPClassifier(hidden_layer_sizes=(5,), solver="lbfgs", dropout=0.2, max_iter=5,
                      backend="numpy").fit(X, y)
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(hidden_layer_sizes=(5,), solver="adam", dropout=0.2, max_iter=2,
                      backend="numpy").fit(X, y)


def test_sklearn_early_stopping_on_zero_weight_validation_rows_says_so(monkeypatch):
    from engine.sklearn import MLPRegressor, solvers
    # a fixed split: the last 10 rows are held out, and they weigh nothing
    monkeypatch.setattr(solvers, "train_test_split", lambda rows, **kw: (rows[:40], rows[40:]))
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    w = np.r_[np.ones(40), np.zeros(10)]
    est = MLPRegressor(hidden_layer_sizes=(4,), early_stopping=True, max_iter=3,
                       random_state=0, backend="numpy")
    with pytest.raises(ValueError, match="all 10 validation rows .* sample_weight 0"):
        est.fit(X, y, sample_weight=w)
