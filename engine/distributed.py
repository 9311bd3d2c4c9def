"""Data-parallel training over MPI: each process (rank) holds a shard of the rows, and all
of them train one model by synchronous minibatch SGD.

    mpiexec -n 4 python train.py          # or: mpiexec -n 4 engine train --distributed

    from mpi4py import MPI
    import engine, engine.distributed as dist
    X, y = dist.load_shard("train.npy", "labels.npy", MPI.COMM_WORLD)   # its rows only
    model = engine.MLP([784, 100, 10], "relu", backend="native", seed=1)
    history = dist.fit(model, X, y, comm=MPI.COMM_WORLD, epochs=10, batch_size=50)

The global minibatch. Every epoch each rank shuffles its own shard with a generator seeded
once from (rank 0's model seed, rank), and step k trains on the k-th `batch_size` rows of every rank's
order, in rank order: a global minibatch of ranks x batch_size rows (a rank whose shard has
run out adds none). One process training on the same rows with batch ranks x batch_size,
in that interleaved order, takes the same steps: `global_order` builds that order, and the
tests hold the weights of the two equal to 1e-12 in float64.

One step: each rank forms the gradient of its part of the minibatch (forward and backward
through the model's backend; on the native backend the whole epoch runs in C and calls
back for the reduction), multiplied back by its row count into sums, in one
contiguous buffer (every weight and bias of every layer, then the loss and the row count);
one `Allreduce` sums the buffers; every rank divides by the minibatch's rows and applies
the same optimizer step (any of engine.optimizers: sgd, momentum, nesterov, adam; L2; the
schedules), so the replicas stay identical without sending parameters. The buffer and
every array a step touches are allocated once per fit.

Rank 0's initial parameters are broadcast first. Every rank returns the History (losses
and accuracies are over all shards); only rank 0 writes files (`out=`). A rank that raises
calls MPI Abort, which ends every rank at once with the error on stderr, instead of leaving
the others waiting in a collective.

Supported: host backends (numpy, native), every optimizer and schedule of `MLP.fit`,
sample weights, validation data (sharded like the training rows). Not supported (yet):
early stopping, dropout, checkpoints/resume, the CUDA backend. Local SGD: `sync_every`.
mpi4py is an optional extra (`pip install "engine[mpi]"`); `import engine` does not need it.
"""
from __future__ import annotations

import array
import os
import sys
import time
import traceback

import numpy as np

from . import checks
from .backends.base import batch_weight
from .errors import TrainingDiverged
from .history import History, epochs_text
from .optimizers import Optimizer, Schedule

# the buffer's two slots after the gradients: the summed loss and the rows (or weights)
EXTRA_SLOTS = 2


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError('engine.distributed needs mpi4py and an MPI library: '
                          'pip install "engine[mpi]"') from exc
    return MPI


def shard_range(n, rank, size):
    """The rows [start, stop) of rank `rank` of `size` over n rows: contiguous, sizes
    differing by at most one."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def load_shard(X, y, comm, mmap=True):
    """This rank's rows of X and y: arrays, or paths to .npy files (memory-mapped, so that
    only the shard is read). Nobody holds the whole set."""
    def rows(a):
        if isinstance(a, (str, os.PathLike)):
            a = np.load(a, mmap_mode="r" if mmap else None)
        start, stop = shard_range(a.shape[0], comm.Get_rank(), comm.Get_size())
        return np.ascontiguousarray(a[start:stop])
    X, y = rows(X), rows(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have different row counts on rank {comm.Get_rank()}: "
                         f"{X.shape[0]} and {y.shape[0]}")
    return X, y


def global_order(shard_orders, batch_size):
    """The single-process row order equal to a distributed epoch: shard_orders[r] lists
    rank r's rows (global numbers) in its shuffled order; step k takes the k-th block of
    batch_size rows of each rank in rank order."""
    steps = max(-(-len(o) // batch_size) for o in shard_orders)
    return np.concatenate([o[k * batch_size:(k + 1) * batch_size]
                           for k in range(steps) for o in shard_orders])


def shard_rng(seed, rank):
    """The generator of rank `rank`'s per-epoch shuffles (seeded once per fit)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(rank)]))


