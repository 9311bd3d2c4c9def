"""Paired A/B of two builds of the native extension, in one process.

On a shared machine the speed drifts by a third within minutes, so two builds timed in
separate runs (or separate processes) cannot resolve a 5% change. This loads both builds of
engine._native side by side, gives each its own model, and times their epochs alternately
(A, B, A, B, ...); each pair shares the machine's state of the moment, and the median of
the pairwise ratios B/A (with its quartiles) is the answer.

    cp engine/_native*.so /tmp/a/             # the build to compare against
    ... edit csrc/, python setup.py build_ext --inplace ...
    python benches/ab_builds.py /tmp/a/_native*.so engine/_native*.so --sizes 784,100,10

Both builds must have the Python interface the checkout's engine package expects.
"""
import argparse
import importlib.util
import statistics
import time

import engine
import engine.backends.native_backend as native_backend
from engine.apps.bench import make_data


def load_build(path):
    """engine._native from `path`, as a module of its own (its own C state)."""
    spec = importlib.util.spec_from_file_location("engine._native", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def epoch_of(module, sizes, dtype, X, y, batch, threads, precision):
    """One model's epoch runner whose plan was built by `module` (it keeps using it)."""
    native_backend._native = module
    module.set_epoch_threads(threads)
    model = engine.MLP(sizes, "sigmoid", dtype=dtype, seed=1, precision=precision,
                       backend=native_backend.NativeBackend(bf16="kernels"))
    runner = model.epoch_runner(X, y, batch_size=batch, learning_rate=0.01)

    def run():
        # the bf16 epoch is called through the backend module's _native at run time (the
        # float32 plan keeps the module that built it): each model runs its own build
        native_backend._native = module
        runner()
    run()                                     # warm up
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build_a", help="path of the reference build (_native*.so)")
    p.add_argument("build_b", help="path of the build to compare")
    p.add_argument("--sizes", default="784,100,10", help="layer sizes (default: %(default)s)")
    p.add_argument("--dtype", default="float32", help="float32 or float64 (default: %(default)s)")
    p.add_argument("--rows", type=int, default=60000, help="rows per epoch (default: %(default)s)")
    p.add_argument("--batch", type=int, default=100, help="minibatch (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=15, help="timed A/B pairs (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="epoch threads (default: %(default)s)")
    p.add_argument("--precision", default=None,
                   help="bf16-mixed: the bf16 kernels' epoch on the CPU's best bf16 path")
    args = p.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    X, y = make_data(args.rows, sizes[0], sizes[-1], args.dtype)
    builds = {"A": load_build(args.build_a), "B": load_build(args.build_b)}
    runs = {k: epoch_of(m, sizes, args.dtype, X, y, args.batch, args.threads, args.precision)
            for k, m in builds.items()}
    times = {"A": [], "B": []}
    for _ in range(args.pairs):
        for k in ("A", "B"):
            t0 = time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - t0)
    ratios = sorted(b / a for a, b in zip(times["A"], times["B"]))
    q = len(ratios) // 4
    print(f"{args.dtype} {sizes} batch {args.batch}: A {statistics.median(times['A']):.4f} s, "
          f"B {statistics.median(times['B']):.4f} s (medians); B/A pairwise median "
          f"{statistics.median(ratios):.3f}, quartiles [{ratios[q]:.3f}, "
          f"{ratios[len(ratios) - 1 - q]:.3f}]")


if __name__ == "__main__":
    main()
