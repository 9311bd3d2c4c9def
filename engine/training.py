"""The trainer: the one training loop behind `MLP.fit`, `engine.distributed.fit` and
engine.sklearn's stochastic solver (`MLP.epoch_runner` is its epoch alone).

A `Trainer` runs epochs over a model's `TrainState` (engine/train_state.py) with options
checked once from the table in engine/fit_options.py. What differs between entry points
is a `Hooks` object: where the rows come from and in what order, how a minibatch's
gradient is reduced (the backend's `train_epoch(reduce=...)`), how the whole set is scored,
the learning rate and the rule that ends training at an epoch's end, who writes files and
shows progress. The single-process hooks are below; the distributed fit's (MPI
all-reduce, local SGD) are in engine/distributed.py, scikit-learn's (its shuffles, sparse
blocks and bookkeeping) in engine/sklearn/solvers.py. Everything else (the step and sample
counters, the divergence guard, validation, checkpoints and resume, Ctrl-C) is written
once, here.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from . import checks, fit_options, interrupt
from . import dropout as masks
from .errors import ModelFileError, TrainingDiverged
from .evaluation import evaluate
from .history import History, epochs_text
from .model_file import read_model, restore_training_state, save_model
from .optimizers import Schedule
from .precision import BF16_MIXED
from .progress import ProgressBar

# what a resumed fit must share with the fit that wrote the checkpoint (epochs may grow)
RESUME_SETTINGS = ("batch_size", "learning_rate", "momentum", "optimizer", "nesterov", "alpha",
                   "schedule", "early_stopping", "dropout")


class Hooks:
    """What a single-process fit does at the points where entry points differ."""

    name = "fit"
    writes_files = True       # checkpoints; the distributed fit writes on rank 0 only

    def check_data(self, model, X, y):
        return model.check_xy(X, y)

    def to_backend(self, trainer):
        """The rows, targets and sample weights on the backend: trainer.Xb, yb, swb."""
        be = trainer.backend
        trainer.Xb, trainer.yb = be.asarray(trainer.X), be.asarray(trainer.y)
        trainer.swb = None if trainer.sw is None else be.asarray(trainer.sw)

    def start(self, trainer):
        """After the data is checked and on the backend, before the first epoch."""

    def n_batches(self, trainer):
        """Minibatch steps per epoch."""
        return -(-trainer.n // trainer.batch_size)

    def shuffle(self, trainer, order):
        trainer.model.state.rng.shuffle(order)     # in place: an epoch allocates nothing

    def epoch(self, trainer, order, rule, norms, drop):
        """Train one epoch; the minibatches done (fewer after Ctrl-C) and their losses."""
        done = trainer.backend.train_epoch(trainer.net, trainer.Xb, trainer.yb, order,
                                           trainer.batch_size, rule, trainer.alpha,
                                           trainer.ws, trainer.batch_losses, norms,
                                           trainer.swb, drop)
        return trainer.n_batches if done is None else done

    def evaluate(self, trainer, X, y, weights, stats=None):
        """(loss, accuracy) of the model over (X, y) (backend arrays)."""
        return evaluate(trainer.model, X, y, stats=stats, weights=weights,
                        bf16=trainer.model.precision == BF16_MIXED)

    def sample_weight(self, sw, n, dtype):
        return checks.sample_weight(sw, n, dtype)

    def split(self, y, fraction, seed):
        """(train rows, held-out rows) for early stopping without validation_data."""
        return split_rows(y, fraction, seed)

    def any_rank(self, flag):
        """Whether flag holds anywhere (one process: here)."""
        return flag

    def progress_enabled(self, wanted):
        return wanted

    def checkpoint_extra(self, trainer):
        """(metadata, arrays) a checkpoint keeps beside the model's own state."""
        return {}, {}

    def resume(self, trainer, progress, extra):
        """After start: the hooks' own state back from a checkpoint's progress and arrays."""

    def samples_per_epoch(self, trainer):
        return trainer.n

    def learning_rate(self, trainer, epoch):
        """The learning rate of this epoch: the schedule's."""
        return trainer.sched.learning_rate(epoch, trainer.counters["samples"])

    def dropout_seed(self, trainer):
        """What keys the dropout masks (with the epochs trained)."""
        return trainer.model.seed

    def epoch_done(self, trainer, epoch, history, losses):
        """After an epoch and its scores: why training stops, or None. The engine's rule:
        the schedule's (on the mean minibatch loss, as scikit-learn), and with early
        stopping scikit-learn's rule on the validation loss: an epoch that does not beat
        the best so far by tol counts against it; more than n_iter_no_change in a row
        stop. The best epoch's weights are kept in trainer.best."""
        o = trainer.options
        reason = trainer.sched.epoch_done(float(np.mean(losses)))
        if o["early_stopping"]:
            vloss, tol, best = history.val_loss[-1], o["tol"], trainer.best
            trainer.bad_epochs = trainer.bad_epochs + 1 \
                if best is not None and vloss > best[0] - tol else 0
            if best is None or vloss < best[0]:
                trainer.best = (vloss, epoch, *trainer.model.state.host_params())
            if trainer.bad_epochs > o["n_iter_no_change"]:
                reason = (f"validation loss did not improve by tol={tol:g} for more "
                          f"than {o['n_iter_no_change']} epochs")
        return reason


