"""Run under mpiexec by tests/test_distributed.py: each rank takes its shard of a seeded
data set, trains with engine.distributed.fit, and writes its final parameters.

argv[1]: a JSON object of settings; argv[2]: the output folder."""
import json
import os
import sys

import numpy as np
from mpi4py import MPI

import engine
import engine.distributed as dist

settings = json.loads(sys.argv[1])
out = sys.argv[2]
comm = MPI.COMM_WORLD
rank = comm.Get_rank()

data = np.load(settings["data"])
X, y = dist.load_shard(data["X"], data["y"], comm)
if settings.get("npy"):                       # the same rows through memory-mapped .npy files
    X, y = dist.load_shard(settings["npy"][0], settings["npy"][1], comm)
w = None
if "weights" in data.files:
    start, stop = dist.shard_range(len(data["weights"]), rank, comm.Get_size())
    w = data["weights"][start:stop]

model = engine.MLP(settings["sizes"], settings.get("hidden", "tanh"),
                   dtype=settings.get("dtype", "float64"), backend=settings["backend"],
                   seed=rank + 10, precision=settings.get("precision"))  # rank 0's wins
if settings.get("fail_at_step") is not None and rank == settings.get("fail_rank", 1):
    # the reduction callback between a step's gradient and its update (called by the
    # native backend's epoch in C, and by the generic epoch of the NumPy backend)
    calls = {"n": 0}
    owner, name = dist._GradientAllreduce, "reduce"
    real = getattr(owner, name)

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] == settings["fail_at_step"]:
            raise RuntimeError("injected failure in the middle of an epoch")
        return real(*args, **kw)
    setattr(owner, name, failing)

fit = dict(settings["fit"])
if settings.get("rank_differs") is not None and rank == comm.Get_size() - 1:
    fit.update(settings["rank_differs"])       # the last rank was given other settings
try:
    history = dist.fit(model, X, y, comm=comm, sample_weight=w, progress=False, **fit)
except engine.TrainingDiverged as exc:       # every rank: say so, keep the finite weights
    np.savez(os.path.join(out, f"rank{rank}.npz"), *(model.weights + model.biases),
             diverged=np.array(str(exc)))
    sys.exit(0)
except dist.SettingsDiffer as exc:           # every rank, at once, with the same message
    with open(os.path.join(out, f"rank{rank}.err"), "w") as f:
        f.write(str(exc))
    sys.exit(3)
np.savez(os.path.join(out, f"rank{rank}.npz"), *(model.weights + model.biases),
         losses=np.array(history.batch_loss), epoch_loss=np.array(history.epoch_loss),
         epoch_accuracy=np.array(history.epoch_accuracy), val_loss=np.array(history.val_loss),
         stop_reason=np.array(history.stop_reason))
