"""The native backend's own GEMM tiles and threaded fused epoch (csrc/workers_gemm.h,
csrc/epoch.h), checked against the NumPy backend and against the BLAS path."""
import os

import numpy as np
import pytest

_native = pytest.importorskip("engine._native", reason="the native extension is not built")

from engine import MLP  # noqa: E402
from engine.backends import Network, get_backend  # noqa: E402
from helpers import SIMD_VARIANTS, plan_arrays, simd_variant  # noqa: E402

# rerun by .ci/run against the debug build of the extension
pytestmark = pytest.mark.native

# widths around the tile sizes (6 rows; panels of 8/16 floats, 4/8 doubles), and 1
SHAPES = [
    [37, 23, 13, 7],
    [5, 1, 3],
    [40, 16, 16, 10],
    [33, 17, 65],
    [64, 48, 32, 8],
]


# the native backend `train` uses for backend="native" (native_gemm sets it per test)
_NATIVE = {}


@pytest.fixture
def native_gemm():
    """use(mode): a native backend whose epochs take that product path, used from then on by
    `train(..., "native")` in this test; returned for models made directly."""
    def use(mode):
        _NATIVE["native"] = get_backend("native", gemm=mode)
        return _NATIVE["native"]
    yield use
    _NATIVE.clear()


@pytest.fixture
def epoch_threads():
    saved = _native.epoch_threads_setting()
    yield _native.set_epoch_threads
    _native.set_epoch_threads(saved)


def data(n, f, c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, f)).astype(dtype), rng.integers(0, c, n)


def train(sizes, dtype, backend, hidden="sigmoid", output="softmax", loss="cross_entropy",
          momentum=0.0, n=203, batch=20, epochs=2):
    X, y = data(n, sizes[0], sizes[-1], dtype)
    model = MLP(sizes, hidden, output, loss, dtype=dtype, backend=_NATIVE.get(backend, backend),
                seed=5, init_scale=0.5)
    hist = model.fit(X, y, epochs=epochs, batch_size=batch, learning_rate=0.2,
                     momentum=momentum, progress=False)
    return model, hist


def params(model):
    return model.weights + model.biases


@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("pair", [("sigmoid", "softmax", "cross_entropy", 0.0),
                                  ("relu", "sigmoid", "mse", 0.9),
                                  ("tanh", "softmax", "cross_entropy", 0.5),
                                  ("silu", "softmax", "cross_entropy", 0.5)])
