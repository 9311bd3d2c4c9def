"""scikit-learn's solvers on the engine: the stochastic one (sgd, adam), a configuration of
the engine's Trainer (engine/training.py) by `_ScikitLearnHooks`, and L-BFGS (SciPy's, on
the backend's whole-set loss and gradient).

Both read their settings from the estimator (engine/sklearn/estimators.py) and train its
`EngineNet`. They reproduce scikit-learn's MLP step for step: the same RandomState draws
in the same order (early-stopping split, the per-epoch shuffle of the sample index), the
same update (engine/optimizers.py writes out the rules, which are scikit-learn's), the
same bookkeeping at the end of each epoch (loss curve, stopping, learning-rate schedule).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle as shuffled
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
from sklearn.utils.optimize import _check_optimize_result

from .. import fit_options, interrupt
from ..training import Hooks, Trainer
from .network import EngineNet

# rows densified at a time when X is sparse (a whole number of minibatches)
SPARSE_BLOCK_ROWS = 8192
# rows per chunk when L-BFGS evaluates the whole set
LBFGS_CHUNK_ROWS = 8192


def optimizer_options(est):
    """The Trainer's optimizer options (engine/fit_options.py) for the estimator's solver."""
    if est.solver == "adam":
        return dict(optimizer="adam", beta_1=float(est.beta_1), beta_2=float(est.beta_2),
                    epsilon=float(est.epsilon))
    return dict(optimizer="sgd", momentum=float(est.momentum),
                nesterov=bool(est.nesterovs_momentum))


def fit_stochastic(est, net: EngineNet, X, Y, sample_weight, incremental):
    """scikit-learn's _fit_stochastic: epochs of minibatch steps until max_iter, or until
    the training loss (or, with early stopping, the validation score) stops improving.
    X: the validated features (dense or sparse); Y: scikit-learn's 2-D targets (the label
    indicators for a classifier). The loop is the engine's Trainer; what is
    scikit-learn's is in its hooks."""
    if not incremental or getattr(est, "_solver_lr", None) is None:
        # a new optimizer, as scikit-learn makes one per fit: fresh moments and step count
        est._solver_lr = float(est.learning_rate_init)
        net.reset_optimizer()
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    rng = est._random_state
    n_all = X.shape[0]
    rows = np.arange(n_all)
    val = None
    if est.early_stopping:
        # split the row numbers: the same draws as splitting (X, y[, w]) themselves
        stratify = Y if (est._is_classifier and est.n_outputs_ == 1) else None
        train, held = train_test_split(rows, random_state=rng,
                                       test_size=est.validation_fraction, stratify=stratify)
        if held.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        if sample_weight is not None and not np.any(sample_weight[held] > 0):
            raise ValueError(f"early_stopping: all {held.shape[0]} validation rows "
                             f"(validation_fraction={est.validation_fraction}) have "
                             f"sample_weight 0, so the validation score is undefined; give "
                             f"them weight, or set early_stopping=False")
        val = (X[held], est._score_targets(Y[held]),
               None if sample_weight is None else sample_weight[held])
        rows = train
    n = rows.shape[0]
    if est.batch_size == "auto":
        batch_size = min(200, n)
    else:
        if est.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                          "going to be clipped")
        batch_size = int(np.clip(est.batch_size, 1, n))
    hooks = _ScikitLearnHooks(est, net, X, est._engine_targets(Y), sample_weight, rows,
                              batch_size, val, incremental, est._dropout_seed())
    options = fit_options.check(dict(
        epochs=1 if incremental else est.max_iter, batch_size=batch_size,
        alpha=float(est.alpha), shuffle=bool(est.shuffle), dropout=est.dropout,
        on_divergence="continue", progress=False, **optimizer_options(est)))
    est.n_iter_ = 0
    with interrupt.stop_at_boundaries():
        try:
            Trainer(net.model, X, None, options, hooks).run()
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
    if est.early_stopping:
        net.load(est._best_coefs, est._best_intercepts, keep_state=True)