class Trainer:
    """One fit of `model` on (X, y) with checked `options` (fit_options.check)."""

    def __init__(self, model, X, y, options, hooks=None):
        self.model, self.options = model, options
        self.hooks = hooks or Hooks()
        self.opt = fit_options.optimizer(options)
        self.alpha = options["alpha"]
        self.drop_rates = fit_options.dropout_rates(options["dropout"],
                                                    len(model.layer_sizes) - 1)
        X, y = self.hooks.check_data(model, X, y)
        sw = options["sample_weight"]
        sw = self.hooks.sample_weight(sw, X.shape[0], model.dtype)
        self.val = self.val_w = None
        if options["validation_data"] is not None:
            try:
                Xv, yv = options["validation_data"]
            except (TypeError, ValueError):
                raise TypeError("validation_data must be a pair (X_val, y_val)") from None
            self.val = model.check_xy(Xv, yv, "validation_data[0]", "validation_data[1]")
        elif options["early_stopping"]:
            train, held = self.hooks.split(y, options["validation_fraction"], model.seed)
            self.val = (X[held], y[held])
            self.val_w = None if sw is None else sw[held]
            X, y, sw = X[train], y[train], (None if sw is None else sw[train])
        self.X, self.y, self.sw = X, y, sw
        self.n = X.shape[0]

    # the model's state, as the hooks and the loop use it
    @property
    def backend(self):
        return self.model.backend

    @property
    def net(self):
        return self.model.state.net

    def run(self) -> History:
        try:
            return self._run()
        finally:
            self.model.state.forget_data()      # the packed copies of X: memory back

    def _run(self) -> History:
        model, o, hooks = self.model, self.options, self.hooks
        state = model.state
        be = self.backend
        # resuming replaces the model's arrays and seed: before anything below uses them
        checkpoint = o["checkpoint"]
        resumed = _resume(model, checkpoint) \
            if o["resume"] and os.path.exists(checkpoint) else None
        self.batch_size = min(o["batch_size"], max(self.n, 1))
        hooks.to_backend(self)
        val_b = (be.asarray(self.val[0]), be.asarray(self.val[1])) if self.val else None
        self.ws = state.workspace(self.batch_size)
        state.forget_data()
        hooks.start(self)
        if resumed is not None:
            hooks.resume(self, resumed[5], resumed[6])
        self.n_batches = hooks.n_batches(self)
        self.batch_losses = np.empty(self.n_batches)
        counters = self.counters = state.optimizer_state(self.opt)
        history = History(batches_per_epoch=self.n_batches, meta=model.metadata(
            epochs=o["epochs"], batch_size=self.batch_size, learning_rate=o["learning_rate"],
            momentum=self.opt.momentum, optimizer=self.opt.name, nesterov=self.opt.nesterov,
            alpha=self.alpha, schedule=o["schedule"] if isinstance(o["schedule"], str)
            else "callable", early_stopping=o["early_stopping"], dropout=self.drop_rates,
            n_train=hooks.samples_per_epoch(self), **getattr(hooks, "meta", {})))
        sched = self.sched = Schedule(o["schedule"], o["learning_rate"], o["power_t"],
                                      o["tol"], o["n_iter_no_change"])
        bar = ProgressBar(o["epochs"], desc=f"{hooks.name}[{be.name}]",
                          enabled=hooks.progress_enabled(o["progress"]))
        order = state.row_order(self.n)
        self.best = None         # early stopping: (validation loss, epoch, weights, biases)
        self.bad_epochs = 0
        start = 0
        if resumed is not None:
            start, saved_history, self.best, self.bad_epochs, saved_schedule = resumed[:5]
            _same_settings(checkpoint, saved_history.meta, history.meta)
            history = saved_history
            sched.lr, sched.best_loss, sched.bad_epochs = saved_schedule
            bar.update(start, "resumed")
            order = state.row_order(self.n)
        guard = o["on_divergence"] == "raise"
        for epoch in range(start, o["epochs"]):
            finite = state.host_params() if guard else None
            t0 = time.perf_counter()
            if o["shuffle"]:
                hooks.shuffle(self, order)
            norms = np.zeros(len(self.net.weights)) if o["diagnostics"] else None
            rule = self.opt.rule(hooks.learning_rate(self, epoch), counters["t"])
            drop = None if self.drop_rates is None else \
                (self.drop_rates, masks.epoch_key(hooks.dropout_seed(self), counters["epochs"]))
            done = hooks.epoch(self, order, rule, norms, drop)
            losses = self.batch_losses
            if done < self.n_batches:
                # Ctrl-C: the minibatches trained count, the model stays as they left it
                counters["t"] += done
                history.batch_loss.extend(losses[:done].tolist())
                history.stop_reason = (f"interrupted (Ctrl-C) after minibatch {done} of "
                                       f"epoch {epoch + 1}")
                raise KeyboardInterrupt(history.stop_reason)
            counters["epochs"] += 1
            if guard:
                self._guard(losses, epoch, rule.learning_rate, finite)
            counters["t"] += self.n_batches
            counters["samples"] += hooks.samples_per_epoch(self)
            record = None
            if o["diagnostics"]:
                record = {"grad_norm": (norms / self.n_batches).tolist(),
                          "weight_norm": [float(np.sqrt(be.sq_norm(w)))
                                          for w in self.net.weights]}
            be.synchronize()
            history.epoch_time.append(time.perf_counter() - t0)
            history.batch_loss.extend(losses.tolist())
            history.learning_rate.append(rule.learning_rate)
            loss, acc = hooks.evaluate(self, self.Xb, self.yb, self.sw, stats=record)
            history.epoch_loss.append(loss)
            history.epoch_accuracy.append(acc)
            if o["diagnostics"]:
                history.diagnostics.append(record)
            if val_b is not None:
                vloss, vacc = hooks.evaluate(self, *val_b, self.val_w)
                history.val_loss.append(vloss)
                history.val_accuracy.append(vacc)
            bar.update(1, _epoch_text(history, loss, acc, val_b is not None))
            reason = hooks.epoch_done(self, epoch, history, losses)
            if interrupt.requested():      # Ctrl-C while evaluating: the epoch is whole
                if checkpoint is not None:
                    self._checkpoint(epoch + 1, history)
                history.stop_reason = f"interrupted (Ctrl-C) after epoch {epoch + 1}"
                raise KeyboardInterrupt(history.stop_reason)
            if checkpoint is not None and (reason or (epoch + 1) % o["checkpoint_every"] == 0
                                           or epoch + 1 == o["epochs"]):
                self._checkpoint(epoch + 1, history)
            if reason:
                history.stop_reason = reason
                break
        best = self.best
        if o["early_stopping"] and best is not None:
            history.best_epoch = best[1] + 1
            if best[1] != history.epochs - 1:
                state.set_params(best[2], best[3], keep_state=True)
                history.stop_reason = (history.stop_reason or "epochs done") + \
                    f"; weights of epoch {best[1] + 1} (best validation loss) restored"
        if history.stop_reason is None:
            history.stop_reason = f"{epochs_text(history.epochs)} done"
        return history

    def _guard(self, losses, epoch, lr, finite):
        """Raise TrainingDiverged (with the weights of before the epoch put back) when a
        minibatch loss or a weight stopped being finite (on any rank)."""
        bad = np.flatnonzero(~np.isfinite(losses))
        weights_ok = self.model.state.params_finite()
        if not self.hooks.any_rank(bad.size > 0 or not weights_ok):
            return
        where = (f"minibatch {int(bad[0]) + 1} of epoch {epoch + 1} with learning rate "
                 f"{lr:g}: its loss is not finite" if bad.size else
                 f"epoch {epoch + 1} with learning rate {lr:g}: the weights are not finite"
                 if not weights_ok else
                 f"epoch {epoch + 1} with learning rate {lr:g} on another rank")
        self.model.state.set_params(*finite, keep_state=True)
        if self.hooks.name == "distributed":
            raise TrainingDiverged(
                f"distributed training diverged in epoch {epoch + 1} (at {where}); every "
                f"rank keeps the weights it had before that epoch; try a smaller learning "
                f"rate, or on_divergence='continue' to train on regardless")
        raise TrainingDiverged(
            f"training diverged at {where}. "
            f"The model keeps the weights it had before epoch {epoch + 1}; try a smaller "
            f"learning rate, or fit(..., on_divergence='continue') to train on regardless")

    def _checkpoint(self, epochs_done, history):
        """The model file (weights, optimizer state, shuffling state and row order) with the
        fit's own progress: epochs done, history, schedule and early-stopping state."""
        sched, best, bad_epochs = self.sched, self.best, self.bad_epochs
        extra_meta, extra = self.hooks.checkpoint_extra(self)
        if not self.hooks.writes_files:
            return
        if best is not None:
            for l, (w, b) in enumerate(zip(best[2], best[3])):
                extra[f"best_W{l}"], extra[f"best_b{l}"] = w, b
        # the minibatch losses as an array, not JSON: written after every epoch, the list
        # made checkpointing quadratic (100 lecture epochs spent seconds encoding it)
        record = history.to_dict()
        extra["history_batch_loss"] = np.asarray(record.pop("batch_loss"), dtype=np.float64)
        progress = {"epochs_done": epochs_done, "history": record,
                    "schedule": {"lr": sched.lr, "best_loss": sched.best_loss,
                                 "bad_epochs": sched.bad_epochs},
                    "early_stopping": None if best is None else
                    {"best_loss": best[0], "best_epoch": best[1], "bad_epochs": bad_epochs},
                    **extra_meta}
        save_model(self.model, self.options["checkpoint"],
                   extra_meta={"checkpoint": progress}, extra_arrays=extra)


