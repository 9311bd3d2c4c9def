"""`engine bench --workload sklearn`: scikit-learn's MLPClassifier and engine.sklearn's,
side by side on full MNIST with scikit-learn's defaults (adam, relu, (100,), batch 200),
plus an sgd row, float32 and float64, in one run.

Per-epoch time is measured by differencing: a fit of 1 + k epochs minus a fit of 1 epoch,
over k. Both fits pay the same set-up (input validation, label binarization, the first
epoch's warm-up), so the difference is the epochs alone, the per-epoch bookkeeping
included. tol=0 with a large n_iter_no_change keeps both from stopping early.
"""
from __future__ import annotations

import statistics
import sys
import time
import warnings

import numpy as np

from .tables import markdown_table

SOLVERS = ("adam", "sgd")
DTYPES = ("float32", "float64")


def mnist_or_synthetic(n_samples):
    """(X, y, what): the MNIST training set (its first n_samples rows), or MNIST-shaped
    random data when MNIST cannot be had here."""
    from ..data import DataError, load_mnist
    try:
        X, y, _, _ = load_mnist()
        return X[:n_samples], y[:n_samples], "MNIST"
    except DataError as exc:
        print(f"bench: MNIST unavailable ({exc}); timing synthetic data", file=sys.stderr)
        rng = np.random.default_rng(0)
        return (rng.random((n_samples, 784), dtype=np.float32),
                rng.integers(0, 10, n_samples), "synthetic")


def _fit_time(make, X, y, epochs):
    est = make(epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0, est


def epoch_time(make, X, y, k=3, repeats=1):
    """(seconds per epoch, the fitted 1 + k epoch estimator): median over `repeats` of
    (fit of 1 + k epochs - fit of 1 epoch) / k."""
    per_epoch, est = [], None
    for _ in range(repeats):
        one, _ = _fit_time(make, X, y, 1)
        many, est = _fit_time(make, X, y, 1 + k)
        per_epoch.append(max(many - one, 0.0) / k)
    return statistics.median(per_epoch), est


def sklearn_rows(n_samples=60_000, dtypes=DTYPES, solvers=SOLVERS, k=3, repeats=1,
                 log=print):
    """One row per (dtype, solver): each library's seconds per epoch and the ratio."""
    from sklearn.neural_network import MLPClassifier as Theirs
    from ..sklearn import MLPClassifier as Ours
    X, y, source = mnist_or_synthetic(n_samples)
    rows = []
    for dtype in dtypes:
        Xd = np.ascontiguousarray(X, dtype=dtype)
        for solver in solvers:
            times = {}
            for label, cls in (("scikit-learn", Theirs), ("engine", Ours)):
                log(f"bench: sklearn {dtype} {solver} {label} ...")
                make = (lambda epochs, cls=cls: cls(solver=solver, max_iter=epochs,
                                                    random_state=0, tol=0.0,
                                                    n_iter_no_change=10 ** 6))
                times[label], est = epoch_time(make, Xd, y, k, repeats)
                times[label + " loss"] = est.loss_
            rows.append({"data": source, "dtype": dtype, "solver": solver,
                         "sklearn_s": times["scikit-learn"], "engine_s": times["engine"],
                         "speedup": times["scikit-learn"] / times["engine"],
                         "loss_after": (times["scikit-learn loss"], times["engine loss"])})
    return rows


def format_sklearn_table(rows):
    cells = [{"data": r["data"], "dtype": r["dtype"], "solver": r["solver"],
              "scikit-learn s/epoch": f"{r['sklearn_s']:.3f}",
              "engine.sklearn s/epoch": f"{r['engine_s']:.3f}",
              "speed-up": f"{r['speedup']:.2f}x",
              "final loss (sklearn / engine)":
                  f"{r['loss_after'][0]:.6f} / {r['loss_after'][1]:.6f}"} for r in rows]
    return markdown_table(cells, list(cells[0]) if cells else ["data"], "lllrrrl")
