"""Step, epoch and inference level, against the NumPy backend in the same run.

Epochs run over 60,000 MNIST-shaped samples (synthetic pixels in [0, 1), 10 classes).
The "GEMM floor" row is the BLAS calls of the native epoch's BLAS path, alone
(EpochPlan.gemm_floor); "native, BLAS products" is that path in full, beside
"native" (its own GEMM tiles for these layer widths, except the wide network's).
"""
import numpy as np
import pytest

from engine import MLP
from engine.apps.bench import (WORKLOADS, backend_epoch, epoch_gflop, gemm_floor, make_data,
                          reference_epoch, workload_targets)

from conftest import BACKENDS, FULL, ROWS, record

N = ROWS


@pytest.fixture(scope="module", params=["float32", "float64"])
def data(request):
    X, y = make_data(N, dtype=request.param)
    return request.param, X, y


def _check_one_epoch_against_numpy(name, sizes, batch, dtype, X, y):
    """One epoch on 2,000 rows: the backend's weights equal the NumPy backend's."""
    weights = []
    for be_name in ("numpy", name):
        model = MLP(sizes, dtype=dtype, backend=be_name, seed=1)
        model.fit(X[:2000], y[:2000], epochs=1, batch_size=batch, shuffle=False, progress=False)
        weights.append(model.weights[0])
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(weights[1], weights[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("runner", BACKENDS + ["native, BLAS products", "GEMM floor"])
def test_epoch(benchmark, data, workload, runner):
    dtype, X, y = data
    sizes, batch = WORKLOADS[workload]["sizes"], WORKLOADS[workload]["batch"]
    pair, y = workload_targets(workload, y, dtype)
    if runner in ("GEMM floor", "native, BLAS products") and "native" not in BACKENDS:
        pytest.skip(f"{runner} runs through the native extension, which is not built")
    if runner == "GEMM floor":
        run = gemm_floor(sizes, batch, dtype, X, y)
    elif runner == "native, BLAS products":
        run = backend_epoch("native", sizes, batch, dtype, X, y, epoch_gemm="blas", **pair)
    else:
        if runner != "numpy" and pair["output"] == "softmax":
            _check_one_epoch_against_numpy(runner, sizes, batch, dtype, X, y)
        run = backend_epoch(runner, sizes, batch, dtype, X, y, **pair)
    rounds = 2 if workload.startswith("wide") else 4
    benchmark.group = f"epoch {workload} {dtype}"
    benchmark.pedantic(run, rounds=rounds, warmup_rounds=1)
    record(benchmark, backend=runner, dtype=dtype, shape=sizes, batch=batch,
           gflop=epoch_gflop(sizes, N, batch))


@pytest.mark.parametrize("workload", ["lecture 784-100-10 b100", "deep 784-32x6-10 b100"])
@pytest.mark.parametrize("features", [dict(optimizer="adam"), dict(dropout=0.2),
                                      dict(optimizer="adam", alpha=1e-4, dropout=0.2)],
                         ids=["adam", "dropout", "adam+l2+dropout"])
def test_epoch_training_features(benchmark, data, backend_name, workload, features):
    """The epochs of test_epoch with Adam, dropout and both (with L2): their cost over
    plain SGD, read within one run."""
    dtype, X, y = data
    sizes, batch = WORKLOADS[workload]["sizes"], WORKLOADS[workload]["batch"]
    run = backend_epoch(backend_name, sizes, batch, dtype, X, y, **features)
    label = "+".join(f"{k}={v}" for k, v in features.items())
    benchmark.group = f"epoch {workload} {dtype}"
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    record(benchmark, backend=f"{backend_name} {label}", dtype=dtype, shape=sizes, batch=batch,
           gflop=epoch_gflop(sizes, N, batch))


def test_epoch_textbook_reference(benchmark):
    """The textbook NeuralNetMLP loop in float64: the code this engine replaces."""
    X, y = make_data(N, dtype="float64")
    sizes = WORKLOADS["lecture 784-100-10 b100"]["sizes"]
    benchmark.group = "epoch lecture 784-100-10 b100 float64"
    benchmark.pedantic(reference_epoch(sizes, 100, X, y), rounds=3, warmup_rounds=1)
    record(benchmark, backend="reference NeuralNetMLP", dtype="float64", shape=sizes,
           gflop=epoch_gflop(sizes, N, 100))


def test_sgd_step(benchmark, backend_name, dtype):
    """One minibatch of the lecture network: gather, forward, backward, update."""
    X, y = make_data(1000, dtype=dtype)
    model = MLP([784, 100, 10], dtype=dtype, backend=backend_name)
    run = model.epoch_runner(X, y, batch_size=100, learning_rate=0.01, order=np.arange(100))
    assert np.isfinite(run()[0])
    benchmark.group = f"sgd step 784-100-10 b100 {dtype}"
    benchmark.pedantic(run, rounds=100, warmup_rounds=5)
    record(benchmark, backend=backend_name, dtype=dtype, shape=(100, 784, 100, 10),
           gflop=epoch_gflop([784, 100, 10], 100, 100))


def test_predict(benchmark, backend_name, dtype):
    X, y = make_data(10_000, dtype=dtype)
    model = MLP([784, 100, 10], dtype=dtype, backend=backend_name)
    ref = MLP([784, 100, 10], dtype=dtype, backend="numpy")
    np.testing.assert_array_equal(model.predict(X[:500]), ref.predict(X[:500]))
    benchmark.group = f"predict 10000 784-100-10 {dtype}"
    benchmark.pedantic(model.predict, args=(X,), rounds=10, warmup_rounds=1)
    record(benchmark, backend=backend_name, dtype=dtype, shape=(10_000, 784, 100, 10),
           gflop=2 * 10_000 * (784 * 100 + 100 * 10) / 1e9)


@pytest.mark.parametrize("workload", ["lecture 784-100-10 b100", "wide 784-1024-1024-10 b256"])
@pytest.mark.parametrize("precision", ["float32", "bf16-mixed"])
def test_epoch_bf16_mixed(benchmark, workload, precision):
    """The native epoch in float32 and in bf16-mixed (the best bf16 path this CPU runs:
    `engine info`), in one group; the bf16 model's first epoch on 2,000 rows is checked
    against the NumPy specification of bf16-mixed first."""
    if "native" not in BACKENDS:
        pytest.skip("the native extension is not built")
    sizes, batch = WORKLOADS[workload]["sizes"], WORKLOADS[workload]["batch"]
    X, y = make_data(N, dtype="float32")
    bf16 = None if precision == "float32" else precision
    if bf16:
        weights = []
        for be_name in ("numpy", "native"):
            model = MLP(sizes, dtype="float32", backend=be_name, seed=1, precision=bf16)
            model.fit(X[:2000], y[:2000], epochs=1, batch_size=batch, shuffle=False,
                      progress=False)
            weights.append(model.weights[0])
        np.testing.assert_allclose(weights[1], weights[0], rtol=1e-3, atol=1e-4)
    run = backend_epoch("native", sizes, batch, "float32", X, y, precision=bf16)
    benchmark.group = f"epoch {workload} float32 vs bf16-mixed"
    benchmark.pedantic(run, rounds=2 if workload.startswith("wide") else 4, warmup_rounds=1)
    record(benchmark, backend="native", dtype=precision, shape=sizes, batch=batch,
           gflop=epoch_gflop(sizes, N, batch))
