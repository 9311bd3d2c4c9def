"""bf16-mixed on the float32 tiles (NativeBackend(bf16="tiles"), the choice of bf16="auto" on
CPUs without bf16 instructions): the same epoch as float32 on operands rounded to
bfloat16, tested against the NumPy specification (engine/precision.py), on any team, with
what the kernels' own epoch does not take (dropout, sample weights, a reduction)."""
import numpy as np
import pytest

from engine import MLP
from engine.backends import get_backend
from engine.optimizers import Optimizer

from helpers import SIMD_VARIANTS, bf16_spec_forward, simd_variant

_native = pytest.importorskip("engine._native")
pytestmark = pytest.mark.native

CASES = [([37, 20, 5], "sigmoid", "softmax", "cross_entropy"),
         ([37, 40, 17, 5], "relu", "sigmoid", "mse"),
         ([37, 5], "tanh", "identity", "mse"),
         ([37, 30, 12, 5], "silu", "softmax", "cross_entropy")]    # kept slopes


def _data(n=230, f=37, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, f)).astype(np.float32), rng.integers(0, c, n)


def _tiles(threads=None):
    return get_backend("native", gemm="tiles", bf16="tiles", threads=threads)


def _fit(backend, sizes, act, out, loss, precision="bf16-mixed", **kw):
    X, y = _data()
    if out == "identity":
        y = np.random.default_rng(1).normal(size=(X.shape[0], sizes[-1])).astype(np.float32)
    model = MLP(sizes, act, out, loss, dtype="float32", backend=backend, seed=3,
                precision=precision, init="glorot")
    kw = {"epochs": 2, "batch_size": 64, "learning_rate": 0.05, "progress": False, **kw}
    return model, model.fit(X, y, **kw)


@pytest.mark.parametrize("kw", [{}, {"alpha": 1e-3, "momentum": 0.5}])
@pytest.mark.parametrize("case", CASES)
def test_the_tiles_train_as_the_specification(case, kw):
    """Minibatch losses and parameters within the bounds of bf16 products summed in float32
    in another order (as tests/test_bf16.py bounds the kernels' paths; Adam, which divides
    by sqrt(v), is held to the same bits on any team below instead)."""
    nat, h_nat = _fit(_tiles(), *case, **kw)
    ref, h_ref = _fit("numpy", *case, **kw)
    np.testing.assert_allclose(h_nat.batch_loss, h_ref.batch_loss, rtol=2e-3, atol=1e-5)
    for a, b in zip(nat.weights + nat.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-4)


@pytest.mark.parametrize("extra", [{}, {"dropout": 0.3}, {"sample_weight": True},
                                   {"alpha": 1e-2, "momentum": 0.9}])
@pytest.mark.parametrize("sizes", [[37, 40, 17, 5], [37, 100, 5]])   # 100: a narrow tail
def test_one_rounded_step_is_the_specifications_and_not_float32s(sizes, extra):
    """Two whole-batch steps (the second reads the W the first rounded as it stepped): the
    tiles' update equals the specification's up to float32 sums, and float32's is farther
    off than that, so any operand left unrounded (X, W, A, D) fails here."""
    _one_rounded_step(sizes, extra)


@pytest.mark.parametrize("variant", SIMD_VARIANTS)
def test_every_simd_variant_rounds_as_it_steps(variant):
    """Each variant's workers (their panel widths and narrow tails differ) round W in the
    step the same way."""
    with simd_variant(variant):
        for sizes in ([37, 40, 17, 5], [37, 100, 5], [37, 18, 5]):
            _one_rounded_step(sizes, {"momentum": 0.9})


