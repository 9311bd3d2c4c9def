"""Kernel level: GEMM in the three training shapes, fused bias+activation, backward, softmax."""
import numpy as np
import pytest

from engine.backends import Network, get_backend

from conftest import FULL, record

REF = get_backend("numpy")
# (batch, n_in, n_out): the lecture's first layer, and a large layer
SIZES = {"lecture": (100, 784, 100),
         "large": (1024, 1024, 1024) if FULL else (256, 512, 512)}
# the three products of training: forward X @ W.T, weight gradient D.T @ A, delta D @ W
PRODUCTS = {
    "forward": lambda m, k, n: ((m, k), (n, k), (m, n), False, True),
    "weight_grad": lambda m, k, n: ((m, n), (m, k), (n, k), True, False),
    "delta": lambda m, k, n: ((m, n), (n, k), (m, k), False, False),
}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("product", list(PRODUCTS))
def test_gemm(benchmark, backend_name, dtype, size, product):
    m, k, n = SIZES[size]
    sa, sb, so, ta, tb = PRODUCTS[product](m, k, n)
    be = get_backend(backend_name)
    rng = np.random.default_rng(0)
    a, b = rng.random(sa).astype(dtype), rng.random(sb).astype(dtype)
    out, ref = be.empty(so, dtype), np.empty(so, dtype)
    A, B = be.asarray(a), be.asarray(b)
    be.gemm(A, B, out, ta, tb)
    REF.gemm(a, b, ref, ta, tb)
    be.synchronize()
    np.testing.assert_allclose(be.to_numpy(out), ref, rtol=1e-3 if dtype == np.float32 else 1e-10)

    def run():
        be.gemm(A, B, out, ta, tb)
        be.synchronize()
    benchmark.group = f"gemm {product} {size} {dtype}"
    benchmark.pedantic(run, rounds=30 if size == "lecture" else 5, warmup_rounds=2)
    record(benchmark, backend=backend_name, dtype=dtype, shape=(m, k, n),
           gflop=2 * m * n * k / 1e9)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_bias_act(benchmark, backend_name, dtype, activation):
    be = get_backend(backend_name)
    rng = np.random.default_rng(1)
    z0 = rng.standard_normal((100, 100)).astype(dtype)
    b = be.asarray(rng.standard_normal(100).astype(dtype))
    z = be.asarray(z0.copy())
    ref = z0.copy()
    be.bias_act_(z, b, activation)
    REF.bias_act_(ref, be.to_numpy(b), activation)
    np.testing.assert_allclose(be.to_numpy(z), ref, rtol=1e-5)
    zb = be.asarray(z0)

    def run():          # bias_act_ works in place; refreshing the input costs the same
        be.bias_act_(zb, b, activation)
        be.synchronize()
    benchmark.group = f"bias+{activation} 100x100 {dtype}"
    benchmark.pedantic(run, rounds=200, warmup_rounds=5)
    record(benchmark, backend=backend_name, dtype=dtype, shape=(100, 100))


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_act_backward(benchmark, backend_name, dtype, activation):
    be = get_backend(backend_name)
    rng = np.random.default_rng(2)
    a = be.asarray(rng.random((100, 100)).astype(dtype))
    d = be.asarray(rng.standard_normal((100, 100)).astype(dtype))

    def run():
        be.act_backward_(d, a, activation)
        be.synchronize()
    benchmark.group = f"backward {activation} 100x100 {dtype}"
    benchmark.pedantic(run, rounds=200, warmup_rounds=5)
    record(benchmark, backend=backend_name, dtype=dtype, shape=(100, 100))


def test_softmax(benchmark, backend_name, dtype):
    be = get_backend(backend_name)
    rng = np.random.default_rng(3)
    z = be.asarray(rng.standard_normal((100, 10)).astype(dtype))
    b = be.zeros(10, dtype)
    ref = be.to_numpy(z).copy()
    be.bias_act_(z, b, "softmax")
    REF.bias_act_(ref, np.zeros(10, dtype), "softmax")
    np.testing.assert_allclose(be.to_numpy(z), ref, rtol=1e-5)

    def run():
        be.bias_act_(z, b, "softmax")
        be.synchronize()
    benchmark.group = f"softmax 100x10 {dtype}"
    benchmark.pedantic(run, rounds=200, warmup_rounds=5)
    record(benchmark, backend=backend_name, dtype=dtype, shape=(100, 10))


@pytest.mark.parametrize("n", [2000, 10000])
@pytest.mark.parametrize("runner", ["numpy", "native BLAS per layer", "native tiles"])
def test_forward_pass(benchmark, dtype, n, runner):
    """A whole evaluation-sized forward pass of the lecture network: per-layer BLAS + kernels,
    or the native tiles in one C call on the epoch's threads."""
    from engine import MLP
    if runner != "numpy":
        pytest.importorskip("engine._native", reason="the native extension is not built")
        from engine import _native
    model = MLP([784, 100, 10], dtype=dtype, backend="numpy", seed=1)
    net = Network(model.weights, model.biases, ("sigmoid", "softmax"), "cross_entropy",
                  np.dtype(dtype))
    X = np.random.default_rng(2).random((n, 784)).astype(dtype)
    acts = [np.empty((n, k), dtype) for k in (100, 10)]
    want = [np.empty((n, k), dtype) for k in (100, 10)]
    REF.forward(net, X, want)
    if runner == "numpy":
        def run():
            REF.forward(net, X, acts)
    elif runner == "native BLAS per layer":
        native = get_backend("native")

        def run():
            type(native).__mro__[1].forward(native, net, X, acts)   # the generic, per layer
    else:
        def run():
            _native.tiled_forward(net.weights, net.biases, net.activations, X, acts)
    run()
    np.testing.assert_allclose(acts[1], want[1], rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-6)
    benchmark.group = f"forward pass 784-100-10 n={n} {dtype}"
    benchmark.pedantic(run, rounds=10, warmup_rounds=2)
    record(benchmark, backend=runner, dtype=dtype, shape=(n, 784, 100, 10),
           gflop=2 * n * (784 * 100 + 100 * 10) / 1e9)
