"""The CUDA backend's kernels against the NumPy backend, on small odd shapes.

Under NUMBA_ENABLE_CUDASIM=1 (set by conftest.py unless ENGINE_TEST_REAL_GPU=1) these run
on the CPU; on a GPU machine the same tests run on the device.
"""
import numpy as np
import pytest

from engine.backends.base import HIDDEN_ACTIVATIONS

from engine import MLP
from engine.backends import available_backends, get_backend

from helpers import PAIRS, check, outputs_and_targets as _outputs, rand

_INFO = {b.name: b for b in available_backends()}
pytestmark = pytest.mark.skipif(not _INFO["cuda"].available,
                                reason=f"cuda backend unavailable: {_INFO['cuda'].reason}")
REF = get_backend("numpy")


@pytest.fixture(scope="module")
def gpu():
    return get_backend("cuda")


def _run(gpu, method, *args):
    """Call the same method on the NumPy backend (copies) and the GPU; return both results."""
    ref_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    dev_args = [gpu.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    r_ref = getattr(REF, method)(*ref_args)
    r_dev = getattr(gpu, method)(*dev_args)
    gpu.synchronize()
    dev_np = [gpu.to_numpy(a) if not isinstance(a, (str, float, int, type(None))) else a
              for a in dev_args]
    return ref_args, dev_np, r_ref, r_dev


FLAGS = [(False, False), (False, True), (True, False), (True, True)]
# The simulator runs one Python thread per CUDA thread, so the larger odd shape runs every
# flag pair in float64 and the forward product (X @ W.T) in float32; the kernel source is
# the same for both dtypes.
GEMM_CASES = [(dt, shape, flags) for dt in ("float32", "float64")
              for shape in [(7, 13, 5), (1, 1, 1), (16, 16, 16)] for flags in FLAGS]
# past one 16x16 tile in m, k and n at once (2 x 2 blocks, two k tiles): every edge of the
# tile loop, at the smallest grid the simulator has to run thread by thread
GEMM_CASES += [("float64", (17, 18, 19), flags) for flags in FLAGS]
GEMM_CASES += [("float32", (17, 18, 19), (False, True))]


@pytest.mark.parametrize("dtype,shape,flags", GEMM_CASES, ids=str)
def test_gemm(gpu, dtype, shape, flags):
    (m, k, n), (trans_a, trans_b) = shape, flags
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(m + 7 * k + 13 * n)
    a = rand(rng, (k, m) if trans_a else (m, k), dtype)
    b = rand(rng, (n, k) if trans_b else (k, n), dtype)
    out = rand(rng, (m, n), dtype)
    A, B = (a.T if trans_a else a), (b.T if trans_b else b)
    # the simulator runs one Python thread per CUDA thread: one (alpha, beta) at the larger size
    scalings = [(-0.5, 1.0)] if m * n > 1000 else [(1.0, 0.0), (-0.5, 1.0)]
    for alpha, beta in scalings:
        ref, dev, _, _ = _run(gpu, "gemm", a, b, out, trans_a, trans_b, alpha, beta)
        mag = abs(alpha) * (np.abs(A).astype(np.float64) @ np.abs(B)) + abs(beta) * np.abs(out)
        check(dev[2], ref[2], k=k + 1, magnitude=mag)


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS + ("softmax", "exp"))
def test_bias_act(gpu, dtype, activation):
    rng = np.random.default_rng(1)
    z = rand(rng, (7, 13), dtype, 3.0)
    z[0, :7] = [-1e4, -800, -90, 0, 90, 800, 1e4]
    b = rand(rng, 13, dtype)
    ref, dev, _, _ = _run(gpu, "bias_act_", z, b, activation)
    assert np.all(np.isfinite(dev[0]))
    check(dev[0], ref[0], k=13 if activation == "softmax" else 4)


def test_bias_act_keeps_silus_slope(gpu, dtype):
    """silu's derivative cannot be read from its output: bias_act_ keeps it in the slope
    array (and the dropout backward pass reads it unscaled)."""
    rng = np.random.default_rng(6)
    z, b = rand(rng, (7, 13), dtype, 4.0), rand(rng, 13, dtype)
    ref, dev, _, _ = _run(gpu, "bias_act_", z, b, "silu", np.zeros_like(z))
    check(dev[0], ref[0], k=4)
    check(dev[3], ref[3], k=6)
    d = rand(rng, (7, 13), dtype)
    ref, dev, _, _ = _run(gpu, "dropout_backward_", d, ref[3], "silu", 0.3, 99, 0)
    check(dev[0], ref[0], k=3)


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_act_backward(gpu, dtype, activation):
    rng = np.random.default_rng(2)
    d = rand(rng, (9, 11), dtype)
    a = rng.random((9, 11)).astype(dtype)
    a[a < 0.3] = 0
    ref, dev, _, _ = _run(gpu, "act_backward_", d, a, activation)
    check(dev[0], ref[0], k=3, magnitude=np.abs(d) * (1 + a.astype(np.float64) ** 2))