class _ScikitLearnHooks(Hooks):
    """scikit-learn's stochastic solver as a configuration of the engine's Trainer: its
    rows (the training split) in its order (a RandomState shuffle of the sample index each
    epoch), its minibatches (sparse X densified in blocks), its learning rate and its
    bookkeeping at each epoch's end (loss curve, no-improvement count on the training loss
    or the validation score, the adaptive schedule, stopping); no whole-set scores."""

    name = "sklearn"
    writes_files = False

    def __init__(self, est, net, X, T, sample_weight, rows, batch_size, val, incremental,
                 seed):
        self.est, self.net, self.rows, self.val = est, net, rows, val
        self.incremental, self.seed = incremental, seed
        self.sample_idx = np.arange(rows.shape[0], dtype=int)
        self.runner = _EpochRunner(net, X, T, sample_weight, rows, batch_size)

    def check_data(self, model, X, y):
        return X, y                         # scikit-learn's validation ran already

    def sample_weight(self, sw, n, dtype):
        return None                         # the runner has them

    def to_backend(self, trainer):
        trainer.Xb = trainer.yb = trainer.swb = None    # the runner moved them

    def start(self, trainer):
        trainer.n = self.rows.shape[0]

    def shuffle(self, trainer, order):
        self.sample_idx = shuffled(self.sample_idx, random_state=self.est._random_state)

    def epoch(self, trainer, order, rule, norms, drop):
        order = np.ascontiguousarray(self.rows[self.sample_idx], dtype=np.int64)
        return self.runner.run(order, rule, trainer.alpha, drop, trainer.batch_losses)

    def evaluate(self, trainer, X, y, weights, stats=None):
        return float("nan"), float("nan")

    def learning_rate(self, trainer, epoch):
        return self.est._solver_lr

    def dropout_seed(self, trainer):
        return self.seed

    def epoch_done(self, trainer, epoch, history, losses):
        est, n = self.est, trainer.n
        est.n_iter_ += 1
        est.loss_ = float(np.dot(losses, self.runner.batch_rows(n)) / n)
        est.t_ += n
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
        _update_no_improvement_count(est, self.net, self.val)
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            est._solver_lr = float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            if _trigger_stopping(est):
                return "no improvement"
            est._no_improvement_count = 0
        if self.incremental:
            return "one epoch (partial_fit)"
        if est.n_iter_ == est.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                          "optimization hasn't converged yet." % est.max_iter,
                          ConvergenceWarning)
        return None


def _update_no_improvement_count(est, net, val):
    if val is not None:
        coefs, intercepts = net.params()
        score = est._score_with_params(coefs, intercepts, *val)
        est.validation_scores_.append(score)
        if est.verbose:
            print("Validation score: %f" % score)
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_coefs, est._best_intercepts = coefs, intercepts
    else:
        loss = est.loss_curve_[-1]
        if loss > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if loss < est.best_loss_:
            est.best_loss_ = loss


def _trigger_stopping(est):
    """Whether training stops, scikit-learn's rule: it does, except that the adaptive
    schedule first divides the learning rate by 5 until it is at or below 1e-6."""
    what = "Validation score" if est.early_stopping else "Training loss"
    msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
           % (what, est.tol, est.n_iter_no_change))
    if est.solver != "sgd" or est.learning_rate != "adaptive":
        if est.verbose:
            print(msg + " Stopping.")
        return True
    if est._solver_lr <= 1e-6:
        if est.verbose:
            print(msg + " Learning rate too small. Stopping.")
        return True
    est._solver_lr /= 5.0
    if est.verbose:
        print(msg + " Setting learning rate to %f" % est._solver_lr)
    return False


