"""`mpiexec -n N engine train --distributed`: the command line's data-parallel training
(engine/distributed.py). Every rank loads its shard and trains with the options a
single-process `engine train` takes; rank 0 reports and writes."""
from __future__ import annotations

import os
import time

import numpy as np


def train_distributed(args, s, options, choose_folder, training_data, print_table):
    """Every rank loads its shard (row ranges of --npy's memory-mapped files, or of --data
    split by rank) and trains: optimizer, schedule, early stopping, dropout, --precision,
    and a checkpoint after every epoch in the output folder, which --resume goes on from.
    From engine/apps/cli.py: the settings `s` and fit `options` of the command line, and
    its ways to choose the output folder, load --data and print the table."""
    from .. import distributed as dist
    from ..model import MLP
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    out = _same_folder_on_every_rank(comm, choose_folder)
    early = bool(options.get("early_stopping"))     # it holds out training rows instead
    mistake = None
    try:
        if args.npy:
            X, y = dist.load_shard(args.npy[0], args.npy[1], comm)
            X = np.asarray(X, dtype=args.dtype)
            val = test = None
        else:
            Xa, ya, Xt, yt = training_data(args, s)
            X, y = dist.load_shard(Xa, ya, comm)
            test = dist.load_shard(Xt, yt, comm)
            val = None if early else test
            del Xa, ya, Xt, yt                  # this rank keeps its rows only
        model = MLP(s["layers"], s["hidden_activation"], s["output_activation"], s["loss"],
                    dtype=args.dtype, backend=args.backend, seed=s["seed"], init=s["init"],
                    init_scale=s["init_scale"], precision=args.precision)
    except (ValueError, TypeError) as exc:      # the user's data or settings: said below
        mistake = exc
    except BaseException:
        dist.abort(comm)
        raise
    _stop_all_ranks_on(comm, mistake)
    t0 = time.perf_counter()
    history = dist.fit(model, X, y, comm=comm, epochs=s["epochs"], batch_size=s["batch_size"],
                       learning_rate=s["learning_rate"], momentum=s["momentum"],
                       shuffle=not args.no_shuffle, validation_data=val, out=out,
                       progress=not args.no_progress, resume=args.resume,
                       checkpoint=os.path.join(out, "checkpoint.npz"), **options)
    # early stopping scored held-out training rows: the test rows are scored once, now
    accuracy = dist.evaluate(model, *test, comm=comm)["accuracy"] if early and test \
        else history.val_accuracy[-1] if history.val_accuracy else None
    if rank == 0:
        row = {"run": f"{comm.Get_size()} ranks", "backend": model.backend.name,
               "dtype": model.precision, "epochs": history.epochs,
               "train acc %": f"{100 * history.epoch_accuracy[-1]:.2f}",
               "test acc %": f"{100 * accuracy:.2f}" if accuracy is not None else "-",
               "time s": f"{time.perf_counter() - t0:.1f}"}
        print()
        print_table([row], list(row))
        print(f"\nwrote {os.path.join(out, '')}: history.json, plot.png, model.npz")
    return 0


def _stop_all_ranks_on(comm, mistake):
    """Every rank learns whether any rank's data or settings were refused (no rank has
    entered a collective yet); if so, rank 0 raises the first refusal, one line of the
    command's usual error, and the other ranks exit with it."""
    mistakes = comm.allgather(None if mistake is None else str(mistake))
    first = next((m for m in mistakes if m is not None), None)
    if first is None:
        return
    if comm.Get_rank() == 0:
        raise ValueError(first) from None
    raise SystemExit(2)


def _same_folder_on_every_rank(comm, choose):
    """Rank 0's choice of output folder, on every rank (each reads the checkpoint rank 0
    writes there); a refusal ends every rank as _stop_all_ranks_on says."""
    folder = mistake = None
    if comm.Get_rank() == 0:
        try:
            folder = choose()
        except ValueError as exc:
            mistake = exc
    _stop_all_ranks_on(comm, mistake)
    return comm.bcast(folder, root=0)