@pytest.mark.parametrize("shape", [(5, 10), (3, 70)])
def test_softmax(gpu, dtype, shape):
    """32 threads per row: rows shorter and longer than a warp, fewer rows than a block."""
    z = rand(np.random.default_rng(3), shape, dtype, 20.0)
    ref, dev, _, _ = _run(gpu, "bias_act_", z, np.zeros(shape[1], dtype), "softmax")
    check(dev[0], ref[0], k=shape[1])


def test_softmax_rows_stride_past_the_grid(gpu, monkeypatch):
    """More row groups than blocks: each block walks several."""
    from engine.backends import cuda_kernels as k
    monkeypatch.setattr(k, "MAX_BLOCKS", 1)
    z = rand(np.random.default_rng(4), (2 * k.SOFTMAX_ROWS + 1, 3), np.dtype("float64"), 5.0)
    ref, dev, _, _ = _run(gpu, "bias_act_", z, np.zeros(3, z.dtype), "softmax")
    check(dev[0], ref[0], k=3)


def test_gemm_strides_over_row_tiles_past_the_grid_limit(gpu, monkeypatch):
    """A product taller than MAX_GRID_Y row tiles (1M rows on a GPU) walks the rest."""
    from engine.backends import cuda_kernels as k
    monkeypatch.setattr(k, "MAX_GRID_Y", 2)
    rng = np.random.default_rng(5)
    a, b = rand(rng, (5 * k.TILE + 3, 4), np.dtype("float64")), \
        rand(rng, (4, 3), np.dtype("float64"))
    out = np.zeros((a.shape[0], 3))
    assert k.gemm_grid(*out.shape)[0][1] == 2
    ref, dev, _, _ = _run(gpu, "gemm", a, b, out)
    check(dev[2], ref[2], k=5)


@pytest.mark.parametrize("output,loss", PAIRS)
def test_output_delta_and_loss(gpu, dtype, output, loss):
    rng = np.random.default_rng(4)
    a, t = _outputs(rng, output, 7, 13, dtype, loss)
    ref, dev, _, _ = _run(gpu, "output_delta", a, t, np.zeros((7, 13), dtype), output, loss)
    check(dev[2], ref[2], k=4)
    _, _, want, got = _run(gpu, "loss", a, t, output, loss)
    check(np.array(got, dtype), np.array(want, dtype), k=7 * 13)


@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("identity", "mse")])
def test_weighted_output_delta_and_loss(gpu, dtype, output, loss):
    rng = np.random.default_rng(10)
    a, t = _outputs(rng, output, 7, 5, dtype, loss)
    w = np.abs(rand(rng, (7,), dtype))
    ref, dev, _, _ = _run(gpu, "output_delta", a, t, np.zeros((7, 5), dtype), output, loss, w)
    check(dev[2], ref[2], k=8)
    _, _, want, got = _run(gpu, "loss", a, t, output, loss, w)
    check(np.array(got, dtype), np.array(want, dtype), k=7 * 5)
    values, out = rand(rng, (9,), dtype), np.zeros(4, dtype)
    idx = np.array([3, 0, 8, 3])
    ref, dev, _, _ = _run(gpu, "take_", values, idx, out)
    check(dev[2], ref[2])


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_dropout_forward_and_backward(gpu, dtype, activation):
    """Every activation's derivative through a dropped layer (leaky_relu's slope below 0
    once went missing here: outputs of both signs)."""
    rng = np.random.default_rng(13)
    a = rand(rng, (6, 9), dtype, 0.5)
    d = rand(rng, (6, 9), dtype)
    ref, dev, _, _ = _run(gpu, "dropout_", a, 0.3, 12345, 1, 4)
    check(dev[0], ref[0])
    ref, dev, _, _ = _run(gpu, "dropout_backward_", d, a, activation, 0.3, 12345, 1, 4)
    check(dev[0], ref[0], k=2)


def test_bias_grad(gpu, dtype):
    d = rand(np.random.default_rng(5), (33, 65), dtype)
    ref, dev, _, _ = _run(gpu, "bias_grad", d, np.zeros(65, dtype))
    check(dev[1], ref[1], k=33, magnitude=np.abs(d).sum(axis=0))


