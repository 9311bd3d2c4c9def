"""`engine bench --workload textbook`: the textbook's own `train()` loop, unchanged, with
`engine.reference.NeuralNetMLP` (NumPy) and with `engine.NeuralNetMLP` (native kernels),
one epoch each with its per-epoch evaluation (784-100-10, float64, minibatches of 100; a
twelfth of the rows, at least 100, are the validation set: 55,000 + 5,000 of MNIST's), and
`engine.NeuralNetMLP.fit`, which runs the same epoch's training in C without the evaluation.
The runners take turns (bench's interleaving), so a slow stretch of a shared machine hits
them alike.
"""
from __future__ import annotations

import contextlib
import io
import statistics

import numpy as np

from .tables import markdown_table
from .timing import interleaved_times


def _train_epoch(model_class, X_train, y_train, X_valid, y_valid):
    from ..textbook import reference as ref
    model = model_class(X_train.shape[1], 100, 10)

    def run():
        with contextlib.redirect_stdout(io.StringIO()):     # train() prints each epoch
            ref.train(model, X_train, y_train, X_valid, y_valid, num_epochs=1)
    return run


def _fit_epoch(X_train, y_train):
    from ..textbook.dropin import NeuralNetMLP
    model = NeuralNetMLP(X_train.shape[1], 100, 10)
    return lambda: model.fit(X_train, y_train, num_epochs=1)


def textbook_rows(n_samples=60_000, repeats=3, log=print, data=None):
    """[{runner, median_s, times_s, speedup, data}] for the three runners; speedup against
    the reference NeuralNetMLP in train(). data: (X, y, name) instead of MNIST's first
    n_samples rows."""
    from ..textbook import reference as ref
    from ..textbook.dropin import NeuralNetMLP
    from .bench_sklearn import mnist_or_synthetic
    X, y, what = mnist_or_synthetic(n_samples) if data is None else data
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n_valid = max(100, len(y) // 12)    # the loop evaluates whole minibatches of 100 only
    if len(y) - n_valid < 100:
        raise ValueError(f"the textbook loop needs at least 200 rows (a minibatch of 100 "
                         f"to train on and one to validate on); got {len(y)}")
    X_train, y_train = X[n_valid:], y[n_valid:]
    X_valid, y_valid = X[:n_valid], y[:n_valid]
    runners = [
        ("reference.NeuralNetMLP in train()",
         lambda: _train_epoch(ref.NeuralNetMLP, X_train, y_train, X_valid, y_valid)),
        ("engine.NeuralNetMLP in train()",
         lambda: _train_epoch(NeuralNetMLP, X_train, y_train, X_valid, y_valid)),
        ("engine.NeuralNetMLP.fit (no evaluation)", lambda: _fit_epoch(X_train, y_train)),
    ]
    log(f"bench: textbook train() on {what}, {len(y_train)} + {len(y_valid)} rows ...")
    times = interleaved_times(runners, repeats)
    base = statistics.median(times[runners[0][0]])
    rows = []
    for label, _ in runners:
        median = statistics.median(times[label])
        rows.append({"runner": label, "median_s": median, "times_s": times[label],
                     "speedup": base / median, "data": what})
    return rows


def format_textbook_table(rows):
    cells = [{"textbook loop, 784-100-10 float64 b100": r["runner"],
              "median s/epoch": f"{r['median_s']:.3f}",
              "speed-up vs reference": f"{r['speedup']:.2f}x"} for r in rows]
    return markdown_table(cells, list(cells[0]), "lrr")
