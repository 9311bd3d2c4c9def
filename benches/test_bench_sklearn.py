"""engine.sklearn against scikit-learn: one epoch (a partial_fit call over the whole set)
with scikit-learn's defaults (adam, relu, (100,), batch 200) and with sgd, float32 and
float64, in one group per (solver, dtype) so the two sit side by side. `engine bench
--workload sklearn` gives the same comparison without the per-call input validation."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional extra")

from engine.apps.bench_sklearn import mnist_or_synthetic  # noqa: E402

from conftest import ROWS, record  # noqa: E402

N = ROWS


@pytest.fixture(scope="module")
def mnist():
    X, y, _ = mnist_or_synthetic(N)
    return X, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("library", ["engine.sklearn", "scikit-learn"])
def test_epoch_against_scikit_learn(benchmark, mnist, dtype, solver, library):
    if library == "engine.sklearn":
        from engine.sklearn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    X, y = mnist
    X = np.ascontiguousarray(X, dtype=dtype)
    classes = np.unique(y)
    est = MLPClassifier(solver=solver, random_state=0)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.partial_fit(X, y, classes=classes)
    benchmark.group = f"sklearn drop-in {solver} {dtype}"
    benchmark.pedantic(epoch, rounds=3, warmup_rounds=1)
    assert np.isfinite(est.loss_)
    record(benchmark, backend=library, dtype=dtype, shape=[784, 100, 10], batch=200)
