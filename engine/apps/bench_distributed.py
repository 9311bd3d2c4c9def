"""`engine bench --workload distributed`: the scaling model of engine.distributed, with its
local parts measured on this machine.

Per step every rank forms the gradient of its batch_size rows (t_step, measured here as
engine.distributed runs it on the native backend, on this machine's threads, as for one
rank per machine), then one
Allreduce sums a buffer of all parameters plus two slots (B bytes). A ring all-reduce over
N ranks takes

    t_allreduce(N) = 2 (N - 1) / N * B / bandwidth + 2 (N - 1) * latency

and an epoch over n rows takes steps(N) = ceil(n / (N * batch_size)) steps:

    t_epoch(N) = steps(N) * (t_step + t_allreduce(N))

The Allreduce time over shared memory is measured by running this module under
`mpiexec -n 2` (a child process); the network rows are projected from the formula with the
bandwidths and latencies named in the table.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

from .tables import markdown_table

NETWORKS = {"lecture 784-100-10 b100": ([784, 100, 10], 100),
            "wide 784-1024-1024-10 b256": ([784, 1024, 1024, 10], 256)}
N_SAMPLES = 60_000
LINKS = {"10 Gb/s (TCP, 30 us)": (10e9 / 8, 30e-6), "100 Gb/s (RDMA, 3 us)": (100e9 / 8, 3e-6)}
RANKS = (1, 2, 4, 8, 16, 32, 64)
EXTRA_SLOTS = 2


def buffer_bytes(sizes, itemsize=4):
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    return (params + EXTRA_SLOTS) * itemsize


def allreduce_seconds(ranks, nbytes, bandwidth, latency):
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency


def step_seconds(sizes, batch, dtype="float32", steps=40):
    """One rank's time per synchronous step of `batch` rows, without the reduction: the
    path engine.distributed takes on 2 or more ranks (the backend's epoch calling a
    reduction hook between each minibatch's gradients and its step; on the native backend
    the C epoch on its own product path, the tiles' stored-gradient mode for the lecture
    network; the hook here returns at once), median over 3 runs of `steps` steps."""
    from ..model import MLP
    from ..backends import runnable_backends
    from ..optimizers import StepRule
    backend = "native" if "native" in runnable_backends() else "numpy"
    model = MLP(sizes, "relu", dtype=dtype, backend=backend, seed=0)
    be, net = model.backend, model.state.net
    rng = np.random.default_rng(0)
    rows = batch * steps
    X = be.asarray(rng.random((rows, sizes[0]), dtype=np.float32).astype(dtype))
    y = be.asarray(rng.integers(0, sizes[-1], rows))
    ws = be.workspace(net, batch)
    order, losses = np.arange(rows, dtype=np.int64), np.empty(steps)
    times = []
    for i in range(4):
        t0 = time.perf_counter()
        be.train_epoch(net, X, y, order, batch, StepRule("sgd", 0.01), 0.0, ws, losses,
                       reduce=lambda k, loss, weight, grads: (loss, weight))
        if i:
            times.append((time.perf_counter() - t0) / steps)
    path = be.product_path(net.sizes, net.dtype) if backend == "native" else "numpy"
    return statistics.median(times), f"{backend} epoch with the reduction hook ({path})"


def measure_allreduce(comm, nbytes, repeats=50):
    """Median seconds of an in-place Allreduce of nbytes of float32 on `comm`."""
    from mpi4py import MPI
    buf = np.ones(nbytes // 4, dtype=np.float32)
    times = []
    for i in range(repeats + 5):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return comm.allreduce(statistics.median(times), op=MPI.MAX)


def shared_memory_allreduce(ranks=2):
    """{network: seconds} measured by `mpiexec -n ranks` running this module, or None with
    the reason when MPI is not here."""
    exe = shutil.which("mpiexec") or shutil.which("mpiexec",
                                                   path=os.path.dirname(sys.executable))
    if exe is None:
        return None, "no mpiexec on PATH (pip install \"engine[mpi]\")"
    try:
        # the ranks import this engine, wherever it was imported from
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        done = subprocess.run([exe, "-n", str(ranks), sys.executable, "-m",
                               "engine.apps.bench_distributed"], capture_output=True,
                              text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        return None, "the mpiexec measurement timed out"
    if done.returncode != 0:
        return None, f"mpiexec failed: {done.stderr.strip()[-300:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), f"mpiexec -n {ranks}"


def distributed_rows(log=print):
    """The scaling table's rows, and the measured local parts."""
    measured, how = shared_memory_allreduce()
    rows, local = [], {}
    for name, (sizes, batch) in NETWORKS.items():
        log(f"bench: distributed {name} ...")
        t_step, backend = step_seconds(sizes, batch)
        nbytes = buffer_bytes(sizes)
        ar = None if measured is None else measured[name]
        local[name] = {"step_s": t_step, "backend": backend, "buffer_bytes": nbytes,
                       "allreduce_shared_memory_2_ranks_s": ar, "measured_by": how}
        for link, (bw, lat) in LINKS.items():
            base = None
            for ranks in RANKS:
                steps = math.ceil(N_SAMPLES / (ranks * batch))
                t_ar = allreduce_seconds(ranks, nbytes, bw, lat)
                epoch = steps * (t_step + t_ar)
                base = base or epoch
                rows.append({"network": name, "link": link, "ranks": ranks, "steps": steps,
                             "allreduce_s": t_ar, "epoch_s": epoch,
                             "speedup": base / epoch})
    return rows, local


def format_distributed(rows, local):
    lines = []
    for name, info in local.items():
        ar = info["allreduce_shared_memory_2_ranks_s"]
        lines.append(f"- {name}: buffer {info['buffer_bytes'] / 1e6:.2f} MB float32; one "
                     f"rank's step {1e3 * info['step_s']:.2f} ms ({info['backend']}); "
                     + (f"Allreduce over shared memory, 2 ranks: {1e6 * ar:.0f} us"
                        if ar is not None else f"Allreduce not measured: "
                                               f"{info['measured_by']}"))
    cells = [{"network": r["network"].split()[0], "link": r["link"], "ranks": r["ranks"],
              "steps/epoch": r["steps"], "allreduce ms": f"{1e3 * r['allreduce_s']:.3f}",
              "epoch s": f"{r['epoch_s']:.3f}", "speed-up": f"{r['speedup']:.1f}x"}
             for r in rows]
    return "\n".join(lines) + "\n\n" + markdown_table(cells, list(cells[0]), "llrrrrr")


def _measure_under_mpi():
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    out = {name: measure_allreduce(comm, buffer_bytes(sizes))
           for name, (sizes, _) in NETWORKS.items()}
    if comm.Get_rank() == 0:
        print(json.dumps(out))


if __name__ == "__main__":
    _measure_under_mpi()