def _one_rounded_step(sizes, extra):
    X, y = _data()
    kw = dict(extra, epochs=2, batch_size=X.shape[0], learning_rate=0.5, progress=False)
    if kw.get("sample_weight"):
        kw["sample_weight"] = np.random.default_rng(4).uniform(0.2, 2.0, X.shape[0])
    updates = {}
    for name, backend, precision in (("tiles", _tiles(), "bf16-mixed"),
                                     ("spec", "numpy", "bf16-mixed"),
                                     ("float32", _tiles(), None)):
        model = MLP(sizes, "relu", "softmax", "cross_entropy", dtype="float32",
                    backend=backend, seed=3, precision=precision, init="glorot")
        before = model.weights + model.biases
        model.fit(X, y, **kw)
        updates[name] = [a - b for a, b in zip(model.weights + model.biases, before)]
    for nat, spec, f32 in zip(updates["tiles"], updates["spec"], updates["float32"]):
        scale = np.abs(spec).max()
        off = np.abs(nat - spec).max()
        assert off <= 1e-4 * scale, (off, scale)
        assert np.abs(f32 - spec).max() > 10 * off


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_any_team_trains_the_same_bits(optimizer):
    """1, 2 and 3 threads share the rows and the weights' chunks: the same bits."""
    runs = []
    for threads in (1, 2, 3):
        model, hist = _fit(_tiles(threads), [37, 50, 40, 5], "tanh", "softmax",
                           "cross_entropy", optimizer=optimizer, alpha=1e-3, batch_size=100)
        runs.append((model.weights + model.biases, hist.batch_loss))
    for params, losses in runs[1:]:
        np.testing.assert_array_equal(losses, runs[0][1])
        for a, b in zip(params, runs[0][0]):
            np.testing.assert_array_equal(a, b)


def test_an_identity_reduction_leaves_the_bf16_epoch_unchanged():
    """The stored-gradient mode (distributed training's) steps and rounds the same way."""
    X, y = _data(103, 5, 3)
    results = []
    for reduce in (None, lambda i, loss, weight, grads: (loss, weight)):
        model = MLP([5, 40, 3], "tanh", backend=_tiles(), dtype="float32", seed=1,
                    precision="bf16-mixed")
        state = model.state
        opt = Optimizer("adam")
        state.optimizer_state(opt)
        losses = np.empty(11)
        model.backend.train_epoch(state.net, _native.bf16_round(X), y, np.arange(103), 10,
                                  opt.rule(0.01, 0), 0.1, state.workspace(10), losses,
                                  reduce=reduce)
        results.append((model.weights, losses.copy()))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5)


def test_where_bf16_epochs_run():
    sizes, wide = [784, 100, 10], [784, 4096, 10]
    hardware = _native.bf16_info()["path"] != "portable"
    auto = get_backend("native", gemm="tiles", bf16="auto")     # the tiles take the network
    assert auto.bf16_epoch_path(sizes) == ("kernels" if hardware else "tiles")
    assert auto.bf16_epoch_path(sizes, plain=False) == "tiles"       # dropout, weights
    assert auto.bf16_epoch_path(sizes, diagnostics=True) == "blas"
    blas = get_backend("native", gemm="blas")
    # without bf16 instructions the portable kernel's epoch is no one's default: it took
    # 1.33x float32's time where BLAS on rounded operands took 1.05x (Zen 3)
    assert blas.bf16_epoch_path(wide) == ("kernels" if hardware else "blas")
    assert blas.bf16_epoch_path(wide, plain=False) == "blas"
    kernels = get_backend("native", gemm="tiles", bf16="kernels")
    assert kernels.bf16_epoch_path(sizes) == "kernels"
    assert kernels.bf16_epoch_path(sizes, plain=False) == "blas"
    assert _tiles().bf16_epoch_path(wide) == "tiles"
    with pytest.raises(ValueError, match="bf16 must be one of"):
        get_backend("native", bf16="amx")


def test_a_bf16_plan_takes_the_tiles_only_by_name():
    from helpers import plan_arrays
    arrays = plan_arrays([4, 3, 2], 2, np.float32)
    assert _native.EpochPlan(**arrays, gemm="tiles", bf16=True).gemm == "tiles"
    assert _native.EpochPlan(**arrays, gemm="auto", bf16=True).gemm == "blas"


def test_a_fit_on_the_tiles_scores_its_epochs_with_bf16_products():
    """The epochs' scores read the fit's rounded copy of X (the same bits as from X itself)
    through the bf16 forward pass, as on the kernels' epoch."""
    from engine import evaluation
    X, y = _data()
    model = MLP([37, 20, 5], "sigmoid", "softmax", "cross_entropy", dtype="float32",
                backend=_tiles(), seed=3, precision="bf16-mixed")
    hist = model.fit(X, y, epochs=2, batch_size=50, learning_rate=0.1, progress=False)
    be = model.backend
    loss, acc = evaluation.evaluate(model, be.asarray(X), be.asarray(y), bf16=True)
    assert (hist.epoch_loss[-1], hist.epoch_accuracy[-1]) == (loss, acc)
    assert model.evaluate(X, y)["loss"] != loss              # float32's own numbers


