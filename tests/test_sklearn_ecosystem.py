"""engine.sklearn among scikit-learn's tools: pickle and joblib (optimizer state included),
clone, Pipeline, GridSearchCV and cross_val_score in loky worker processes (the engine's
threads within joblib's limits), and the same search on a Dask cluster."""
import io
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional extra")

import joblib  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from engine.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

from helpers import AVAILABLE  # noqa: E402

X, Y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)
GRID = {"hidden_layer_sizes": [(4,), (8,)], "alpha": [1e-4, 1e-2]}


def _quiet_fit(est, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(*args, **kw)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_round_trip_keeps_the_optimizer_state(backend, solver, dump):
    est = _quiet_fit(MLPClassifier((6,), solver=solver, max_iter=5, random_state=0,
                                   backend=backend), X, Y)
    buf = io.BytesIO()
    (pickle.dump if dump == "pickle" else joblib.dump)(est, buf)
    buf.seek(0)
    copy = (pickle.load if dump == "pickle" else joblib.load)(buf)
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
    for e in (est, copy):       # both carry on from the same moments and step count
        e.partial_fit(X, Y)
        e.partial_fit(X[:40], Y[:40])
    for a, b in zip(est.coefs_ + est.intercepts_, copy.coefs_ + copy.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert copy.loss_curve_ == est.loss_curve_


def test_clone_copies_parameters_not_the_fit():
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, dropout=0.1,
                                  backend="numpy"), X, Y)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "coefs_")


def test_pipeline_scores_as_scikit_learns():
    from sklearn.neural_network import MLPClassifier as Theirs
    X_raw, _ = load_iris(return_X_y=True)
    scores = [_quiet_fit(make_pipeline(StandardScaler(), cls((10,), max_iter=300,
                                                             random_state=0)),
                         X_raw, Y).score(X_raw, Y) for cls in (MLPClassifier, Theirs)]
    assert scores[0] == scores[1] > 0.8


def _search(**kw):
    search = GridSearchCV(MLPClassifier(max_iter=30, random_state=0), GRID, cv=3, **kw)
    return _quiet_fit(search, X, Y)


def test_grid_search_in_worker_processes_matches_one_process():
    one = _search(n_jobs=1)
    two = _search(n_jobs=2)
    np.testing.assert_allclose(two.cv_results_["mean_test_score"],
                               one.cv_results_["mean_test_score"], rtol=1e-12)
    assert two.best_params_ == one.best_params_
    scores = cross_val_score(MLPClassifier((5,), max_iter=20, random_state=0), X, Y, cv=3,
                             n_jobs=2)
    assert scores.shape == (3,)


def _epoch_threads():
    from engine import _native
    return _native.get_epoch_threads()


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native backend is not built")
def test_engine_threads_follow_joblib_and_threadpoolctl_limits():
    """Two loky workers on this machine's cores share them: each trains on its share, so
    that a search with n_jobs=2 does not run 2 x cores threads."""
    from engine import _native
    share = max(1, joblib.cpu_count() // 2)
    got = joblib.Parallel(n_jobs=2)(joblib.delayed(_epoch_threads)() for _ in range(2))
    assert got == [share, share]
    saved = _native.epoch_threads_setting()
    _native.set_epoch_threads(0)                 # the default: follow OpenMP's setting
    try:
        with threadpool_limits(limits=1):
            assert _epoch_threads() == 1
    finally:
        _native.set_epoch_threads(saved)


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is an extra")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        with joblib.parallel_backend("dask"):
            on_dask = _search(n_jobs=-1)
    local = _search(n_jobs=1)
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], rtol=1e-12)
    assert on_dask.best_params_ == local.best_params_


def test_partial_fit_on_chunks_of_many_sizes_keeps_few_workspaces():
    est = MLPClassifier((5,), random_state=0)
    classes = np.unique(Y)
    for size in range(5, 40, 3):
        est.partial_fit(X[:size], Y[:size], classes=classes)
    assert len(est._net.model.state.workspaces) <= 4