def fit(model, X, y, *, comm, epochs=10, batch_size=100, learning_rate=0.1, momentum=0.0,
        nesterov=False, optimizer="sgd", beta_1=0.9, beta_2=0.999, epsilon=1e-8, alpha=0.0,
        schedule="constant", power_t=0.5, tol=1e-4, n_iter_no_change=10, shuffle=True,
        sample_weight=None, validation_data=None, sync_every=None, out=None,
        progress=True) -> History:
    """Train `model` on this rank's shard (X, y) together with every rank of `comm`;
    `batch_size` is per rank (the global minibatch is comm size x batch_size rows). The
    other arguments are MLP.fit's. Returns the History on every rank; rank 0 writes
    history.json, plot.png and model.npz into `out` when given.

    sync_every=k: local SGD instead: each rank takes k minibatch steps of its own through
    the backend's epoch (the native fused one), then one Allreduce averages the parameters
    and the optimizer's state, weighted by the rows each rank trained. It sends 1/k as
    often; with k = 1, SGD, momentum and Nesterov (whose steps are linear in the gradient)
    take exactly the synchronous steps, Adam does not."""
    MPI = _mpi()
    settings = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                    momentum=momentum, nesterov=nesterov, optimizer=optimizer, beta_1=beta_1,
                    beta_2=beta_2, epsilon=epsilon, alpha=alpha, schedule=schedule,
                    power_t=power_t, tol=tol, n_iter_no_change=n_iter_no_change,
                    shuffle=shuffle, sync_every=sync_every, out=out, progress=progress)
    try:
        _same_everywhere(comm, model, X, settings)
        return _fit(MPI, model, X, y, comm, sample_weight, validation_data, **settings)
    except (TrainingDiverged, SettingsDiffer):
        raise                       # every rank decided it together: nothing to abort
    except BaseException:
        abort(comm)
        raise


def _check_shard(model, X, y):
    """model._check_xy for a shard, which may hold no rows (more ranks than rows): an empty
    shard is checked as a one-row one of its shape, then emptied; its rank takes part in
    every step with a zero gradient and weight."""
    if np.ndim(X) == 2 and np.shape(X)[0] == 0 and np.shape(y)[:1] == (0,):
        X1 = np.zeros((1, np.shape(X)[1]), dtype=np.asarray(X).dtype)
        y1 = np.zeros((1,) + np.shape(y)[1:], dtype=np.asarray(y).dtype)
        X1, y1 = model._check_xy(X1, y1)
        return X1[:0], y1[:0]
    return model._check_xy(X, y)


class SettingsDiffer(ValueError):
    """The ranks of a distributed fit were given different settings or networks; raised on
    every rank at the start, before any collective step could hang or diverge."""


def _same_everywhere(comm, model, X, settings):
    """SettingsDiffer on every rank when any two ranks differ in fit settings, network or
    feature count (compared as a digest gathered from every rank)."""
    import hashlib
    import json
    mine = {k: v for k, v in settings.items() if k not in ("out", "progress")}
    mine.update(layer_sizes=model.layer_sizes, hidden=model.hidden_activation,
                output=model.output_activation, loss=model.loss, dtype=model.dtype.name,
                precision=model.precision, features=int(np.shape(X)[1]) if np.ndim(X) == 2
                else None)
    text = json.dumps(mine, sort_keys=True, default=str)
    digests = comm.allgather(hashlib.sha256(text.encode()).hexdigest())
    if len(set(digests)) > 1:
        texts = comm.allgather(text)
        first = json.loads(texts[0])
        differ = sorted({k for t in texts[1:] for k, v in json.loads(t).items()
                         if first.get(k) != v})
        raise SettingsDiffer(f"engine.distributed.fit: the {comm.Get_size()} ranks were given "
                             f"different settings ({', '.join(differ)}; rank 0: "
                             + ", ".join(f"{k}={first.get(k)!r}" for k in differ)
                             + "); every rank must call fit with the same ones")


def _guard(MPI, comm, model, losses, finite, epoch, lr):
    """TrainingDiverged on every rank, the weights of before the epoch put back, when a
    minibatch loss or a weight stopped being finite on any rank (one Allreduce decides, so
    that no rank trains on while another stops)."""
    be = model.backend
    bad = not (np.all(np.isfinite(losses))
               and all(np.isfinite(be.sq_norm(w)) for w in model._net.weights))
    if not comm.allreduce(int(bad), op=MPI.MAX):
        return
    model._set_params(*finite, keep_state=True)
    raise TrainingDiverged(
        f"distributed training diverged in epoch {epoch + 1} with learning rate {lr:g} (a "
        f"minibatch loss or the weights stopped being finite on some rank); every rank "
        f"keeps the weights it had before that epoch; try a smaller learning rate")


def abort(comm, code=1):
    """End every rank now, this rank's traceback on stderr first: the others may be
    waiting in a collective that this one will never reach."""
    if comm.Get_size() > 1:
        sys.stderr.write(f"engine.distributed: rank {comm.Get_rank()} of {comm.Get_size()} "
                         f"failed; aborting every rank:\n{traceback.format_exc()}")
        sys.stderr.flush()
        _let_stderr_drain()
        comm.Abort(code)


