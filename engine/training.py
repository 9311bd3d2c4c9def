"""The training loop of `MLP.fit`, and the one-epoch runner that benchmarks time."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from . import checks
from . import dropout as masks
from . import interrupt
from .errors import ModelFileError, TrainingDiverged
from .model_file import read_model, restore_training_state, save_model
from .evaluation import evaluate
from .history import History, epochs_text
from .optimizers import OPTIMIZERS, SCHEDULES, Optimizer, Schedule
from .precision import BF16_MIXED, round_bf16
from .progress import ProgressBar


def fit(model, X, y, **kwargs) -> History:
    """What `MLP.fit` documents; Ctrl-C stops it at the next minibatch boundary
    (engine/interrupt.py) with a KeyboardInterrupt, the model left usable."""
    with interrupt.stop_at_boundaries():
        return _fit(model, X, y, **kwargs)


def _fit(model, X, y, *, epochs, batch_size, learning_rate, momentum, shuffle,
        validation_data, progress, diagnostics, optimizer="sgd", nesterov=False, beta_1=0.9,
        beta_2=0.999, epsilon=1e-8, alpha=0.0, schedule="constant", power_t=0.5, tol=1e-4,
        n_iter_no_change=10, early_stopping=False, validation_fraction=0.1,
        sample_weight=None, dropout=None, on_divergence="raise", checkpoint=None,
        checkpoint_every=1, resume=False) -> History:
    """What `MLP.fit` documents: check, then run the epochs and record them."""
    epochs = checks.positive_int("epochs", epochs)
    batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.non_negative_float("learning_rate", learning_rate)
    opt = _optimizer(optimizer, momentum, nesterov, beta_1, beta_2, epsilon)
    alpha = checks.non_negative_float("alpha", alpha)
    if not callable(schedule):
        checks.choice("schedule", schedule, SCHEDULES)
    power_t = checks.non_negative_float("power_t", power_t)
    tol = checks.non_negative_float("tol", tol)
    n_iter_no_change = checks.positive_int("n_iter_no_change", n_iter_no_change)
    if not isinstance(early_stopping, (bool, np.bool_)):
        raise TypeError(f"early_stopping must be True or False; got {early_stopping!r}")
    checks.choice("on_divergence", on_divergence, ("raise", "continue"))
    checkpoint_every = checks.positive_int("checkpoint_every", checkpoint_every)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path> to resume from")
    drop_rates = None
    if dropout is not None:
        drop_rates = masks.rates(dropout, len(model.layer_sizes) - 1)
        if not any(drop_rates):
            drop_rates = None
    X, y = model._check_xy(X, y)
    if model.precision == BF16_MIXED:
        X = round_bf16(X)                  # once per fit: every minibatch reads these rows
    sw = checks.sample_weight(sample_weight, X.shape[0], model.dtype)
    # resuming replaces the model's arrays and seed: before anything below uses them
    resumed = _resume(model, checkpoint) if resume and os.path.exists(checkpoint) else None
    val = val_w = None
    if validation_data is not None:
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise TypeError("validation_data must be a pair (X_val, y_val)") from None
        val = model._check_xy(Xv, yv, "validation_data[0]", "validation_data[1]")
    elif early_stopping:
        fraction = checks.non_negative_float("validation_fraction", validation_fraction,
                                             upper=1.0)
        train, held = _split(y, fraction, model.seed)
        val = (X[held], y[held])
        val_w = None if sw is None else sw[held]
        X, y, sw = X[train], y[train], (None if sw is None else sw[train])

    be, net = model.backend, model._net
    n = X.shape[0]
    batch_size = min(batch_size, n)
    Xb, yb = be.asarray(X), be.asarray(y)
    swb = None if sw is None else be.asarray(sw)
    val_b = (be.asarray(val[0]), be.asarray(val[1])) if val else None
    ws = model._workspace(batch_size)
    n_batches = -(-n // batch_size)
    state = model._optimizer_state(opt)
    history = History(batches_per_epoch=n_batches, meta=model._meta(
        epochs=epochs, batch_size=batch_size, learning_rate=lr, momentum=opt.momentum,
        optimizer=opt.name, nesterov=opt.nesterov, alpha=alpha,
        schedule=schedule if isinstance(schedule, str) else "callable",
        early_stopping=bool(early_stopping), dropout=drop_rates, n_train=n))
    sched = Schedule(schedule, lr, power_t, tol, n_iter_no_change)
    bar = ProgressBar(epochs, desc=f"train[{be.name}]", enabled=progress)
    batch_losses = np.empty(n_batches)
    order = model._row_order(n)
    best = None              # early stopping: (validation loss, epoch, weights, biases)
    bad_epochs = 0
    finite = None            # the divergence guard: the weights before the epoch
    start = 0
    if resumed is not None:
        start, saved_history, best, bad_epochs, saved_schedule = resumed
        _same_settings(checkpoint, saved_history.meta, history.meta)
        history = saved_history
        sched.lr, sched.best_loss, sched.bad_epochs = saved_schedule
        bar.update(start, "resumed")
    for epoch in range(start, epochs):
        if on_divergence == "raise":
            finite = (model.weights, model.biases)
        t0 = time.perf_counter()
        if shuffle:
            model._shuffle_rng.shuffle(order)     # in place: an epoch allocates nothing
        norms = np.zeros(len(net.weights)) if diagnostics else None
        rule = opt.rule(sched.learning_rate(epoch, state["samples"]), state["t"])
        drop = None if drop_rates is None else \
            (drop_rates, masks.epoch_key(model.seed, state["epochs"]))
        done = be.train_epoch(net, Xb, yb, order, batch_size, rule, alpha, ws, batch_losses,
                              norms, swb, drop)
        if done is not None and done < n_batches:
            # Ctrl-C: the minibatches trained count, the model stays as they left it
            state["t"] += done
            history.batch_loss.extend(batch_losses[:done].tolist())
            history.stop_reason = (f"interrupted (Ctrl-C) after minibatch {done} of epoch "
                                   f"{epoch + 1}")
            raise KeyboardInterrupt(history.stop_reason)
        state["epochs"] += 1
        if on_divergence == "raise":
            _guard(model, batch_losses, epoch, rule.learning_rate, finite)
        state["t"] += n_batches
        state["samples"] += n
        record = None
        if diagnostics:
            record = {"grad_norm": (norms / n_batches).tolist(),
                      "weight_norm": [float(np.sqrt(be.sq_norm(w))) for w in net.weights]}
        be.synchronize()
        history.epoch_time.append(time.perf_counter() - t0)
        history.batch_loss.extend(batch_losses.tolist())
        history.learning_rate.append(rule.learning_rate)
        loss, acc = evaluate(model, Xb, yb, stats=record, weights=sw)
        history.epoch_loss.append(loss)
        history.epoch_accuracy.append(acc)
        if diagnostics:
            history.diagnostics.append(record)
        if val_b is not None:
            vloss, vacc = evaluate(model, *val_b, weights=val_w)
            history.val_loss.append(vloss)
            history.val_accuracy.append(vacc)
        info = f"loss {loss:.4f}"
        if acc == acc:                     # nan for regression
            info += f" acc {100 * acc:.2f}%"
            if val_b is not None:
                info += f" val {100 * history.val_accuracy[-1]:.2f}%"
        elif val_b is not None:
            info += f" val loss {history.val_loss[-1]:.4f}"
        bar.update(1, info)
        if interrupt.requested():          # Ctrl-C while evaluating: the epoch is whole
            if checkpoint is not None:
                _save_checkpoint(model, checkpoint, epoch + 1, history, sched, best,
                                 bad_epochs)
            history.stop_reason = f"interrupted (Ctrl-C) after epoch {epoch + 1}"
            raise KeyboardInterrupt(history.stop_reason)
        train_loss = float(np.mean(batch_losses))     # the schedule's, as scikit-learn
        reason = sched.epoch_done(train_loss)
        if early_stopping:
            # scikit-learn's rule, on the validation loss: an epoch that does not beat the
            # best so far by tol counts against it; more than n_iter_no_change in a row stop
            vloss = history.val_loss[-1]
            bad_epochs = bad_epochs + 1 if best is not None and vloss > best[0] - tol else 0
            if best is None or vloss < best[0]:
                best = (vloss, epoch, model.weights, model.biases)
            if bad_epochs > n_iter_no_change:
                reason = (f"validation loss did not improve by tol={tol:g} for more than "
                          f"{n_iter_no_change} epochs")
        if checkpoint is not None and (reason or (epoch + 1) % checkpoint_every == 0
                                       or epoch + 1 == epochs):
            _save_checkpoint(model, checkpoint, epoch + 1, history, sched, best, bad_epochs)
        if reason:
            history.stop_reason = reason
            break
    if early_stopping and best is not None:
        history.best_epoch = best[1] + 1
        if best[1] != history.epochs - 1:
            model._set_params(best[2], best[3], keep_state=True)
            history.stop_reason = (history.stop_reason or "epochs done") + \
                f"; weights of epoch {best[1] + 1} (best validation loss) restored"
    if history.stop_reason is None:
        history.stop_reason = f"{epochs_text(history.epochs)} done"
    return history


def _save_checkpoint(model, path, epochs_done, history, sched, best, bad_epochs):
    """The model file of `model` (weights, optimizer state, shuffle RNG and row order) with
    the fit's own progress: epochs done, history, schedule and early-stopping state."""
    extra = {}
    if best is not None:
        for l, (w, b) in enumerate(zip(best[2], best[3])):
            extra[f"best_W{l}"], extra[f"best_b{l}"] = w, b
    progress = {"epochs_done": epochs_done, "history": history.to_dict(),
                "schedule": {"lr": sched.lr, "best_loss": sched.best_loss,
                             "bad_epochs": sched.bad_epochs},
                "early_stopping": None if best is None else
                {"best_loss": best[0], "best_epoch": best[1], "bad_epochs": bad_epochs}}
    save_model(model, path, extra_meta={"checkpoint": progress}, extra_arrays=extra)


