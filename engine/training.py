"""The training loop of `MLP.fit`, and the one-epoch runner that benchmarks time."""
from __future__ import annotations

import time

import numpy as np

from . import checks
from .evaluation import evaluate
from .history import History
from .progress import ProgressBar


def fit(model, X, y, *, epochs, batch_size, learning_rate, momentum, shuffle,
        validation_data, progress, diagnostics) -> History:
    """What `MLP.fit` documents: check, then run the epochs and record them."""
    epochs = checks.positive_int("epochs", epochs)
    batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.non_negative_float("learning_rate", learning_rate)
    momentum = checks.non_negative_float("momentum", momentum, upper=1.0)
    X, y = model._check_xy(X, y)
    val = None
    if validation_data is not None:
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise TypeError("validation_data must be a pair (X_val, y_val)") from None
        val = model._check_xy(Xv, yv, "validation_data[0]", "validation_data[1]")

    be, net = model.backend, model._net
    n = X.shape[0]
    batch_size = min(batch_size, n)
    Xb, yb = be.asarray(X), be.asarray(y)
    val_b = (be.asarray(val[0]), be.asarray(val[1])) if val else None
    ws = model._workspace(batch_size)
    n_batches = -(-n // batch_size)
    history = History(batches_per_epoch=n_batches, meta=model._meta(
        epochs=epochs, batch_size=batch_size, learning_rate=lr, momentum=momentum,
        n_train=n))
    bar = ProgressBar(epochs, desc=f"train[{be.name}]", enabled=progress)
    batch_losses = np.empty(n_batches)
    order = np.arange(n)
    for _ in range(epochs):
        t0 = time.perf_counter()
        if shuffle:
            model._shuffle_rng.shuffle(order)     # in place: an epoch allocates nothing
        norms = np.zeros(len(net.weights)) if diagnostics else None
        be.train_epoch(net, Xb, yb, order, batch_size, lr, momentum, ws, batch_losses, norms)
        record = None
        if diagnostics:
            record = {"grad_norm": (norms / n_batches).tolist(),
                      "weight_norm": [float(np.sqrt(be.sq_norm(w))) for w in net.weights]}
        be.synchronize()
        history.epoch_time.append(time.perf_counter() - t0)
        history.batch_loss.extend(batch_losses.tolist())
        loss, acc = evaluate(model, Xb, yb, stats=record)
        history.epoch_loss.append(loss)
        history.epoch_accuracy.append(acc)
        if diagnostics:
            history.diagnostics.append(record)
        if val_b is not None:
            vloss, vacc = evaluate(model, *val_b)
            history.val_loss.append(vloss)
            history.val_accuracy.append(vacc)
        info = f"loss {loss:.4f} acc {100 * acc:.2f}%"
        if val_b is not None:
            info += f" val {100 * history.val_accuracy[-1]:.2f}%"
        bar.update(1, info)
    return history


def epoch_runner(model, X, y, *, batch_size, learning_rate, momentum=0.0, order=None):
    """A callable that trains `model` for one epoch over (X, y) per call, in a fixed order
    (default: a permutation drawn once from seed 1), and returns the minibatch losses
    (a float64 array it reuses). X and y are checked and moved to the backend once, here,
    so that a benchmark times the epoch and nothing else."""
    batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.non_negative_float("learning_rate", learning_rate)
    momentum = checks.non_negative_float("momentum", momentum, upper=1.0)
    X, y = model._check_xy(X, y)
    n = X.shape[0]
    batch_size = min(batch_size, n)
    if order is None:
        order = np.random.default_rng(1).permutation(n)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.ndim != 1 or (order.size and (order.min() < 0 or order.max() >= n)):
        raise ValueError(f"order must be a 1-D array of row numbers in [0, {n})")
    be, net = model.backend, model._net
    Xb, yb = be.asarray(X), be.asarray(y)
    ws = model._workspace(batch_size)
    losses = np.empty(-(-order.size // batch_size))

    def run():
        be.train_epoch(net, Xb, yb, order, batch_size, lr, momentum, ws, losses)
        be.synchronize()
        return losses
    return run