@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_step(gpu, dtype, kind):
    from engine.optimizers import StepRule
    rng = np.random.default_rng(8)
    p, g, s1 = (rand(rng, (13, 7), dtype) for _ in range(3))
    s2 = np.abs(rand(rng, (13, 7), dtype))
    state = {"sgd": (), "momentum": (s1,), "nesterov": (s1,), "adam": (s1, s2)}[kind]
    rule = StepRule(kind, 0.1, 0.8, 0.85, 0.95, 1e-6, t=3)
    ref_state = [a.copy() for a in state]
    dev_state = [gpu.asarray(a) for a in state]
    ref_p, dev_p = p.copy(), gpu.asarray(p)
    REF.optimizer_step_(ref_p, g, ref_state, rule, 0.05)
    gpu.optimizer_step_(dev_p, gpu.asarray(g), dev_state, rule, 0.05)
    check(gpu.to_numpy(dev_p), ref_p, k=4)
    for got, want in zip(dev_state, ref_state):
        check(gpu.to_numpy(got), want, k=4)


def test_gather_target_rows(gpu, dtype):
    rng = np.random.default_rng(9)
    X, T = rand(rng, (20, 9), dtype), rand(rng, (20, 3), dtype)
    idx = rng.permutation(20)[:7]
    ref, dev, _, _ = _run(gpu, "gather_", X, T, idx, np.zeros((7, 9), dtype),
                          np.zeros((7, 3), dtype))
    check(dev[3], ref[3])
    check(dev[4], ref[4])


def test_gather(gpu, dtype):
    rng = np.random.default_rng(7)
    X = rand(rng, (20, 9), dtype)
    y = rng.integers(0, 4, 20)
    idx = rng.permutation(20)[:7]
    ref, dev, _, _ = _run(gpu, "gather_", X, y, idx, np.zeros((7, 9), dtype),
                          np.zeros((7, 4), dtype))
    check(dev[3], ref[3])
    check(dev[4], ref[4])
    _, only, _, _ = _run(gpu, "gather_", X, y, idx, None, np.zeros((7, 4), dtype))
    check(only[4], ref[4])                   # the targets only (evaluation's gather)


def test_diagnostics(gpu, dtype):
    rng = np.random.default_rng(8)
    a = np.maximum(rand(rng, (12, 8), dtype), 0)
    a[:, 2] = 0
    assert np.array_equal(gpu.to_numpy(gpu.alive_units(gpu.asarray(a))), REF.alive_units(a))
    # more entries than one block's threads: several block sums, one atomic each
    s = rng.random((40, 9)).astype(dtype)
    for act in ("sigmoid", "tanh"):
        assert gpu.saturated_count(gpu.asarray(s), act) == REF.saturated_count(s, act)
    assert gpu.sq_norm(gpu.asarray(s)) == pytest.approx(REF.sq_norm(s), rel=1e-6)


def test_generic_epoch_on_a_slice_of_the_sample_matches_numpy(sample64):
    X, y, _, _ = sample64
    # 23 rows x 20 pixels: minibatches of 12 and a short 11; k = 20 spans several GEMM tiles
    X, y = np.ascontiguousarray(X[:23, ::40]), y[:23]
    models = {}
    for name in ("numpy", "cuda"):
        model = MLP([20, 6, 10], "sigmoid", "softmax", "cross_entropy", dtype="float64",
                    backend=name, seed=3)
        # Adam with L2 and (unit) sample weights: the generic epoch, which the fused one
        # hands weighted, dropout and diagnostics fits to (each rule's kernel:
        # test_optimizer_step; the fused epoch: test_fused_epoch_...)
        hist = model.fit(X, y, epochs=1, batch_size=12, learning_rate=0.05, optimizer="adam",
                         alpha=0.2, progress=False, sample_weight=np.ones(len(y)))
        models[name] = (model, hist)
    (ref, h_ref), (gpu, h_gpu) = models["numpy"], models["cuda"]
    for a, b in zip(gpu.weights + gpu.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(h_gpu.batch_loss, h_ref.batch_loss, rtol=1e-10)
    np.testing.assert_allclose(h_gpu.epoch_loss, h_ref.epoch_loss, rtol=1e-10)
    assert len(h_gpu.batch_loss) == 2
    assert all(ws.plan is None for ws in gpu.state.workspaces.values())   # not the fused epoch
    np.testing.assert_array_equal(gpu.predict(X), ref.predict(X))


def test_auto_never_picks_the_simulator():
    import os
    from engine.backends import _instances
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "") in ("", "0"):
        return
    _instances.pop("auto", None)
    assert get_backend("auto").name != "cuda"