def _epoch_text(history, loss, acc, validated):
    info = f"loss {loss:.4f}"
    if acc == acc:                     # nan for regression
        info += f" acc {100 * acc:.2f}%"
        if validated:
            info += f" val {100 * history.val_accuracy[-1]:.2f}%"
    elif validated:
        info += f" val loss {history.val_loss[-1]:.4f}"
    return info


def fit(model, X, y, hooks=None, **options) -> History:
    """What `MLP.fit` documents; Ctrl-C stops it at the next minibatch boundary
    (engine/interrupt.py) with a KeyboardInterrupt, the model left usable."""
    options = fit_options.check(options)
    with interrupt.stop_at_boundaries():
        return Trainer(model, X, y, options, hooks).run()


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
    bad-epoch count, the schedule's (lr, best loss, bad epochs), the checkpoint's progress
    record and its extra arrays)."""
    meta, weights, biases, state = read_model(path)
    progress = meta.get("checkpoint")
    if not isinstance(progress, dict):
        raise ModelFileError(f"{path} is a model file, not a checkpoint of fit")
    mine = model.metadata()
    # a file older than bf16-mixed names no precision: it trained in its dtype
    theirs = dict(meta, precision=meta.get("precision") or meta.get("dtype"))
    for key in ("layer_sizes", "hidden_activation", "output_activation", "loss", "dtype",
                "precision"):
        if theirs.get(key) != mine[key]:
            raise ValueError(f"checkpoint {path} is of another model: its {key} is "
                             f"{theirs.get(key)!r}, this model's {mine[key]!r}")
    model.state.set_params(weights, biases)
    model.seed = int(meta["seed"])         # it keys the dropout masks
    restore_training_state(model, meta, state)
    s = progress["schedule"]
    record, extra = dict(progress["history"]), state["extra"]
    if "history_batch_loss" in extra:
        record["batch_loss"] = extra["history_batch_loss"].tolist()
    history = History(**record)
    es = progress.get("early_stopping")
    best, bad_epochs = None, 0
    if es is not None:
        n = len(weights)
        best = (es["best_loss"], es["best_epoch"], [extra[f"best_W{l}"] for l in range(n)],
                [extra[f"best_b{l}"] for l in range(n)])
        bad_epochs = es["bad_epochs"]
    return (int(progress["epochs_done"]), history, best, bad_epochs,
            (s["lr"], s["best_loss"], s["bad_epochs"]), progress, state["extra"])


def split_rows(y, fraction, seed):
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
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    if held.size == 0 or held.size == len(y):
        raise ValueError(f"validation_fraction={fraction} leaves no rows to validate on or to "
                         f"train on ({len(y)} rows); give validation_data or another fraction")
    keep = np.ones(len(y), dtype=bool)
    keep[held] = False
    return np.flatnonzero(keep), held


def epoch_runner(model, X, y, *, order=None, **options):
    """A callable that trains `model` for one epoch over (X, y) per call, in a fixed order
    (default: a permutation drawn once from seed 1), and returns the minibatch losses
    (a float64 array it reuses). X and y are checked and moved to the backend once, here,
    so that a benchmark times the epoch and nothing else. The options are fit's optimizer
    ones, batch_size, learning_rate, alpha and dropout; the optimizer's state carries over
    between calls (and to and from fit)."""
    o = fit_options.check(options, RUNNER_OPTIONS)
    opt = fit_options.optimizer(o)
    X, y = model.check_xy(X, y)
    n = X.shape[0]
    batch_size = min(o["batch_size"], n)
    if order is None:
        order = np.random.default_rng(1).permutation(n)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.ndim != 1 or (order.size and (order.min() < 0 or order.max() >= n)):
        raise ValueError(f"order must be a 1-D array of row numbers in [0, {n})")
    be, state = model.backend, model.state
    Xb, yb = be.asarray(X), be.asarray(y)
    ws = state.workspace(batch_size)
    state.forget_data()
    losses = np.empty(-(-order.size // batch_size))
    counters = state.optimizer_state(opt)
    drop_rates = fit_options.dropout_rates(o["dropout"], len(model.layer_sizes) - 1)

    def run():
        drop = None if drop_rates is None else \
            (drop_rates, masks.epoch_key(model.seed, counters["epochs"]))
        be.train_epoch(state.net, Xb, yb, order, batch_size,
                       opt.rule(o["learning_rate"], counters["t"]), o["alpha"], ws, losses,
                       None, None, drop)
        counters["epochs"] += 1
        counters["t"] += len(losses)
        be.synchronize()
        return losses
    return run


RUNNER_OPTIONS = ("batch_size", "learning_rate", "alpha", "dropout") + \
    fit_options.OPTIMIZER_OPTIONS
