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

Supported: host backends (numpy, native) and every option of `MLP.fit` (the trainer of
engine/training.py runs both): optimizers, schedules, sample weights, validation data
(sharded like the training rows), early stopping on the validation loss over every rank's
held-out rows, dropout (masks keyed by the minibatch and the row's place in this rank's
part of it), checkpoints (rank 0 writes, with every rank's shuffle state; every rank
resumes), the divergence guard (every rank raises TrainingDiverged). Not supported: the
CUDA backend. Local SGD: `sync_every`.
mpi4py is an optional extra (`pip install "engine[mpi]"`); `import engine` does not need it.
"""
from __future__ import annotations

import array
import os
import sys
import time
import traceback

import numpy as np

from . import checks, fit_options, interrupt
from .distributed_steps import _evaluate, _GradientAllreduce, _LocalSGD, _unflatten
from .errors import TrainingDiverged
from .history import History
from .training import Hooks, Trainer



def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError('engine.distributed needs mpi4py and an MPI library: '
                          'pip install "engine[mpi]"') from exc
    return MPI


def shard_range(n, rank, size):
    """The rows [start, stop) of rank `rank` of `size` over n rows: contiguous, sizes
    differing by at most one.

    Parameters
    ----------
    n, rank, size : int

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> [shard_range(10, r, 3) for r in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    """
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def load_shard(X, y, comm, mmap=True):
    """This rank's rows of X and y: arrays, or paths to .npy files (memory-mapped, so that
    only the shard is read). Nobody holds the whole set.

    Parameters
    ----------
    X, y : arrays, or paths to .npy files
    comm : mpi4py.MPI.Comm
    mmap : bool, default=True
        Memory-map the files.

    Returns
    -------
    tuple
        (X rows, y rows) of this rank: the range `shard_range` gives it.

    Raises
    ------
    ValueError
        X and y of different row counts.

    Examples
    --------
    >>> from mpi4py import MPI                                      # doctest: +SKIP
    >>> X, y = load_shard("X.npy", "y.npy", MPI.COMM_WORLD)        # doctest: +SKIP
    """
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
    batch_size rows of each rank in rank order.

    Parameters
    ----------
    shard_orders : list of int arrays
    batch_size : int

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> global_order([np.array([0, 1, 2]), np.array([3, 4])], 2).tolist()
    [0, 1, 3, 4, 2]
    """
    steps = max(-(-len(o) // batch_size) for o in shard_orders)
    return np.concatenate([o[k * batch_size:(k + 1) * batch_size]
                           for k in range(steps) for o in shard_orders])


def shard_rng(seed, rank):
    """The generator of rank `rank`'s per-epoch shuffles (seeded once per fit)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(rank)]))


def fit(model, X, y, *, comm, sync_every=None, out=None, **options) -> History:
    """Train `model` on this rank's shard (X, y) together with every rank of `comm`;
    `batch_size` is per rank (the global minibatch is comm size x batch_size rows). The
    options are MLP.fit's (engine/fit_options.py), early stopping, dropout and checkpoints
    included: the validation score is over every rank's held-out rows, and only rank 0
    writes the checkpoint (every rank resumes from it). Returns the History on every rank;
    rank 0 writes history.json, plot.png and model.npz into `out` when given.

    sync_every=k: local SGD instead: each rank takes k minibatch steps of its own through
    the backend's epoch (the native fused one), then one Allreduce averages the parameters
    and the optimizer's state, weighted by the rows each rank trained. It sends 1/k as
    often; with k = 1, SGD, momentum and Nesterov (whose steps are linear in the gradient)
    take exactly the synchronous steps, Adam does not.

    Parameters
    ----------
    model : engine.MLP
        On every rank, with the same architecture; rank 0's parameters are broadcast.
    X, y : this rank's shard (it may hold no rows)
    comm : mpi4py.MPI.Comm
    sync_every : int, optional
        Local SGD: k local steps per parameter average.
    out : str, optional
        A folder rank 0 writes history.json, plot.png and model.npz into.
    **options
        MLP.fit's options (engine/fit_options.py), the same on every rank.

    Returns
    -------
    History
        The same on every rank: losses and accuracies over all shards.

    Raises
    ------
    SettingsDiffer
        On every rank at once, when the ranks were given different settings or networks.
    engine.TrainingDiverged
        On every rank, the weights of before the diverging epoch kept.
    ImportError
        mpi4py is missing (the [mpi] extra).

    Examples
    --------
    >>> from mpi4py import MPI                                      # doctest: +SKIP
    >>> X, y = load_shard("X.npy", "y.npy", MPI.COMM_WORLD)        # doctest: +SKIP
    >>> history = fit(engine.MLP([784, 100, 10]), X, y, comm=MPI.COMM_WORLD,
    ...               epochs=10, early_stopping=True)               # doctest: +SKIP
    """
    MPI = _mpi()
    try:
        options = fit_options.check(options)
        if sync_every is not None:
            sync_every = checks.positive_int("sync_every", sync_every)
        _same_everywhere(comm, model, X, dict(options, sync_every=sync_every))
        hooks = _MPIHooks(MPI, comm, sync_every)
        with interrupt.stop_at_boundaries():
            history = Trainer(model, X, y, options, hooks).run()
    except (TrainingDiverged, SettingsDiffer):
        raise                       # every rank decided it together: nothing to abort
    except BaseException:
        abort(comm)
        raise
    if out and comm.Get_rank() == 0:
        os.makedirs(out, exist_ok=True)
        history.save(os.path.join(out, "history.json"))
        history.plot(os.path.join(out, "plot.png"), title=f"{comm.Get_size()} ranks: {model!r}")
        model.save(os.path.join(out, "model.npz"))
    return history


fit.__signature__ = fit_options.signature(
    ("model", "X", "y"), extra=(("comm", None), ("sync_every", None), ("out", None)))


def evaluate(model, X, y, *, comm):
    """MLP.evaluate over every rank's shard together: {"loss", "accuracy"} of all the rows
    (accuracy NaN for real-valued targets), the same on every rank."""
    X, y = _check_shard(model, X, y)
    loss, accuracy = _evaluate(_mpi(), comm, model, X, y, None)
    return {"loss": loss, "accuracy": accuracy}


def _check_shard(model, X, y):
    """model.check_xy for a shard, which may hold no rows (more ranks than rows): an empty
    shard is checked as a one-row one of its shape, then emptied; its rank takes part in
    every step with a zero gradient and weight."""
    if np.ndim(X) == 2 and np.shape(X)[0] == 0 and np.shape(y)[:1] == (0,):
        X1 = np.zeros((1, np.shape(X)[1]), dtype=np.asarray(X).dtype)
        y1 = np.zeros((1,) + np.shape(y)[1:], dtype=np.asarray(y).dtype)
        X1, y1 = model.check_xy(X1, y1)
        return X1[:0], y1[:0]
    return model.check_xy(X, y)


class SettingsDiffer(ValueError):
    """The ranks of a distributed fit were given different settings or networks; raised on
    every rank at the start, before any collective step could hang or diverge."""


def _same_everywhere(comm, model, X, settings):
    """SettingsDiffer on every rank when any two ranks differ in fit settings, network or
    feature count (compared as a digest gathered from every rank)."""
    import hashlib
    import json
    mine = {k: v for k, v in settings.items()
            if k not in ("progress", "validation_data", "sample_weight")}
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


class _MPIHooks(Hooks):
    """The trainer's hooks for data-parallel training: shards, their shuffles, the
    gradient's all-reduce (or local SGD's averaging), scores over every rank."""

    name = "distributed"

    def __init__(self, MPI, comm, sync_every):
        self.MPI, self.comm, self.sync_every = MPI, comm, sync_every
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.writes_files = self.rank == 0

    def check_data(self, model, X, y):
        return _check_shard(model, X, y)

    def sample_weight(self, sw, n, dtype):
        if n:
            return checks.sample_weight(sw, n, dtype)
        return None if sw is None else np.zeros(0, dtype)   # an empty shard: no rows

    def split(self, y, fraction, seed):
        """Each rank holds out its share of its own rows (none of a shard too small to
        spare one); the validation score sums every rank's."""
        try:
            train, held = super().split(y, fraction, seed)
        except ValueError:          # too few rows here to hold any out: the others' count
            train, held = np.arange(len(y)), np.zeros(0, np.int64)
        if not self.comm.allreduce(len(held), op=self.MPI.SUM):
            raise ValueError(f"early_stopping: validation_fraction={fraction} holds out no "
                             f"row on any of the {self.size} ranks; give validation_data or "
                             f"a larger fraction")
        return train, held

    def start(self, trainer):
        model, comm = trainer.model, self.comm
        # every rank starts from rank 0's parameters
        params = np.concatenate([p.ravel() for p in model.weights + model.biases])
        comm.Bcast(params, root=0)
        _unflatten(model, params)
        self.counts = comm.allgather(trainer.n)
        if sum(self.counts) == 0:
            raise ValueError("every rank's shard is empty")
        batch = trainer.batch_size = trainer.options["batch_size"]
        self.steps = max(-(-c // batch) for c in self.counts)
        data = (trainer.Xb, trainer.yb, trainer.swb)
        if self.sync_every is not None:
            self.runner = _LocalSGD(self.MPI, comm, model, batch, self.steps, trainer.alpha,
                                    data, self.sync_every, self.counts)
        else:
            self.runner = _GradientAllreduce(self.MPI, comm, model, batch, self.steps,
                                             trainer.alpha, data)
        self.rng = shard_rng(comm.bcast(model.seed, root=0), self.rank)   # rank 0's seed
        self.meta = dict(ranks=self.size, global_batch=self.size * batch,
                         sync_every=self.sync_every)

    def n_batches(self, trainer):
        return self.runner.n_steps

    def samples_per_epoch(self, trainer):
        return int(sum(self.counts))

    def shuffle(self, trainer, order):
        self.rng.shuffle(order)

    def epoch(self, trainer, order, rule, norms, drop):
        self.runner.epoch(order, rule, drop, trainer.batch_losses)
        return self.runner.n_steps

    def evaluate(self, trainer, X, y, weights, stats=None):
        return _evaluate(self.MPI, self.comm, trainer.model, X, y, weights)

    def any_rank(self, flag):
        return bool(self.comm.allreduce(int(bool(flag)), op=self.MPI.MAX))

    def progress_enabled(self, wanted):
        return wanted and self.rank == 0

    def checkpoint_extra(self, trainer):
        """Every rank's shuffle state and row order, for rank 0's checkpoint."""
        shards = self.comm.gather((self.rng.bit_generator.state,
                                   np.asarray(trainer.model.state.order)), root=0)
        if self.rank != 0:
            return {}, {}
        return ({"shard_rngs": [state for state, _ in shards]},
                {f"shard_order{r}": order for r, (_, order) in enumerate(shards)})

    def resume(self, trainer, progress, extra):
        """This rank's shuffle state and row order from the checkpoint."""
        states = progress.get("shard_rngs")
        if states is None or len(states) != self.size:
            raise ValueError(f"the checkpoint was not written by a distributed fit of "
                             f"{self.size} ranks")
        self.rng.bit_generator.state = states[self.rank]
        trainer.model.state.order = np.ascontiguousarray(extra[f"shard_order{self.rank}"],
                                                         dtype=np.int64)