def test_count_regression_trains_as_numpy(sample64):
    """A target-row pair through a whole fit on the device (rows gathered there too)."""
    X, _, _, _ = sample64
    X = np.ascontiguousarray(X[:5, ::60])                     # 5 rows x 14 pixels
    rng = np.random.default_rng(0)
    # one pair through a whole fit (the others' kernels: test_output_delta_and_loss)
    cases = [("exp", "poisson", rng.poisson(1.0, (5, 2)).astype(float))]
    for output, loss, y in cases:
        models = {}
        for name in ("numpy", "cuda"):
            model = MLP([14, 3, 2], "tanh", output, loss, dtype="float64", backend=name,
                        seed=3)
            hist = model.fit(X, y, epochs=1, batch_size=3, learning_rate=0.05,
                             progress=False)
            models[name] = (model, hist)
        (ref, h_ref), (gpu, h_gpu) = models["numpy"], models["cuda"]
        for a, b in zip(gpu.weights + gpu.biases, ref.weights + ref.biases):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(h_gpu.batch_loss, h_ref.batch_loss, rtol=1e-10)


FUSED_CASES = [  # (hidden sizes, hidden activation, output, loss, optimizer settings)
    ([4], "sigmoid", "softmax", "cross_entropy", dict(optimizer="sgd", learning_rate=0.5)),
    ([4, 3], "relu", "sigmoid", "mse", dict(optimizer="sgd", learning_rate=0.5,
                                           momentum=0.9, alpha=0.1)),
    ([4], "tanh", "identity", "squared_error", dict(optimizer="sgd", learning_rate=0.1,
                                                   momentum=0.8, nesterov=True)),
    ([3], "tanh", "sigmoid", "binary_cross_entropy", dict(optimizer="adam",
                                                          learning_rate=0.05, alpha=0.2)),
    ([3], "identity", "exp", "poisson", dict(optimizer="adam", learning_rate=0.01)),
    ([4, 3], "silu", "softmax", "cross_entropy", dict(optimizer="sgd", learning_rate=0.5,
                                                      momentum=0.9)),   # kept slopes
]


@pytest.mark.parametrize("hidden,act,output,loss,opt", FUSED_CASES,
                         ids=[f"{c[1]}-{c[2]}-{c[3]}" for c in FUSED_CASES])