@pytest.mark.parametrize("variant", SIMD_VARIANTS)
@pytest.mark.parametrize("sizes,acts", [([37, 20, 5], ["sigmoid", "softmax"]),
                                        ([37, 40, 17, 5], ["relu", "tanh", "sigmoid"]),
                                        ([37, 100, 5], ["silu", "identity"])])
def test_the_tiles_forward_pass_in_bf16_is_the_rounded_float32_one(sizes, acts, variant):
    """tiled_forward(bf16=True), a CPU without bf16 instructions' scores of a bf16-mixed
    fit: the bits of the float32 tiles' pass layer by layer on W and each layer's input
    rounded (outputs kept float32), in every SIMD variant that runs here, on 1, 2 and 3
    threads, for row counts around its 48-row blocks; and the NumPy specification within
    the products' bounds."""
    rng = np.random.default_rng(5)
    W = [(rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)
         for i, o in zip(sizes, sizes[1:])]
    B = [rng.standard_normal(o).astype(np.float32) for o in sizes[1:]]
    saved = _native.epoch_threads_setting()
    try:
        with simd_variant(variant):
            for n in (1, 47, 49, 700):
                x = rng.random((n, sizes[0])).astype(np.float32)
                want, z = [], x
                for w, b, act in zip(W, B, acts):
                    out = np.empty((n, w.shape[0]), np.float32)
                    _native.tiled_forward([_native.bf16_round(w)], [b], [act],
                                          _native.bf16_round(z), [out])
                    want.append(out)
                    z = out
                for threads in (1, 2, 3):
                    _native.set_epoch_threads(threads)
                    got = [np.full((n, o), np.nan, np.float32) for o in sizes[1:]]
                    _native.tiled_forward(W, B, acts, x, got, bf16=True)
                    for g, w_ in zip(got, want):
                        np.testing.assert_array_equal(g, w_)
                for g, r in zip(got, bf16_spec_forward(x, W, B, acts)):
                    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    finally:
        _native.set_epoch_threads(saved)
    with pytest.raises(ValueError, match="bf16 needs float32"):
        _native.tiled_forward([w.astype(np.float64) for w in W],
                              [b.astype(np.float64) for b in B], acts,
                              np.ones((3, sizes[0])), [np.empty((3, o)) for o in sizes[1:]],
                              bf16=True)


def test_without_bf16_instructions_a_fit_scores_its_epochs_on_the_tiles(monkeypatch):
    """On the portable path the scores between epochs (training rows and validation rows)
    go through the tiles on rounded operands, not the portable kernel, and are the
    specification's within the products' bounds."""
    from engine import evaluation
    from engine.backends import native_backend
    calls = []
    tiled = _native.tiled_forward

    def counting(*args, **kw):
        calls.append((args[3].shape[0], kw.get("bf16", False)))
        return tiled(*args, **kw)
    monkeypatch.setattr(native_backend._native, "tiled_forward", counting)
    monkeypatch.setattr(native_backend, "_bf16_portable", lambda: True)
    n = native_backend.TILED_FORWARD_MIN_ROWS + 30
    X, y = _data(n)
    model = MLP([37, 20, 5], "sigmoid", "softmax", "cross_entropy", dtype="float32",
                backend=_tiles(), seed=3, precision="bf16-mixed")
    hist = model.fit(X, y, epochs=2, batch_size=50, learning_rate=0.1, progress=False,
                     validation_data=(X[:n - 7], y[:n - 7]))
    assert calls == [(n, True), (n - 7, True)] * 2
    be = model.backend
    loss, acc = evaluation.evaluate(model, be.asarray(X), be.asarray(y), bf16=True)
    assert (hist.epoch_loss[-1], hist.epoch_accuracy[-1]) == (loss, acc)
    spec = MLP([37, 20, 5], "sigmoid", "softmax", "cross_entropy", dtype="float32",
               backend="numpy", precision="bf16-mixed", _weights=(model.weights, model.biases))
    spec_loss, _ = evaluation.evaluate(spec, X, y, bf16=True)
    assert abs(spec_loss - loss) < 1e-4