# what a resumed fit must share with the fit that wrote the checkpoint (epochs may grow)
RESUME_SETTINGS = ("batch_size", "learning_rate", "momentum", "optimizer", "nesterov", "alpha",
                   "schedule", "early_stopping", "dropout")


def _same_settings(path, saved, asked):
    """ValueError naming every setting in which this fit differs from the one that wrote
    the checkpoint: the checkpoint's state (its schedule's learning rate, its optimizer's
    moments) would silently win over the new values."""
    norm = lambda v: json.loads(json.dumps(v))  # noqa: E731  (tuples, NumPy scalars)
    differ = [f"{k}={norm(asked[k])!r} (the checkpoint's: {saved[k]!r})"
              for k in RESUME_SETTINGS if k in saved and k in asked
              and norm(saved[k]) != norm(asked[k])]
    if differ:
        raise ValueError(f"resume from {path}: this fit asks for {', '.join(differ)}; resume "
                         f"with the checkpoint's settings, or start afresh without resume")


def _resume(model, path):
    """Put a checkpoint's model back; (start epoch, history, early-stopping best, its
    bad-epoch count, the schedule's (lr, best loss, bad epochs))."""
    meta, weights, biases, state = read_model(path)
    progress = meta.get("checkpoint")
    if not isinstance(progress, dict):
        raise ModelFileError(f"{path} is a model file, not a checkpoint of fit")
    mine = model._meta()
    for key in ("layer_sizes", "hidden_activation", "output_activation", "loss", "dtype"):
        if meta.get(key) != mine[key]:
            raise ValueError(f"checkpoint {path} is of another model: its {key} is "
                             f"{meta.get(key)!r}, this model's {mine[key]!r}")
    model._set_params(weights, biases)
    model.seed = int(meta["seed"])         # it keys the dropout masks
    restore_training_state(model, meta, state)
    s = progress["schedule"]
    history = History(**progress["history"])
    es = progress.get("early_stopping")
    best, bad_epochs = None, 0
    if es is not None:
        n = len(weights)
        extra = state["extra"]
        best = (es["best_loss"], es["best_epoch"], [extra[f"best_W{l}"] for l in range(n)],
                [extra[f"best_b{l}"] for l in range(n)])
        bad_epochs = es["bad_epochs"]
    return (int(progress["epochs_done"]), history, best, bad_epochs,
            (s["lr"], s["best_loss"], s["bad_epochs"]))