def _let_stderr_drain(limit=2.0, grace=0.2):
    """Under mpiexec a rank's stderr is a pipe that the launcher's proxy forwards, and
    Abort tears the proxies down: whatever they have not yet read is lost, the error with
    it (seen on a loaded machine: exit code 1, nothing printed). So wait, up to `limit`
    seconds, until the pipe is empty, then a moment for the forwarding."""
    import fcntl
    import termios
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return
    pending = array.array("i", [0])
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(fd, termios.FIONREAD, pending)
        except OSError:                     # a file or a terminal: nothing to wait for
            return
        if pending[0] == 0:
            break
        time.sleep(0.01)
    time.sleep(grace)


def _fit(MPI, model, X, y, comm, sample_weight, validation_data, *, epochs, batch_size,
         learning_rate, momentum, nesterov, optimizer, beta_1, beta_2, epsilon, alpha,
         schedule, power_t, tol, n_iter_no_change, shuffle, sync_every, out, progress):
    from .training import _optimizer
    rank, size = comm.Get_rank(), comm.Get_size()
    epochs = checks.positive_int("epochs", epochs)
    batch_size = checks.positive_int("batch_size", batch_size)
    lr = checks.non_negative_float("learning_rate", learning_rate)
    opt: Optimizer = _optimizer(optimizer, momentum, nesterov, beta_1, beta_2, epsilon)
    alpha = checks.non_negative_float("alpha", alpha)
    if sync_every is not None:
        sync_every = checks.positive_int("sync_every", sync_every)
    X, y = _check_shard(model, X, y)
    if len(X):
        sw = checks.sample_weight(sample_weight, X.shape[0], model.dtype)
    else:                           # an empty shard: weighted like the others, no rows
        sw = None if sample_weight is None else np.zeros(0, model.dtype)
    val = None
    if validation_data is not None:
        val = model._check_xy(*validation_data, "validation_data[0]", "validation_data[1]")
    be = model.backend
    # every rank starts from rank 0's parameters
    params = np.concatenate([p.ravel() for p in model.weights + model.biases])
    comm.Bcast(params, root=0)
    _unflatten(model, params)
    counts = comm.allgather(X.shape[0])
    if sum(counts) == 0:
        raise ValueError("every rank's shard is empty")
    steps = max(-(-c // batch_size) for c in counts)
    state = model._optimizer_state(opt)
    data = (be.asarray(X), be.asarray(y), None if sw is None else be.asarray(sw))
    if sync_every is not None:
        trainer = _LocalSGD(MPI, comm, model, batch_size, steps, alpha, data, sync_every,
                            counts)
    elif be.name == "native":
        trainer = _NativeGradientAllreduce(MPI, comm, model, batch_size, steps, alpha, data,
                                           opt)
    else:
        trainer = _GradientAllreduce(MPI, comm, model, batch_size, steps, alpha, data)
    sched = Schedule(schedule, lr, power_t, tol, n_iter_no_change)
    rng = shard_rng(comm.bcast(model.seed, root=0), rank)    # one seed: rank 0's
    order = np.arange(X.shape[0], dtype=np.int64)
    history = History(batches_per_epoch=len(trainer.losses), meta=model._meta(
        epochs=epochs, batch_size=batch_size, ranks=size, global_batch=size * batch_size,
        learning_rate=lr, optimizer=opt.name, momentum=opt.momentum, alpha=alpha,
        sync_every=sync_every, n_train=int(sum(counts))))
    for epoch in range(epochs):
        t0 = time.perf_counter()
        if shuffle:
            rng.shuffle(order)
        rule = opt.rule(sched.learning_rate(epoch, state["samples"]), state["t"])
        finite = model.weights, model.biases
        losses = trainer.epoch(order, rule)
        _guard(MPI, comm, model, losses, finite, epoch, rule.learning_rate)
        state["t"] += steps
        state["samples"] += int(sum(counts))
        state["epochs"] += 1
        history.epoch_time.append(time.perf_counter() - t0)
        history.batch_loss.extend(losses.tolist())
        history.learning_rate.append(rule.learning_rate)
        loss, acc = _evaluate(MPI, comm, model, X, y, sw)
        history.epoch_loss.append(loss)
        history.epoch_accuracy.append(acc)
        if val is not None:
            vloss, vacc = _evaluate(MPI, comm, model, *val, None)
            history.val_loss.append(vloss)
            history.val_accuracy.append(vacc)
        if progress and rank == 0:
            print(f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}"
                  + (f" acc {100 * acc:.2f}%" if acc == acc else "")
                  + (f" val {100 * history.val_accuracy[-1]:.2f}%" if val is not None
                     and acc == acc else "")
                  + f" ({history.epoch_time[-1]:.2f} s, {size} ranks)", file=sys.stderr,
                  flush=True)
        reason = sched.epoch_done(float(np.mean(losses)))
        if reason:
            history.stop_reason = reason
            break
    if history.stop_reason is None:
        history.stop_reason = f"{epochs_text(history.epochs)} done"
    if out and rank == 0:
        os.makedirs(out, exist_ok=True)
        history.save(os.path.join(out, "history.json"))
        history.plot(os.path.join(out, "plot.png"), title=f"{size} ranks: {model!r}")
        model.save(os.path.join(out, "model.npz"))
    return history


class _GradientAllreduce:
    """Synchronous SGD: per step, the gradient of every rank's rows, summed by one
    Allreduce of one flat buffer. The workspace's gradient arrays are views into that
    buffer (then the loss and the row count), so a step allocates nothing."""

    def __init__(self, MPI, comm, model, batch_size, steps, alpha, data):
        be, net = model.backend, model._net
        if be.name not in ("numpy", "native"):
            raise ValueError(f"distributed training runs on the numpy or native backend; "
                             f"this model's is {be.name!r}")
        self.MPI, self.comm, self.model = MPI, comm, model
        self.batch_size, self.alpha, self.data = batch_size, alpha, data
        self.flat = np.zeros(sum(p.size for p in net.weights + net.biases) + EXTRA_SLOTS,
                             dtype=net.dtype)
        self.grads = self.flat[:-EXTRA_SLOTS]
        views, start = [], 0
        for p in net.weights + net.biases:
            views.append(self.flat[start:start + p.size].reshape(p.shape))
            start += p.size
        self.ws = be.workspace(net, batch_size)
        self.ws.gw, self.ws.gb = views[:len(net.weights)], views[len(net.weights):]
        self.index = np.empty(batch_size, dtype=np.int64)
        self.losses = np.empty(steps)

    def epoch(self, order, rule):
        for k in range(len(self.losses)):
            self.losses[k] = self.step(order[k * self.batch_size:(k + 1) * self.batch_size],
                                       rule._replace(t=rule.t + k + 1))
        return self.losses

    def reduce(self, i, loss, weight):
        """This rank's mean loss and gradient (in the buffer) over rows weighing `weight`
        become the global ones: sums, one Allreduce, divided by the global weight, which
        it returns with the loss (an all-zero minibatch counts 1: a zero step)."""
        flat = self.flat
        if weight > 0:
            self.grads *= weight        # the local mean back into a sum
            flat[-2], flat[-1] = loss * weight, weight
        else:
            flat[...] = 0
        self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        total = float(flat[-1])
        total = total if total > 0 else 1.0
        self.grads /= flat.dtype.type(total)
        return float(flat[-2]) / total, total

    def step(self, rows, rule):
        """One step on every rank; returns the global minibatch's loss."""
        be, net, ws = self.model.backend, self.model._net, self.ws
        X, y, w = self.data
        m = rows.shape[0]
        if m:
            index = self.index[:m]
            index[...] = rows
            be.gather_(X, y, index, ws.x[:m], ws.t[:m])
            weight = m
            if w is not None:
                be.take_(w, index, ws.w[:m])
                weight = batch_weight(ws.w[:m], m)
                if not np.any(ws.w[:m]):
                    weight = 0.0        # all-zero rows add nothing to the global sums
            loss = be.loss_and_grads(net, ws, m, weighted=w is not None)
        else:
            loss = weight = 0.0
        loss, total = self.reduce(None, loss, weight)
        if self.alpha:
            loss += 0.5 * self.alpha * sum(be.sq_norm(W) for W in net.weights) / total
        be.apply_gradients(net, ws, rule, self.alpha, total)
        return loss


class _NativeGradientAllreduce(_GradientAllreduce):
    """The same steps on the native backend, a whole epoch in C: the BLAS-path epoch forms
    each minibatch's gradients into the flat buffer's views, calls back here for the
    Allreduce (EpochPlan.run(reduce=...)), and steps with the sums. A rank whose shard ran
    out early joins the remaining reductions with nothing (the step above)."""

    def __init__(self, MPI, comm, model, batch_size, steps, alpha, data, opt):
        super().__init__(MPI, comm, model, batch_size, steps, alpha, data)
        from . import _native
        net, ws = model._net, self.ws
        n_state = opt.n_state
        self.plan = _native.EpochPlan(
            net.weights, net.biases, ws.a, ws.d, ws.gb, ws.x, ws.t, net.activations,
            net.loss, net.velocities if n_state >= 1 else None, ws.gw, gemm="blas",
            second_moments=net.second_moments if n_state == 2 else None)

    def epoch(self, order, rule):
        X, y, w = self.data
        done = self.plan.run(X, y, order, rule.learning_rate, rule.momentum, self.losses,
                             rule=rule, alpha=self.alpha, sample_weight=w,
                             reduce=self.reduce)
        for k in range(done, len(self.losses)):      # this shard ran out before the others
            self.losses[k] = self.step(order[:0], rule._replace(t=rule.t + k + 1))
        return self.losses


class _LocalSGD:
    """sync_every=k: rounds of k local minibatches per rank through the backend's own
    epoch, then one Allreduce of every parameter and optimizer-state array, each times the
    rows (or sample weight) the rank trained, divided by their sum. The L2 penalty is
    shared out between the ranks that trained, so that with k = 1 a linear step (SGD,
    momentum, Nesterov) equals the synchronous one."""

    def __init__(self, MPI, comm, model, batch_size, steps, alpha, data, k, counts):
        be, net = model.backend, model._net
        if be.name not in ("numpy", "native"):
            raise ValueError(f"distributed training runs on the numpy or native backend; "
                             f"this model's is {be.name!r}")
        self.MPI, self.comm, self.model, self.k = MPI, comm, model, k
        self.batch_size, self.alpha, self.data, self.counts = batch_size, alpha, data, counts
        self.arrays = None
        self.rounds = -(-steps // k)
        self.losses = np.empty(self.rounds)
        self.local = np.empty(k)
        self.ws = model._workspace(batch_size)

    def _buffer(self):
        net = self.model._net
        # the optimizer's arrays exist once its state was asked for (before the first epoch)
        arrays = net.weights + net.biases + (net.velocities or []) + (net.second_moments or [])
        if self.arrays is None or len(arrays) != len(self.arrays):
            self.arrays = arrays
            self.flat = np.zeros(sum(a.size for a in arrays) + EXTRA_SLOTS, dtype=net.dtype)
        return self.flat

    def epoch(self, order, rule):
        be, net = self.model.backend, self.model._net
        X, y, w = self.data
        span = self.k * self.batch_size
        for j in range(self.rounds):
            flat = self._buffer()
            rows = order[j * span:(j + 1) * span]
            m = rows.shape[0]
            # the ranks that train in this round share the L2 penalty
            active = sum(1 for c in self.counts if c > j * span)
            flat[...] = 0
            if m:
                n_local = -(-m // self.batch_size)
                losses = self.local[:n_local]
                be.train_epoch(net, X, y, np.ascontiguousarray(rows), self.batch_size,
                               rule._replace(t=rule.t + j * self.k), self.alpha / active,
                               self.ws, losses, None, w, None)
                weight = float(m if w is None else be.to_numpy(w)[rows].sum())
                start = 0
                for a in self.arrays:
                    flat[start:start + a.size] = a.ravel()
                    start += a.size
                flat[:-EXTRA_SLOTS] *= weight
                flat[-2] = float(np.mean(losses)) * weight
                flat[-1] = weight
            self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
            total = float(flat[-1]) or 1.0
            flat /= flat.dtype.type(total)
            start = 0
            for a in self.arrays:
                a[...] = flat[start:start + a.size].reshape(a.shape)
                start += a.size
            self.losses[j] = float(flat[-2])
        return self.losses


def _evaluate(MPI, comm, model, X, y, w):
    """(loss, accuracy) over every rank's rows: each rank's sums, added up."""
    from .evaluation import evaluate
    n = X.shape[0]
    local = np.zeros(3)                 # weighted loss sum, weighted correct count, weight
    if n:
        loss, acc = evaluate(model, model.backend.asarray(X), model.backend.asarray(y),
                             weights=w)
        weight = float(n if w is None else np.sum(w, dtype=np.float64))
        local[:] = (loss * weight, (acc if acc == acc else 0.0) * weight, weight)
    comm.Allreduce(MPI.IN_PLACE, local, op=MPI.SUM)
    if not local[2]:
        return float("nan"), float("nan")
    acc = local[1] / local[2] if model.target_kind != "values" else float("nan")
    return float(local[0] / local[2]), float(acc)


def _unflatten(model, flat):
    weights, biases, start = [], [], 0
    for w in model.weights:
        weights.append(flat[start:start + w.size].reshape(w.shape))
        start += w.size
    for b in model.biases:
        biases.append(flat[start:start + b.size].copy())
        start += b.size
    model._set_params(weights, biases, keep_state=True)
