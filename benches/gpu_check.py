"""Device check for the cuda backend, meant to finish in under 5 minutes on a real GPU.

    python benches/gpu_check.py                 # on a machine with an NVIDIA GPU
    NUMBA_ENABLE_CUDASIM=1 python benches/gpu_check.py --quick   # the script itself, on a CPU

It prints: kernel parity against the NumPy backend at real sizes, the tiled GEMM's
GFLOP/s at 4096^3 in float32, epoch times of the lecture network on MNIST (synthetic
MNIST-shaped data if the real set is not cached), and how far the GPU-trained weights
are from the NumPy backend's after the same epochs.
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import engine  # noqa: E402
from engine.backends import get_backend  # noqa: E402


def rel_err(got, want):
    return float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-300))


def parity(gpu, ref, sizes):
    rng = np.random.default_rng(0)
    worst = {}
    for dtype in ("float32", "float64"):
        for m, k, n in sizes:
            for ta, tb in [(False, True), (True, False), (False, False)]:
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                want = np.empty((m, n), dtype)
                ref.gemm(a, b, want, ta, tb)
                out = gpu.empty((m, n), dtype)
                gpu.gemm(gpu.asarray(a), gpu.asarray(b), out, ta, tb)
                key = f"gemm {dtype}"
                worst[key] = max(worst.get(key, 0), rel_err(gpu.to_numpy(out), want))
            z = rng.standard_normal((m, n)).astype(dtype) * 4
            bias = rng.standard_normal(n).astype(dtype)
            for act in ("sigmoid", "relu", "tanh", "softmax"):
                want = z.copy()
                ref.bias_act_(want, bias, act)
                got = gpu.asarray(z)
                gpu.bias_act_(got, gpu.asarray(bias), act)
                key = f"bias+{act} {dtype}"
                worst[key] = max(worst.get(key, 0), rel_err(gpu.to_numpy(got), want))
    return worst


def gemm_gflops(gpu, n, repeats):
    a = gpu.asarray(np.random.default_rng(1).random((n, n), dtype=np.float32))
    out = gpu.empty((n, n), np.float32)
    gpu.gemm(a, a, out)
    gpu.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        gpu.gemm(a, a, out, False, True)
    gpu.synchronize()                      # inside the timed region
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="tiny sizes (for the CUDA simulator)")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    gpu, ref = get_backend("cuda"), get_backend("numpy")
    info = {b.name: b.reason for b in engine.available_backends()}
    print(f"gpu_check {time.strftime('%Y-%m-%d %H:%M')} | {info['cuda']} | "
          f"{platform.node()} | numpy {np.__version__}")

    sizes = [(7, 13, 5), (9, 17, 33)] if args.quick else [(100, 784, 100), (256, 1024, 1024),
                                                           (1000, 333, 77)]
    print("\nparity with the NumPy backend (max error / max |value|):")
    for key, err in sorted(parity(gpu, ref, sizes).items()):
        print(f"  {key:<22} {err:.2e}")

    n = 32 if args.quick else 4096
    print(f"\ntiled GEMM {n}^3 float32: {gemm_gflops(gpu, n, 1 if args.quick else 5):.1f} GFLOP/s")

    if args.quick:
        X, y = engine.load_mnist_sample(dtype="float64")[:2]
        X, y, sizes_net, epochs = np.ascontiguousarray(X[:40, ::16]), y[:40], [49, 8, 10], 1
        source = "the shipped sample (40 rows, 49 pixels)"
    else:
        try:
            X, y = engine.load_mnist(dtype="float64")[:2]
            source = "MNIST"
        except engine.DataError:
            from engine.apps.bench import make_data
            X, y = make_data(60000, dtype="float64")
            source = "synthetic MNIST-shaped data"
        sizes_net, epochs = [784, 100, 10], args.epochs
    print(f"\nlecture network {sizes_net} on {source}, batch 100, {epochs} epochs:")
    results = {}
    for dtype in ("float32", "float64"):
        Xd = X.astype(dtype)
        for name in ("numpy", "cuda"):
            if name == "numpy" and dtype == "float32":
                continue
            model = engine.MLP(sizes_net, dtype=dtype, backend=name, seed=1)
            hist = model.fit(Xd, y, epochs=epochs, batch_size=100, progress=False)
            results[name, dtype] = model
            times = ", ".join(f"{t:.3f}" for t in hist.epoch_time)
            print(f"  {name:<5} {dtype}: epoch s [{times}]  train acc "
                  f"{100 * hist.epoch_accuracy[-1]:.2f}%")
    w_gpu = results["cuda", "float64"].weights + results["cuda", "float64"].biases
    w_ref = results["numpy", "float64"].weights + results["numpy", "float64"].biases
    print(f"\nfloat64 weights after training, cuda vs numpy: max rel error "
          f"{max(rel_err(a, b) for a, b in zip(w_gpu, w_ref)):.2e}")


if __name__ == "__main__":
    main()