def _guard(model, batch_losses, epoch, lr, finite):
    """Raise TrainingDiverged (with the weights of before the epoch put back) when a
    minibatch loss or a weight stopped being finite."""
    bad = np.flatnonzero(~np.isfinite(batch_losses))
    weights_ok = all(np.isfinite(model.backend.sq_norm(w)) for w in model._net.weights)
    if bad.size == 0 and weights_ok:
        return
    where = (f"minibatch {int(bad[0]) + 1} of epoch {epoch + 1} with learning rate {lr:g}: "
             f"its loss is not finite" if bad.size else
             f"epoch {epoch + 1} with learning rate {lr:g}: the weights are not finite")
    model._set_params(*finite, keep_state=True)
    raise TrainingDiverged(
        f"training diverged at {where}. "
        f"The model keeps the weights it had before epoch {epoch + 1}; try a smaller "
        f"learning rate, or fit(..., on_divergence='continue') to train on regardless")


def _optimizer(name, momentum, nesterov, beta_1, beta_2, epsilon):
    checks.choice("optimizer", name, OPTIMIZERS)
    momentum = checks.non_negative_float("momentum", momentum, upper=1.0)
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"nesterov must be True or False; got {nesterov!r}")
    for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        value = checks.non_negative_float(key, value)
        if value >= 1:
            raise ValueError(f"{key} must be in [0, 1); got {value!r}")
    epsilon = checks.non_negative_float("epsilon", epsilon)
    if name == "adam" and epsilon == 0:
        raise ValueError("epsilon must be > 0 for adam")
    return Optimizer(name, float(momentum), bool(nesterov), float(beta_1), float(beta_2),
                     float(epsilon))