def test_tiled_epochs_match_numpy_float64(native_gemm, sizes, pair):
    hidden, output, loss, momentum = pair
    native_gemm("tiles")
    ref, ref_hist = train(sizes, "float64", "numpy", hidden, output, loss, momentum)
    got, got_hist = train(sizes, "float64", "native", hidden, output, loss, momentum)
    assert got.backend.product_path(sizes, np.float64) == "tiles"
    for a, b in zip(params(got), params(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got_hist.batch_loss, ref_hist.batch_loss, rtol=1e-12)


@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("batch", [20, 150])        # 150: more rows than any layer is wide
def test_tiled_epochs_match_numpy_float32(native_gemm, sizes, batch):
    native_gemm("tiles")
    ref, _ = train(sizes, "float32", "numpy", momentum=0.5, batch=batch)
    got, _ = train(sizes, "float32", "native", momentum=0.5, batch=batch)
    for a, b in zip(params(got), params(ref)):
        # float32 sums of up to 40 products, over 22 updates
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * np.abs(b).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_step_gradient_equals_numpy_gradient(native_gemm, dtype):
    """One minibatch, learning rate 1: W_before - W_after is the gradient of every
    product (forward, delta, weight gradient) the tiles formed."""
    backend = native_gemm("tiles")
    sizes = [29, 21, 18, 11]
    X, y = data(37, sizes[0], sizes[-1], dtype, seed=3)
    model = MLP(sizes, "tanh", "softmax", "cross_entropy", dtype=dtype, backend=backend,
                seed=2, init_scale=0.5)
    before = [p.copy() for p in params(model)]
    net_ref = MLP(sizes, "tanh", "softmax", "cross_entropy", dtype=dtype, backend="numpy",
                  seed=2, init_scale=0.5)
    _, gw, gb = net_ref.loss_and_gradients(X, y)
    model.epoch_runner(X, y, batch_size=len(y), learning_rate=1.0, order=np.arange(len(y)))()
    tol = 1e-12 if dtype == "float64" else 2e-5
    for b, a, g in zip(before, params(model), gw + gb):
        # float32: sums of up to 37 terms; recovering g from b - a costs |b| * eps
        scale = np.abs(g).max() + np.abs(b).max()
        np.testing.assert_allclose(b - a, g, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiles_agree_with_the_blas_path(native_gemm, dtype):
    runs = {}
    for mode in ("tiles", "blas"):
        native_gemm(mode)
        runs[mode] = train([50, 30, 10], dtype, "native", momentum=0.9)
    tol = 1e-12 if dtype == "float64" else 2e-5
    for a, b in zip(params(runs["tiles"][0]), params(runs["blas"][0])):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def test_dropout_and_weights_do_not_depend_on_the_number_of_threads(native_gemm, epoch_threads):
    native_gemm("tiles")
    X, y = data(211, 37, 7, "float32")
    w = np.random.default_rng(1).uniform(0, 2, 211)
    runs = []
    for threads in (1, 2, 3):
        epoch_threads(threads)
        model = MLP([37, 23, 13, 7], "relu", backend=_NATIVE["native"], dtype="float32", seed=5)
        model.fit(X, y, epochs=2, batch_size=40, optimizer="adam", alpha=0.01, dropout=0.3,
                  sample_weight=w, progress=False)
        runs.append(params(model))
    for other in runs[1:]:
        for a, b in zip(other, runs[0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_the_number_of_threads(native_gemm, epoch_threads, dtype):
    native_gemm("tiles")
    runs = []
    for threads in (1, 2, 3):       # a batch of 40 rows: 3 threads get 2+ tiles of rows each
        epoch_threads(threads)
        runs.append(train([37, 23, 13, 7], dtype, "native", momentum=0.5, n=211, batch=40))
    for model, hist in runs[1:]:
        for a, b in zip(params(model), params(runs[0][0])):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(hist.batch_loss, runs[0][1].batch_loss)


@pytest.mark.parametrize("n,batch", [(81, 40), (5, 1)])
def test_minibatches_smaller_than_the_thread_team(native_gemm, epoch_threads, n, batch):
    """81 rows in batches of 40 end with a one-row minibatch: two of the three threads get
    no rows and must still join the update (and batches of 1 run on one thread)."""
    native_gemm("tiles")
    epoch_threads(3)
    ref, _ = train([9, 7, 4], "float64", "numpy", n=n, batch=batch)
    got, _ = train([9, 7, 4], "float64", "native", n=n, batch=batch)
    for a, b in zip(params(got), params(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_auto_picks_tiles_for_narrow_layers_and_blas_for_wide_ones():
    def plan(sizes):
        return _native.EpochPlan(**plan_arrays(sizes, 8, np.float32))
    assert plan([784, 100, 10]).gemm == "tiles"      # wide inputs do not count
    assert plan([20, _native.TILES_MAX_WIDTH + 1, 10]).gemm == "blas"


def test_bad_gemm_choice_is_refused():
    with pytest.raises(ValueError, match="gemm must be 'auto', 'tiles' or 'blas'"):
        _native.EpochPlan(**plan_arrays([4, 3, 2], 8), gemm="fast")
    with pytest.raises(ValueError, match="n must be >= 1, or 0"):
        _native.set_epoch_threads(-1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", SHAPES)
@pytest.mark.parametrize("n", [1, 47, 97, 301])
def test_tiled_forward_matches_numpy(sizes, dtype, n):
    ref = get_backend("numpy")
    model = MLP(sizes, "tanh", "softmax", "cross_entropy", dtype=dtype, backend="numpy",
                seed=4, init_scale=0.5)
    net = Network(model.weights, model.biases, ("tanh",) * (len(sizes) - 2) + ("softmax",),
                  "cross_entropy", np.dtype(dtype))
    X, _ = data(n, sizes[0], sizes[-1], dtype, seed=n)
    want = [np.empty((n, k), dtype) for k in sizes[1:]]
    got = [np.full((n, k), np.nan, dtype) for k in sizes[1:]]
    ref.forward(net, X, want)
    _native.tiled_forward(net.weights, net.biases, net.activations, X, got)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_native_evaluation_uses_the_tiles_and_agrees_with_blas(native_gemm, monkeypatch):
    from engine.backends import native_backend
    calls = []
    tiled = _native.tiled_forward

    def counting(*args):
        calls.append(args[3].shape[0])
        return tiled(*args)
    monkeypatch.setattr(native_backend._native, "tiled_forward", counting)
    n = native_backend.TILED_FORWARD_MIN_ROWS + 500
    X, y = data(n, 30, 5, "float32")
    scores = {}
    for mode in ("tiles", "blas"):
        model = MLP([30, 20, 5], dtype="float32", backend=native_gemm(mode), seed=1)
        scores[mode] = model.predict_proba(X)
    assert calls == [n]                 # the tiles once, BLAS for gemm="blas"
    np.testing.assert_allclose(scores["tiles"], scores["blas"], rtol=1e-5, atol=1e-6)
    model = MLP([30, 20, 5], dtype="float32", backend=native_gemm("tiles"), seed=1)
    model.predict_proba(X[:100])        # minibatch-sized: BLAS
    assert calls == [n]


def test_tiled_forward_checks_its_arguments():
    w = [np.zeros((3, 4)), np.zeros((2, 3))]
    b = [np.zeros(3), np.zeros(2)]
    x = np.zeros((5, 4))
    outs = [np.zeros((5, 3)), np.zeros((5, 2))]
    with pytest.raises(ValueError, match="outs must have 2 entries"):
        _native.tiled_forward(w, b, ["sigmoid", "softmax"], x, outs[:1])
    with pytest.raises(ValueError, match=r"outs\[1\] must have shape \(5, 2\)"):
        _native.tiled_forward(w, b, ["sigmoid", "softmax"], x, [outs[0], np.zeros((4, 2))])
    with pytest.raises(ValueError, match=r"weights\[1\] has 4 inputs but the previous layer "
                                         r"has 3 outputs"):
        _native.tiled_forward([w[0], np.zeros((2, 4))], b, ["sigmoid", "softmax"], x, outs)
    with pytest.raises(TypeError, match="float64"):
        _native.tiled_forward(w, b, ["sigmoid", "softmax"], x.astype(np.float32), outs)


@pytest.mark.parametrize("variant", SIMD_VARIANTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_simd_variant_of_the_tiles_matches_numpy(native_gemm, variant, dtype):
    """Each compiled variant of the tiles this CPU can run: the x86-64 baseline (as on an
    older CPU), AVX2, AVX-512, and the AVX-512 source lowered to AVX2 (its 12-row tiles and
    64-byte panels, checked on CPUs without AVX-512)."""
    with simd_variant(variant):
        assert _native.build_info()["simd"] == variant
        _check_tiles_against_numpy(native_gemm, dtype)


@pytest.mark.parametrize("variant", SIMD_VARIANTS)
@pytest.mark.parametrize("batch", [13, 22, 57, 100])
def test_short_tiles_match_numpy_on_every_thread_count(native_gemm, epoch_threads, variant,
                                                        batch):
    """Row ranges and input columns that end in every kind of short tile (a third, two
    thirds or all of a tile's rows, for 6- and 12-row tiles), in chunks shared out over 1, 2
    and 3 threads (batches of 57 and 100 give AVX-512's 12-row tiles 2 and 3 threads),
    whichever thread takes a chunk: equal to NumPy, and bitwise equal for every thread
    count."""
    native_gemm("tiles")
    # 24 + 5, + 1, + 11, 12 + 1, + 5 inputs; more layers than threads; a 5-row last batch
    sizes, n = [29, 25, 35, 13, 17, 11], 2 * batch + 5
    ref, _ = train(sizes, "float64", "numpy", momentum=0.5, n=n, batch=batch)
    runs = []
    with simd_variant(variant):
        for threads in (1, 2, 3):
            epoch_threads(threads)
            runs.append(train(sizes, "float64", "native", momentum=0.5, n=n, batch=batch))
    for a, b in zip(params(runs[0][0]), params(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
    for model, hist in runs[1:]:
        for a, b in zip(params(model), params(runs[0][0])):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(hist.batch_loss, runs[0][1].batch_loss)


def _check_tiles_against_numpy(native_gemm, dtype):
    native_gemm("tiles")
    ref, _ = train([37, 23, 13, 7], dtype, "numpy", momentum=0.5)
    got, _ = train([37, 23, 13, 7], dtype, "native", momentum=0.5)
    tol = 1e-12 if dtype == "float64" else 2e-5
    for a, b in zip(params(got), params(ref)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def _train_in_child(seed):
    X, y = data(400, 20, 4, "float32", seed=seed)
    model = MLP([20, 16, 4], dtype="float32", backend="native", seed=seed)
    hist = model.fit(X, y, epochs=2, batch_size=40, progress=False)
    return _native.get_epoch_threads(), float(hist.epoch_loss[-1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_training_in_a_process_forked_after_training(native_gemm, epoch_threads):
    """GNU OpenMP hangs in a child forked after the parent ran a team; the kernels notice
    the fork and run such a child on one thread."""
    import multiprocessing
    native_gemm("tiles")
    epoch_threads(2)
    parent = _train_in_child(7)          # runs a 2-thread team here
    with multiprocessing.get_context("fork").Pool(1) as pool:
        threads, loss = pool.apply_async(_train_in_child, (7,)).get(timeout=120)
    assert threads == 1
    assert loss == parent[1]             # one thread or two: the same result