def test_fused_epoch_trains_as_numpy_in_3L_plus_2_launches(hidden, act, output, loss, opt):
    """The fused epoch (engine/backends/cuda_epoch.py): every optimizer, L2, label and
    target-row pairs, depth 1 and 2, a short last minibatch; and its launch count."""
    rng = np.random.default_rng(len(hidden))
    X = rng.normal(size=(7, 5))
    c = 1 if loss == "binary_cross_entropy" else 3
    if loss in ("cross_entropy", "mse"):
        y = rng.integers(0, c, 7)
    elif loss == "poisson":
        y = rng.poisson(1.0, (7, c)).astype(float)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, (7, c)).astype(float)
    else:
        y = rng.normal(size=(7, c))
    sizes = [5] + hidden + [c]
    models = {}
    for name in ("numpy", "cuda"):
        model = MLP(sizes, act, output, loss, dtype="float64", backend=name, seed=2,
                    init="glorot")
        hist = model.fit(X, y, epochs=1, batch_size=3, progress=False, **opt)
        models[name] = (model, hist)
    (ref, h_ref), (gpu, h_gpu) = models["numpy"], models["cuda"]
    for a, b in zip(gpu.weights + gpu.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(h_gpu.batch_loss, h_ref.batch_loss, rtol=1e-10)
    plan = next(ws for ws in gpu.state.workspaces.values()).plan
    per_step = 3 * (len(sizes) - 1) + 2
    if plan.graphs:         # a real GPU: the two full minibatches recorded once, replayed
        assert plan.launches == 2 * per_step             # the recording + the short last
    else:
        assert plan.launches == 3 * per_step             # 3 minibatches


def test_large_products_go_to_cublas_only_on_a_device():
    from engine.backends.cuda_backend import CUBLAS_MIN_FLOP, use_cublas
    assert use_cublas(4096, 4096, 4096, simulated=False)
    assert not use_cublas(4096, 4096, 4096, simulated=True)
    assert not use_cublas(100, 100, 784, simulated=False)      # the lecture's products
    assert 2 * 512 ** 3 == CUBLAS_MIN_FLOP and use_cublas(512, 512, 512, simulated=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_k_products(gpu, dtype):
    """A thin product with a long inner size is cut along k; the slices add atomically
    into beta * c."""
    from engine.backends import cuda_kernels as k
    m, kk, n = 7, 100, 5
    assert k.split_count(m, n, kk) > 1
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(9)
    for trans_a, trans_b in ((False, True), (True, False)):
        a = rand(rng, (kk, m) if trans_a else (m, kk), dtype)
        b = rand(rng, (n, kk) if trans_b else (kk, n), dtype)
        out = rand(rng, (m, n), dtype)
        for alpha, beta in ((1.0, 0.0), (-0.5, 1.0)):
            ref, dev, _, _ = _run(gpu, "gemm", a, b, out, trans_a, trans_b, alpha, beta)
            A, B = (a.T if trans_a else a), (b.T if trans_b else b)
            mag = abs(alpha) * (np.abs(A).astype(np.float64) @ np.abs(B)) + \
                abs(beta) * np.abs(out)
            check(dev[2], ref[2], k=kk + 1, magnitude=mag)


def test_fused_epoch_steps_the_models_own_buffer_across_an_optimizer_switch():
    """The fused epoch's parameters and state are views of the model's buffer (nothing
    copied around an epoch); after Adam, momentum gets a new buffer and a new plan, and
    the weights still follow NumPy's."""
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(20, 5)), rng.integers(0, 3, 20)
    models = {}
    for name in ("numpy", "cuda"):
        model = MLP([5, 4, 3], "silu", "softmax", "cross_entropy", dtype="float64",
                    backend=name, seed=2)
        model.fit(X, y, epochs=1, batch_size=10, optimizer="adam", learning_rate=0.01,
                  progress=False)
        model.fit(X, y, epochs=1, batch_size=10, learning_rate=0.1, momentum=0.9,
                  progress=False)
        models[name] = model
    plans = [ws.plan for ws in models["cuda"].state.workspaces.values() if ws.plan]
    assert plans and all(plan.shared for plan in plans)
    for a, b in zip(models["cuda"].weights + models["cuda"].biases,
                    models["numpy"].weights + models["numpy"].biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fused_epoch_with_split_weight_gradients():
    from engine.backends import cuda_kernels as k
    rng = np.random.default_rng(3)
    batch = 5 * k.BK                                # 40 under the simulator, 80 on a GPU
    X, y = rng.normal(size=(2 * batch, 5)), rng.integers(0, 3, 2 * batch)
    assert k.split_count(4, 5, batch) > 1           # the first layer's weight gradient
    # two minibatches: the second's slices add into the gradient the update cleared
    models = []
    for name in ("numpy", "cuda"):
        model = MLP([5, 4, 3], "tanh", dtype="float64", backend=name, seed=4)
        model.fit(X, y, epochs=1, batch_size=batch, learning_rate=0.3, momentum=0.5,
                  progress=False)
        models.append(model)
    for a, b in zip(models[1].weights + models[1].biases, models[0].weights + models[0].biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_full_minibatches_replay_one_recorded_step(monkeypatch):
    """Where CUDA graphs exist, each full minibatch replays one recorded step: its
    launches must not change from step to step (the counters live on the device). A
    recorder stands in for cuda.core's graph builder here and replays by launching."""
    from engine.backends import cuda_epoch as ce

    class Graph:
        launched = 0

        def __init__(self, calls):
            self.calls = calls

        def launch(self, stream):
            Graph.launched += 1
            for kernel, grid, args in self.calls:
                kernel[grid](*args)

    class Builder:
        made = 0

        def __init__(self):
            Builder.made += 1
            self.calls = []

        def begin_building(self):
            pass

        def end_building(self):
            return self

        def complete(self):
            return Graph(self.calls)

    class Device:
        default_stream = None

        def create_graph_builder(self):
            return Builder()

    real_launch = ce.CudaEpochPlan._launch

    def launch(self, kernel, grid, *args):
        if isinstance(self._into, Builder):
            self.launches += 1
            self._into.calls.append((kernel, grid, args))
        else:
            real_launch(self, kernel, grid, *args)
    monkeypatch.setattr(ce, "_graph_device", lambda: Device())
    monkeypatch.setattr(ce.CudaEpochPlan, "_launch", launch)
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    models = []
    for name in ("numpy", "cuda"):
        model = MLP([5, 4, 3], "tanh", dtype="float64", backend=name, seed=5)
        model.fit(X, y, epochs=2, batch_size=3, learning_rate=0.05, optimizer="adam",
                  alpha=0.1, progress=False)
        models.append(model)
    for a, b in zip(models[1].weights + models[1].biases, models[0].weights + models[0].biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert Builder.made == 1 and Graph.launched == 4      # 2 full minibatches x 2 epochs
