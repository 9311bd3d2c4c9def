"""engine.distributed.fit on one rank against MLP.fit: the lecture network (784-100-10,
sigmoid, softmax + cross-entropy) on MNIST's 60,000 rows, float32, batch 100, native
backend; the median epoch of each, the two interleaved (3 fits of 3 epochs each).

    python benches/distributed_one_rank.py          # or under mpiexec -n 1
"""
import statistics

from mpi4py import MPI

import engine
import engine.distributed as dist
from engine.data import load_mnist


def main():
    X, y, _, _ = load_mnist()
    comm = MPI.COMM_WORLD
    times = {"MLP.fit": [], "distributed.fit": []}
    for _ in range(3):
        for kind in times:
            model = engine.MLP([784, 100, 10], "sigmoid", backend="native", seed=1)
            if kind == "MLP.fit":
                h = model.fit(X, y, epochs=3, batch_size=100, learning_rate=0.1,
                              progress=False)
            else:
                h = dist.fit(model, X, y, comm=comm, epochs=3, batch_size=100,
                             learning_rate=0.1, progress=False)
            times[kind] += h.epoch_time
    fit, d = (statistics.median(times[k]) for k in times)
    print(f"MLP.fit {fit:.3f} s/epoch, distributed.fit (1 rank) {d:.3f} s/epoch, "
          f"ratio {d / fit:.3f}")


if __name__ == "__main__":
    main()