def _split(y, fraction, seed):
    """(train rows, held-out rows): a stratified share `fraction` of every class held out,
    drawn from the model's seed (the same split for the same seed and data)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    # classes are strata for labels; target rows (regression, indicators) form one stratum
    strata = [np.flatnonzero(y == label) for label in np.unique(y)] if y.ndim == 1 \
        else [np.arange(len(y))]
    held = []
    for rows in strata:
        k = int(round(fraction * len(rows)))
        held.append(rng.permutation(rows)[:min(k, len(rows) - 1)])
    held = np.sort(np.concatenate(held))
    if held.size == 0 or held.size == len(y):
        raise ValueError(f"validation_fraction={fraction} leaves no rows to validate on or to "
                         f"train on ({len(y)} rows); give validation_data or another fraction")
    keep = np.ones(len(y), dtype=bool)
    keep[held] = False
    return np.flatnonzero(keep), held


def epoch_runner(model, X, y, *, batch_size, learning_rate, momentum=0.0, order=None,
                 optimizer="sgd", nesterov=False, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 alpha=0.0, dropout=None):
    """A callable that trains `model` for one epoch over (X, y) per call, in a fixed order
    (default: a permutation drawn once from seed 1), and returns the minibatch losses
    (a float64 array it reuses). X and y are checked and moved to the backend once, here,
    so that a benchmark times the epoch and nothing else. The optimizer arguments are fit's;
    the optimizer's state carries over between calls (and to and from fit)."""
    batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.non_negative_float("learning_rate", learning_rate)
    opt = _optimizer(optimizer, momentum, nesterov, beta_1, beta_2, epsilon)
    alpha = checks.non_negative_float("alpha", alpha)
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
    state = model._optimizer_state(opt)
    drop_rates = None if dropout is None else masks.rates(dropout, len(model.layer_sizes) - 1)

    def run():
        drop = None if drop_rates is None else \
            (drop_rates, masks.epoch_key(model.seed, state["epochs"]))
        be.train_epoch(net, Xb, yb, order, batch_size, opt.rule(lr, state["t"]), alpha, ws,
                       losses, None, None, drop)
        state["epochs"] += 1
        state["t"] += len(losses)
        be.synchronize()
        return losses
    return run