class _EpochRunner:
    """One epoch per call over `rows` of (X, T) in the order it is given, through the
    backend's train_epoch. Dense X moves to the backend once; sparse X is densified a
    block of minibatches at a time (each block one train_epoch call)."""

    def __init__(self, net, X, T, sample_weight, rows, batch_size):
        self.net, self.rows, self.batch_size = net, rows, batch_size
        net.model.state.forget_data()             # X may be an array trained on before
        be, dt = net.backend, net.dtype
        self.sparse = sp.issparse(X)
        self.X = X if self.sparse else be.asarray(X, dt)
        self.T, self.T_host = be.asarray(T), T
        self.w_host = None if sample_weight is None else np.asarray(sample_weight, dt)
        self.w = None if sample_weight is None else be.asarray(self.w_host)
        self.n_batches = -(-rows.shape[0] // batch_size)

    def batch_rows(self, n):
        sizes = np.full(self.n_batches, float(self.batch_size))
        sizes[-1] = n - self.batch_size * (self.n_batches - 1)
        return sizes

    def run(self, order, rule, alpha, drop, losses):
        """One epoch over the rows `order` by `rule` (its t: the steps before it), its
        minibatch losses into `losses`; the minibatches trained (fewer after Ctrl-C)."""
        if not self.sparse:
            return self.net.train_epoch(self.X, self.T, order, self.batch_size, rule, alpha,
                                        losses, self.w, drop)
        return self._run_blocks(order, rule, alpha, drop, losses)

    def _run_blocks(self, order, rule, alpha, drop, losses):
        if drop is not None:
            raise ValueError("dropout is not supported with sparse X; pass X.toarray()")
        be, dt, net = self.net.backend, self.net.dtype, self.net
        block = max(1, SPARSE_BLOCK_ROWS // self.batch_size) * self.batch_size
        done = 0
        for start in range(0, order.shape[0], block):
            idx = order[start:start + block]
            Xb = be.asarray(np.ascontiguousarray(self.X[idx].toarray(), dtype=dt))
            Tb = be.asarray(np.ascontiguousarray(self.T_host[idx]))
            wb = None if self.w_host is None else be.asarray(self.w_host[idx])
            first = start // self.batch_size
            k = -(-idx.shape[0] // self.batch_size)
            out = losses[first:first + k]
            ran = net.train_epoch(Xb, Tb, np.arange(idx.shape[0], dtype=np.int64),
                                  self.batch_size, rule._replace(t=rule.t + done), alpha,
                                  out, wb, None)
            done += ran
            if ran < k:
                break
        return done


def fit_lbfgs(est, net: EngineNet, X, Y, sample_weight):
    """scikit-learn's _fit_lbfgs: SciPy's L-BFGS-B over the packed parameters (every coef
    in scikit-learn's (n_in, n_out) layout, then every intercept), the engine computing the
    whole set's loss and gradient."""
    shapes = [c.shape for c in est.coefs_]
    sizes = [c.size for c in est.coefs_] + [b.size for b in est.intercepts_]
    cuts = np.cumsum(sizes)[:-1]
    n_layers = len(shapes)
    objective = _WholeSetObjective(net, X, est._engine_targets(Y), sample_weight,
                                   float(est.alpha))

    def unpack(packed):
        parts = np.split(packed, cuts)
        return ([p.reshape(s) for p, s in zip(parts[:n_layers], shapes)], parts[n_layers:])

    def loss_grad(packed):
        coefs, intercepts = unpack(packed)
        net.load(coefs, intercepts, keep_state=True)
        loss, gcoefs, gintercepts = objective()
        return loss, np.concatenate([g.ravel() for g in gcoefs + gintercepts])

    x0 = np.concatenate([c.ravel() for c in est.coefs_ + est.intercepts_])
    iprint = 1 if (est.verbose is True or est.verbose >= 1) else -1
    result = scipy.optimize.minimize(
        loss_grad, x0, method="L-BFGS-B", jac=True,
        options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol,
                 **_get_additional_lbfgs_options_dict("iprint", iprint)})
    est.n_iter_ = _check_optimize_result("lbfgs", result, est.max_iter)
    est.loss_ = float(result.fun)
    net.load(*unpack(result.x), keep_state=True)


class _WholeSetObjective:
    """The loss of the whole training set (L2 term included) and its gradient in
    scikit-learn's layout (EngineNet.whole_set forms the data term: one native pass on
    the native backend)."""

    def __init__(self, net, X, T, sample_weight, alpha):
        self.net, self.X, self.T, self.alpha = net, X, T, alpha
        self.w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        self.total = float(X.shape[0] if self.w is None else self.w.sum())

    def __call__(self):
        net = self.net
        coefs, _ = net.params()
        terms = net.whole_set(self.X, self.T, self.w, LBFGS_CHUNK_ROWS)
        if terms is None:      # every sample weight zero: no data term (scikit-learn: nan)
            loss = 0.0
            gcoefs = [np.zeros_like(c) for c in coefs]
            gintercepts = [np.zeros(c.shape[1], c.dtype) for c in coefs]
        else:
            loss, gw, gintercepts = terms
            gcoefs = [np.ascontiguousarray(g.T) for g in gw]
        if self.alpha:
            loss += 0.5 * self.alpha * sum(float(np.vdot(c, c)) for c in coefs) / self.total
            for g, c in zip(gcoefs, coefs):
                g += (self.alpha / self.total) * c
        return loss, gcoefs, gintercepts
