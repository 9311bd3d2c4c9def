"""The device check of the cuda backend: one script to run when a GPU is lent, offline.

    python benches/gpu_check.py                      # MNIST from the local cache, else synthetic
    python benches/gpu_check.py --synthetic          # MNIST-shaped random data
    python benches/gpu_check.py --mnist DIR          # the four IDX files in DIR
    NUMBA_ENABLE_CUDASIM=1 python benches/gpu_check.py --quick   # the script itself, on a CPU

Runs from the source tree with what the machine has (no pip, no downloads). In order:
1. every kernel against the NumPy backend at real sizes, float32 and float64, each with a
   stated threshold (max |error| / max |value|); the first pass compiles every kernel;
2. training: the lecture network, a warm-up epoch then timed epochs (medians), cuda in
   float64 against the NumPy backend's weights, and float32 against the NumPy backend in
   float32; the native CPU epoch beside it; 100 epochs with per-epoch evaluation end to end;
3. our GEMM at 4096^3 float32 against cuBLAS through CuPy (TF32 off) when CuPy is there.
Writes gpu_check.json (to $OUT when set, else --out, else the current folder) and exits 1
when any check fails its threshold. Under 5 minutes on an H200.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("CUPY_TF32", "0")            # cuBLAS in true float32, comparable
# numba-cuda warns of low occupancy at every small launch (the lecture's products are small
# by design); hundreds of those lines buried the report on the H200
warnings.filterwarnings("ignore", message=".*under-utilization.*")

import engine  # noqa: E402
from engine.backends import get_backend  # noqa: E402
from engine.optimizers import StepRule  # noqa: E402

# max |error| / max |value| allowed, per dtype; a reduction of length k may lose k ulps
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


def bound(dtype, k=1):
    return 8 * k * EPS[dtype]


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-300))


class Report:
    def __init__(self):
        self.checks, self.timings, self.failed = [], {}, []

    def check(self, name, err, limit):
        ok = bool(err <= limit)
        self.checks.append({"check": name, "error": err, "threshold": limit, "ok": ok})
        if not ok:
            self.failed.append(name)
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<44} {err:.2e} (<= {limit:.1e})", flush=True)


def kernel_parity(gpu, ref, report, quick):
    rng = np.random.default_rng(0)
    m, k, n = (9, 17, 33) if quick else (1000, 784, 100)
    for dtype in ("float32", "float64"):
        dt = np.dtype(dtype)
        for ta, tb in [(False, True), (True, False), (False, False), (True, True)]:
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
            c0 = rng.standard_normal((m, n)).astype(dt)
            for alpha, beta in ((1.0, 0.0), (-0.5, 1.0)):
                want = c0.copy()
                ref.gemm(a, b, want, ta, tb, alpha, beta)
                out = gpu.asarray(c0)
                gpu.gemm(gpu.asarray(a), gpu.asarray(b), out, ta, tb, alpha, beta)
                report.check(f"gemm {dtype} ta={ta:d} tb={tb:d} a={alpha} b={beta}",
                             rel_err(gpu.to_numpy(out), want), bound(dtype, k))
        z = (rng.standard_normal((m, n)) * 4).astype(dt)
        bias = rng.standard_normal(n).astype(dt)
        for act in ("identity", "sigmoid", "relu", "tanh", "softmax", "exp"):
            want = z.copy()
            ref.bias_act_(want, bias, act)
            got = gpu.asarray(z)
            gpu.bias_act_(got, gpu.asarray(bias), act)
            report.check(f"bias+{act} {dtype}", rel_err(gpu.to_numpy(got), want),
                         bound(dtype, 16))
        a_act = rng.random((m, n)).astype(dt)
        for act in ("sigmoid", "relu", "tanh"):
            want = z.copy()
            ref.act_backward_(want, a_act, act)
            got = gpu.asarray(z)
            gpu.act_backward_(got, gpu.asarray(a_act), act)
            report.check(f"act_backward {act} {dtype}", rel_err(gpu.to_numpy(got), want),
                         bound(dtype, 4))
        for output, loss in engine.backends.base.OUTPUT_LOSS_PAIRS:
            a = rng.random((m, 10)).astype(dt) + dt.type(0.01)
            if output == "softmax":
                a /= a.sum(axis=1, keepdims=True)
            t = np.zeros_like(a)
            t[np.arange(m), rng.integers(0, 10, m)] = 1
            want = np.empty_like(a)
            ref.output_delta(a, t, want, output, loss)
            got = gpu.empty(a.shape, dt)
            gpu.output_delta(gpu.asarray(a), gpu.asarray(t), got, output, loss)
            report.check(f"delta {output}+{loss} {dtype}", rel_err(gpu.to_numpy(got), want),
                         bound(dtype, 4))
            report.check(f"loss {output}+{loss} {dtype}",
                         rel_err(gpu.loss(gpu.asarray(a), gpu.asarray(t), output, loss),
                                 ref.loss(a, t, output, loss)), bound(dtype, m))
        d = rng.standard_normal((m, n)).astype(dt)
        want = np.empty(n, dt)
        ref.bias_grad(d, want)
        got = gpu.empty((n,), dt)
        gpu.bias_grad(gpu.asarray(d), got)
        report.check(f"bias_grad {dtype}", rel_err(gpu.to_numpy(got), want), bound(dtype, m))
        for kind in ("sgd", "momentum", "nesterov", "adam"):
            p, g = rng.standard_normal(k * n).astype(dt), rng.standard_normal(k * n).astype(dt)
            states = [rng.random(k * n).astype(dt) for _ in range({"sgd": 0, "adam": 2}.get(
                kind, 1))]
            rule = StepRule(kind, 0.01, 0.9, t=3)
            wp, ws = p.copy(), [s.copy() for s in states]
            ref.optimizer_step_(wp, g, tuple(ws), rule, 1e-3)
            gp, gs = gpu.asarray(p), [gpu.asarray(s) for s in states]
            gpu.optimizer_step_(gp, gpu.asarray(g), tuple(gs), rule, 1e-3)
            report.check(f"optimizer {kind} {dtype}", rel_err(gpu.to_numpy(gp), wp),
                         bound(dtype, 4))


def load_data(args):
    """(X, y, X_test, y_test, source) in float64, from the local cache, IDX files or
    synthetic: never the network."""
    if args.quick:
        X, y, Xt, yt = engine.load_mnist_sample(dtype="float64")
        return X[:24, ::16].copy(), y[:24], Xt[:8, ::16].copy(), yt[:8], "the sample, 49 px"
    if not args.synthetic:
        from engine.data import DataError, _split, load_mnist_uint8
        try:
            raw = load_mnist_uint8(idx_dir=args.mnist, mirrors=(), use_package_index=False,
                                   verbose=False)
            return (*_split(raw, "unit", "float64"), "MNIST")
        except DataError as exc:
            print(f"MNIST not here ({str(exc).splitlines()[0]}); synthetic data", flush=True)
    from engine.apps.bench import make_data
    X, y = make_data(60000, dtype="float64")
    Xt, yt = make_data(10000, dtype="float64", seed=1)
    return X, y, Xt, yt, "synthetic MNIST-shaped data"


def timed_epochs(model, X, y, epochs):
    """Seconds of each of `epochs` epochs after one warm-up epoch (compiles, uploads)."""
    model.fit(X, y, epochs=1, batch_size=100, progress=False)
    hist = model.fit(X, y, epochs=epochs, batch_size=100, progress=False)
    return list(hist.epoch_time)


def training(gpu_name, report, data, args):
    X, y, Xt, yt, source = data
    sizes = [X.shape[1], 4, 10] if args.quick else [784, 100, 10]
    epochs = 1 if args.quick else args.epochs
    print(f"\nlecture network {sizes} on {source}, batch 100:", flush=True)
    models = {}
    for dtype, backend in (("float64", "numpy"), ("float64", gpu_name), ("float32", "numpy"),
                           ("float32", gpu_name)):
        model = engine.MLP(sizes, "sigmoid", dtype=dtype, backend=backend, seed=1)
        times = timed_epochs(model, X.astype(dtype), y, epochs)
        models[backend, dtype] = model
        report.timings[f"epoch {backend} {dtype} s"] = statistics.median(times)
        print(f"  {backend:<6} {dtype}: median epoch {statistics.median(times):.4f} s "
              f"({len(times)} timed after a warm-up)", flush=True)
    for dtype, limit in (("float64", 1e-9), ("float32", 1e-3)):
        got = models[gpu_name, dtype].weights + models[gpu_name, dtype].biases
        want = models["numpy", dtype].weights + models["numpy", dtype].biases
        report.check(f"trained weights {gpu_name} vs numpy {dtype}",
                     max(rel_err(a, b) for a, b in zip(got, want)), limit)
    from engine.backends import runnable_backends
    if "native" in runnable_backends() and gpu_name != "native":
        native = engine.MLP(sizes, "sigmoid", dtype="float32", backend="native", seed=1)
        times = timed_epochs(native, X.astype("float32"), y, epochs)
        report.timings["epoch native float32 s"] = statistics.median(times)
        print(f"  native float32: median epoch {statistics.median(times):.4f} s", flush=True)
    if not args.quick:
        model = engine.MLP(sizes, "sigmoid", dtype="float32", backend=gpu_name, seed=1)
        t0 = time.perf_counter()
        hist = model.fit(X.astype("float32"), y, epochs=100, batch_size=100, progress=False,
                         validation_data=(Xt.astype("float32"), yt))
        total = time.perf_counter() - t0
        report.timings["100 epochs with evaluation s"] = total
        print(f"  100 epochs float32 with per-epoch evaluation: {total:.2f} s, test accuracy "
              f"{100 * hist.val_accuracy[-1]:.2f}%", flush=True)


def gemm_speed(gpu, report, quick):
    n = 64 if quick else 4096
    rng = np.random.default_rng(1)
    a = gpu.asarray(rng.random((n, n), dtype=np.float32))
    out = gpu.empty((n, n), np.float32)
    times = []
    for i in range(4):
        gpu.synchronize()
        t0 = time.perf_counter()
        gpu.gemm(a, a, out, False, True)
        gpu.synchronize()
        if i:                                 # the first call compiles
            times.append(time.perf_counter() - t0)
    ours = 2 * n ** 3 / statistics.median(times) / 1e9
    report.timings[f"gemm {n}^3 float32 GFLOP/s"] = ours
    print(f"\nour GEMM {n}^3 float32: {ours:.1f} GFLOP/s", flush=True)
    try:
        import cupy
    except ImportError:
        print("  (CuPy not installed: no cuBLAS reference)")
        return
    ca = cupy.asarray(gpu.to_numpy(a))
    times = []
    for i in range(4):
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        ca @ ca.T
        cupy.cuda.Device().synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    cublas = 2 * n ** 3 / statistics.median(times) / 1e9
    report.timings[f"cublas {n}^3 float32 GFLOP/s"] = cublas
    print(f"  cuBLAS (CuPy, TF32 off): {cublas:.1f} GFLOP/s; ours = {100 * ours / cublas:.1f}%")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (for the CUDA simulator)")
    p.add_argument("--synthetic", action="store_true", help="MNIST-shaped random data")
    p.add_argument("--mnist", metavar="DIR", help="a folder with MNIST's four IDX files")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per row (default 5)")
    p.add_argument("--out", metavar="DIR", help="where gpu_check.json goes (default: $OUT "
                                                "or the current folder)")
    p.add_argument("--backend", default="cuda",
                   help="the backend under check (default: cuda; another one checks this "
                        "script itself quickly)")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    info = {b.name: (b.available, b.reason) for b in engine.available_backends()}
    name = args.backend
    head = {"date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(),
            "backend": name, name: info.get(name, (False, "unknown backend"))[1],
            "numpy": np.__version__, "engine": engine.__version__}
    print(" | ".join(f"{k}: {v}" for k, v in head.items()), flush=True)
    report = Report()
    if not info.get(name, (False,))[0]:
        report.failed.append(f"{name} backend unavailable")
    else:
        gpu, ref = get_backend(name), get_backend("numpy")
        print("\nkernels against the NumPy backend (compiles each on first use):", flush=True)
        kernel_parity(gpu, ref, report, args.quick)
        training(name, report, load_data(args), args)
        gemm_speed(gpu, report, args.quick)
    head["seconds"] = time.perf_counter() - t_start
    out_dir = os.environ.get("OUT") or args.out or "."
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "gpu_check.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"machine": head, "checks": report.checks, "timings": report.timings,
                   "failed": report.failed, "passed": not report.failed}, f, indent=1)
    os.replace(path + ".tmp", path)
    print(f"\n{'PASSED' if not report.failed else 'FAILED: ' + ', '.join(report.failed)} "
          f"in {head['seconds']:.0f} s; report: {path}")
    return 0 if not report.failed else 1


if __name__ == "__main__":
    sys.exit(main())
