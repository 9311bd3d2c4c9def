"""bf16-mixed precision: the NumPy specification (engine/precision.py) and every native
path against it (portable, AVX512-BF16, AMX: natively where the CPU runs it, else on its
instructions emulated in software), the fused bf16 epoch against the specification's
epoch, and the model API. The native models here train on the kernels' own epoch
(bf16="kernels": the path forced is the one that runs); tests/test_bf16_tiles.py tests
bf16-mixed on the float32 tiles."""
import functools

import numpy as np
import pytest

from engine import MLP
from engine.backends import get_backend
from engine.precision import round_bf16

from helpers import AVAILABLE, SIMD_VARIANTS, bf16_spec_forward, simd_variant

_native = pytest.importorskip("engine._native", reason="the native extension is not built")
pytestmark = pytest.mark.native

INFO = _native.bf16_info()
KERNELS = get_backend("native", bf16="kernels")


def _paths():
    """Every path: natively where the CPU runs it, else on its instructions emulated in
    software (the kernel's source, packing and epoch layout; not its speed), skipped only
    where neither runs (the emulated vdpbf16ps needs AVX2)."""
    _native.emulate_bf16_paths(True)
    emulated = _native.bf16_info()["paths"]
    _native.emulate_bf16_paths(False)
    for name, (runs, why) in INFO["paths"].items():
        yield pytest.param(name, id=name if runs else f"{name}-emulated",
                           marks=pytest.mark.skipif(not emulated[name][0], reason=why))


PATHS = list(_paths())


@pytest.fixture(autouse=True)
def _emulation(request):
    """A test given a path this CPU lacks runs it emulated (see _paths)."""
    path = getattr(request.node, "callspec", None) and request.node.callspec.params.get("path")
    emulate = path in INFO["paths"] and not INFO["paths"][path][0]
    if emulate:
        _native.emulate_bf16_paths(True)
    yield
    if emulate:
        _native.emulate_bf16_paths(False)


def test_rounding_is_nearest_even_on_the_bits():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)                         # bf16's spacing just above 1
    cases = np.array([1.0, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -8 + 2.0 ** -20,
                      -1 - 2.0 ** -8, 3.4e38, np.inf, -np.inf, 0.0, -0.0, 1e-40],
                     np.float32)
    want = [one, one, one + 2 * ulp, one + ulp, -one, np.inf, np.inf, -np.inf, 0.0, -0.0,
            np.float32(1e-40)]
    got = round_bf16(cases)
    assert np.isnan(round_bf16(np.array([np.nan], np.float32)))[0]
    np.testing.assert_array_equal(got[:-1], np.array(want[:-1], np.float32))
    assert got[-1] == round_bf16(np.array([1e-40], np.float32))[0]      # subnormals kept
    assert np.array_equal(got.view(np.uint32) & 0xFFFF, np.zeros(len(cases), np.uint32))


def test_native_rounding_is_the_specification_bit_for_bit():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(50000) * 10.0 ** rng.integers(-38, 38, 50000)).astype(np.float32)
    x[:4] = [np.nan, np.inf, -np.inf, -0.0]
    assert np.array_equal(_native.bf16_round(x).view(np.uint32), round_bf16(x).view(np.uint32))


@pytest.mark.parametrize("f", [1, 31, 33, 784])
def test_the_packed_bf16_copy_of_x_holds_the_rounded_bits_and_zero_padding(f):
    rng = np.random.default_rng(f)
    x = (rng.standard_normal((37, f)) * 10.0 ** rng.integers(-38, 38, (37, f))).astype(
        np.float32)
    x.flat[:3] = [np.nan, np.inf, -0.0][:x.size]
    packed = _native.bf16_pack_rows(x)
    width = -(-f // 32) * 32
    assert packed.shape == (37, width) and packed.dtype == np.uint16
    assert packed.ctypes.data % 64 == 0
    np.testing.assert_array_equal(packed[:, :f], (round_bf16(x).view(np.uint32) >> 16))
    assert not packed[:, f:].any()


def _bound(a, b, k):
    """|error| allowed: float32 sums of k exact products, in any order."""
    mag = np.abs(round_bf16(a)).astype(np.float64) @ np.abs(round_bf16(b)).astype(np.float64)
    return 2 * k * np.finfo(np.float32).eps * mag + 1e-30


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 5), (33, 65, 31), (100, 784, 100),
                                   (64, 32, 48)])
@pytest.mark.parametrize("trans", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_bf16_matches_the_specification(path, shape, trans):
    m, k, n = shape
    ta, tb = trans
    rng = np.random.default_rng(m * 31 + k)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    want = np.empty((m, n), np.float32)
    get_backend("numpy").gemm_bf16(a, b, want, ta, tb)
    got = np.full((m, n), np.nan, np.float32)
    _native.gemm_bf16(a, b, got, ta, tb, path=path)
    A, B = (a.T if ta else a), (b.T if tb else b)
    assert np.all(np.abs(got.astype(np.float64) - want) <= _bound(A, B, k))


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 5), (13, 600, 29), (100, 784, 100),
                                   (9, 1000, 35)])
def test_the_portable_kernel_gives_the_same_bits_in_every_simd_variant(shape):
    """The portable path widens bf16 to float32 and sums with FMAs; products of two bf16
    are exact in float32 and every variant adds them in the same order (k ascending, a
    partial sum per 512-wide stretch; the last n % 16 <= 4 columns in 16 lanes of pairs
    each), so the baseline, AVX2 and AVX-512 builds agree bit for bit, and with themselves
    through every transpose."""
    m, k, n = shape
    rng = np.random.default_rng(k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    outs = []
    for variant in SIMD_VARIANTS:
        with simd_variant(variant):
            for ta, tb in [(False, False), (True, True)]:
                got = np.full((m, n), np.nan, np.float32)
                _native.gemm_bf16(a.T.copy() if ta else a, b.T.copy() if tb else b, got,
                                  ta, tb, path="portable")
                outs.append((variant, ta, got))
    for variant, ta, got in outs[1:]:
        np.testing.assert_array_equal(got, outs[0][2], err_msg=f"{variant} trans={ta}")
    assert np.all(np.abs(got.astype(np.float64) - round_bf16(a).astype(np.float64)
                         @ round_bf16(b)) <= _bound(a, b, k))


def test_gemm_bf16_refuses_what_it_cannot_do():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="float32"):
        _native.gemm_bf16(a.astype(np.float64), a.T.copy(), np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="op\\(a\\) is 3 x 4"):
        _native.gemm_bf16(a, a, np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="share memory"):
        sq = np.ones((4, 4), np.float32)
        _native.gemm_bf16(sq, sq.copy(), sq)
    with pytest.raises(ValueError, match="path must be one of"):
        _native.gemm_bf16(a, a.T.copy(), np.empty((3, 3), np.float32), path="fast")
    for name, (runs, why) in INFO["paths"].items():
        if not runs:
            with pytest.raises(ValueError, match="does not run here"):
                _native.gemm_bf16(a, a.T.copy(), np.empty((3, 3), np.float32), path=name)


def test_emulated_paths_run_only_where_asked():
    """Emulation lets the paths this CPU lacks run where a call names them or they are
    forced, says so, has no peak to report and is never the default; off again, they are
    refused and a path forced on in emulation is dropped."""
    lacking = [name for name, (runs, _) in INFO["paths"].items() if not runs]
    if not lacking:
        pytest.skip("this CPU runs every bf16 path natively: nothing to emulate")
    a = np.ones((3, 4), np.float32)
    _native.emulate_bf16_paths(True)
    try:
        info = _native.bf16_info()
        assert info["path"] == INFO["path"]
        for name in lacking:
            runs, why = info["paths"][name]
            assert runs and why == f"emulated in software for the tests ({INFO['paths'][name][1]})"
            assert _native.bf16_peak_gflops(name) == 0.0
        _native.force_bf16_path(lacking[-1])
        assert _native.bf16_info()["path"] == lacking[-1]
        if "avx512-bf16" in lacking:                  # no vdpbf16ps to time
            assert _native.bf16_dot_vs_fma() == 0.0
    finally:
        _native.emulate_bf16_paths(False)
    after = _native.bf16_info()          # (a slow vdpbf16ps's reason quotes a fresh timing)
    assert after["path"] == INFO["path"]
    assert {name: runs for name, (runs, _) in after["paths"].items()} == \
        {name: runs for name, (runs, _) in INFO["paths"].items()}
    assert all(after["paths"][name] == INFO["paths"][name] for name in lacking)
    with pytest.raises(ValueError, match="does not run here"):
        _native.gemm_bf16(a, a.T.copy(), np.empty((3, 3), np.float32), path=lacking[-1])


def test_info_names_the_path_and_why():
    assert INFO["path"] in INFO["paths"] and INFO["paths"][INFO["path"]][0]
    assert INFO["paths"]["portable"] == (True, "runs on any CPU")
    order = ["portable", "avx512-bf16", "amx"]
    best = max(i for i, name in enumerate(order) if INFO["paths"][name][0])
    if order[best] == "avx512-bf16" and "not faster than float32" in INFO["paths"][
            "avx512-bf16"][1]:
        best = 0                     # a vdpbf16ps slower than FMAs: portable (below)
    assert INFO["path"] == order[best]                   # the best that runs


@pytest.mark.skipif(not INFO["paths"]["avx512-bf16"][0],
                    reason=INFO["paths"]["avx512-bf16"][1])
def test_the_avx512_path_is_chosen_only_where_its_dot_product_beats_fmas():
    """Measured, not assumed: on a CPU with AVX512-BF16 and no AMX, vdpbf16ps at less than
    1.2x the float32 FMA rate (Sapphire Rapids runs it at half) leaves the portable path in
    charge, the reason saying so."""
    ratio = _native.bf16_dot_vs_fma()
    assert 0.05 < ratio < 20
    if not INFO["paths"]["amx"][0]:
        slow = "not faster than float32" in INFO["paths"]["avx512-bf16"][1]
        assert INFO["path"] == ("portable" if slow else "avx512-bf16")


def _training_data(n=230, f=37, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, f)).astype(np.float32), rng.integers(0, c, n)


CASES = [([37, 20, 5], "sigmoid", "softmax", "cross_entropy"),
         ([37, 40, 17, 5], "relu", "sigmoid", "mse"),
         ([37, 5], "tanh", "identity", "mse"),
         ([37, 30, 12, 5], "silu", "softmax", "cross_entropy")]    # kept slopes


def _fit_bf16(backend, path, sizes, act, out, loss, generic=False, batch_size=64, **kw):
    """A bf16-mixed model trained 2 epochs (short last minibatches) on `path`; generic:
    through the per-minibatch loop over gemm_bf16 instead of the fused C epoch."""
    from engine.backends import native_backend
    from engine.backends.base import Backend
    X, y = _training_data()
    if out == "identity":
        y = np.random.default_rng(1).normal(size=(X.shape[0], sizes[-1])).astype(np.float32)
    saved = _native.bf16_info()["path"]
    fused = native_backend.NativeBackend._bf16_epoch
    _native.force_bf16_path(path)
    if generic:
        native_backend.NativeBackend._bf16_epoch = \
            lambda self, *args: Backend.train_epoch(self, *args)
    try:
        model = MLP(sizes, act, out, loss, dtype="float32",
                    backend=KERNELS if backend == "native" else backend, seed=3,
                    precision="bf16-mixed", init="glorot")
        hist = model.fit(X, y, epochs=2, batch_size=batch_size, learning_rate=0.05,
                         progress=False, **kw)
    finally:
        native_backend.NativeBackend._bf16_epoch = fused
        _native.force_bf16_path(None if saved == INFO["path"] else saved)
    return model, hist


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("optimizer,alpha", [("sgd", 0.0), ("sgd", 1e-3), ("adam", 1e-3)])
@pytest.mark.parametrize("sizes,act,out,loss", CASES)
def test_the_fused_epoch_is_the_per_minibatch_loop_bit_for_bit(path, optimizer, alpha, sizes,
                                                               act, out, loss):
    """The fused C epoch makes the same products and float32 steps as the generic loop over
    the same kernels: every optimizer, L2, one and two hidden layers, labels and targets."""
    kw = dict(optimizer=optimizer, alpha=alpha, momentum=0.9 if optimizer == "sgd" else 0.0)
    (a, ha), (b, hb) = (_fit_bf16("native", path, sizes, act, out, loss, generic=g, **kw)
                        for g in (False, True))
    np.testing.assert_array_equal(ha.batch_loss, hb.batch_loss)
    for x, z in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(x, z)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("optimizer,alpha", [("sgd", 1e-3), ("adam", 1e-3)])
@pytest.mark.parametrize("sizes,act,out,loss", [([37, 40, 20, 5], "relu", "softmax",
                                                  "cross_entropy"),
                                                 ([37, 50, 3], "tanh", "identity", "mse")])
def test_the_fused_epoch_gives_the_same_bits_on_any_team(path, optimizer, alpha, sizes, act,
                                                         out, loss):
    """The team shares a minibatch's rows, then every layer's units (by pairs; by 16 on AMX:
    shares that split a cache line of the packed W^T, and threads left without a share that
    wait at the barriers): 1, 2 and 3 threads train the same weights as the per-minibatch
    loop, bit for bit (minibatches of 100, 100 and 30)."""
    kw = dict(optimizer=optimizer, alpha=alpha, batch_size=100,
              momentum=0.9 if optimizer == "sgd" else 0.0)
    _, ref = _fit_bf16("native", path, sizes, act, out, loss, generic=True, **kw)
    want = _fit_bf16("native", path, sizes, act, out, loss, generic=True, **kw)[0]
    epoch = _native.bf16_epoch
    try:
        for threads in (1, 2, 3):         # a team of this size, small as the network is
            _native.bf16_epoch = functools.partial(epoch, threads=threads)
            model, hist = _fit_bf16("native", path, sizes, act, out, loss, **kw)
            np.testing.assert_array_equal(hist.batch_loss, ref.batch_loss)
            for x, z in zip(model.weights + model.biases, want.weights + want.biases):
                np.testing.assert_array_equal(x, z)
    finally:
        _native.bf16_epoch = epoch


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sizes,act,out,loss", CASES)
def test_native_bf16_training_matches_the_specification(path, sizes, act, out, loss):
    """Every path against the NumPy specification, SGD with L2 (Adam divides by sqrt(v), so
    a parameter whose gradient is ~0 steps by up to lr on any float32 difference: its
    kernels are checked bit for bit above and against NumPy by the float32 tests)."""
    _trains_as_the_specification(path, (sizes, act, out, loss), alpha=1e-3, momentum=0.5)


def _trains_as_the_specification(path, case, **kw):
    """Native and NumPy bf16-mixed fits of `case` on `path`: the same minibatch losses and
    parameters within the bounds of bf16 products summed in float32 in another order."""
    nat, h_nat = _fit_bf16("native", path, *case, **kw)
    ref, h_ref = _fit_bf16("numpy", path, *case, **kw)
    np.testing.assert_allclose(h_nat.batch_loss, h_ref.batch_loss, rtol=2e-3, atol=1e-5)
    for a, b in zip(nat.weights + nat.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-4)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("extra", [{"dropout": 0.3}, {"sample_weight": True},
                                   {"momentum": 0.9, "alpha": 1e-3}])
def test_what_the_fused_epoch_does_not_take_trains_as_the_specification(path, extra):
    """Dropout and sample weights train on the
    BLAS-path epoch with every product's operands rounded to bf16: the NumPy
    specification's numbers within the products' bounds."""
    kw = dict(extra)
    if kw.get("sample_weight"):
        kw["sample_weight"] = np.random.default_rng(4).uniform(0.2, 2.0, 230)
    _trains_as_the_specification(path, CASES[1], **kw)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("extra", [{"dropout": 0.3}, {"sample_weight": True}, {}])
def test_one_rounded_step_is_the_specifications_and_not_float32s(path, extra):
    """One whole-batch step: the native update equals the specification's up to float32
    sums (far tighter than the bf16 rounding), and float32's update is farther off than
    that, so an operand left unrounded would fail here."""
    X, y = _training_data()
    kw = dict(extra, epochs=1, batch_size=X.shape[0], learning_rate=0.5, progress=False)
    if kw.get("sample_weight"):
        kw["sample_weight"] = np.random.default_rng(4).uniform(0.2, 2.0, X.shape[0])
    saved = _native.bf16_info()["path"]
    _native.force_bf16_path(path)
    try:
        updates = {}
        for backend, precision in (("native", "bf16-mixed"), ("numpy", "bf16-mixed"),
                                   ("native", None)):
            model = MLP([37, 40, 17, 5], "relu", "softmax", "cross_entropy", dtype="float32",
                        backend=KERNELS if backend == "native" else backend, seed=3,
                        precision=precision, init="glorot")
            before = model.weights + model.biases
            model.fit(X, y, **kw)
            updates[backend, precision] = [a - b for a, b in
                                           zip(model.weights + model.biases, before)]
    finally:
        _native.force_bf16_path(None if saved == INFO["path"] else saved)
    for nat, spec, f32 in zip(updates["native", "bf16-mixed"], updates["numpy", "bf16-mixed"],
                              updates["native", None]):
        scale = np.abs(spec).max()
        off = np.abs(nat - spec).max()
        assert off <= 1e-4 * scale, (off, scale)
        assert np.abs(f32 - spec).max() > 10 * off


def test_a_bf16_plan_rounds_float32_only():
    from helpers import plan_arrays
    with pytest.raises(TypeError, match="bf16 rounds float32 operands"):
        _native.EpochPlan(**plan_arrays([4, 3, 2], 2), bf16=True)
    assert _native.EpochPlan(**plan_arrays([4, 3, 2], 2, np.float32), bf16=True).bf16


def test_the_specification_differs_from_float32_as_bf16_does():
    """bf16-mixed is not float32 under another name: one step's weights differ from the
    float32 model's by about bf16's relative precision (2^-8), not more."""
    X, y = _training_data()
    kw = dict(epochs=1, batch_size=230, learning_rate=0.5, progress=False, shuffle=False)
    a = MLP([37, 20, 5], dtype="float32", backend="numpy", seed=2, precision="bf16-mixed")
    b = MLP([37, 20, 5], dtype="float32", backend="numpy", seed=2)
    w0 = b.weights[0].copy()
    a.fit(X, y, **kw)
    b.fit(X, y, **kw)
    step_a, step_b = a.weights[0] - w0, b.weights[0] - w0
    rel = np.abs(step_a - step_b).max() / np.abs(step_b).max()
    assert 1e-5 < rel < 2 ** -5


@pytest.mark.parametrize("backend", [b for b in AVAILABLE if b in ("numpy", "native")])
def test_bf16_models_save_float32_and_load_as_bf16(backend, tmp_path):
    X, y = _training_data()
    model = MLP([37, 8, 5], dtype="float32", backend=backend, precision="bf16-mixed")
    model.fit(X, y, epochs=1, progress=False)
    model.save(tmp_path / "m.npz")
    loaded = MLP.load(tmp_path / "m.npz", backend=backend)
    assert loaded.precision == "bf16-mixed" and loaded.weights[0].dtype == np.float32
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert "precision='bf16-mixed'" in repr(loaded)


def test_precision_is_checked():
    with pytest.raises(ValueError, match="needs dtype='float32'"):
        MLP([3, 2], dtype="float64", precision="bf16-mixed", backend="numpy")
    with pytest.raises(ValueError, match="precision must be one of"):
        MLP([3, 2], precision="fp8", backend="numpy")
    with pytest.raises(ValueError, match="does not match dtype"):
        MLP([3, 2], dtype="float32", precision="float64", backend="numpy")
    assert MLP([3, 2], dtype="float64", backend="numpy").precision == "float64"
    if "cuda" in AVAILABLE:
        with pytest.raises(ValueError, match="no bf16 products"):
            MLP([3, 2], precision="bf16-mixed", backend="cuda")


@pytest.mark.parametrize("backend", [b for b in AVAILABLE if b in ("numpy", "native")])
def test_features_beyond_bf16s_range_are_refused_before_training(backend):
    """A finite float32 feature that rounds to bf16's inf would make the loss NaN and read
    as a learning rate too large: the fit says what it is instead."""
    from engine.precision import BF16_OVERFLOW
    edge = np.float32(BF16_OVERFLOW)
    below = np.nextafter(edge, np.float32(0))
    assert np.isinf(round_bf16(edge)) and np.isfinite(round_bf16(below))
    X, y = _training_data(n=60)
    m = MLP([X.shape[1], 4, 5], precision="bf16-mixed", backend=backend, seed=0)
    before = [w.copy() for w in m.weights]
    for sign in (1, -1):
        bad = X.copy()
        bad[7, 2] = sign * edge
        with pytest.raises(ValueError, match=r"X holds values beyond bfloat16's range"):
            m.fit(bad, y, epochs=1, progress=False)
        with pytest.raises(ValueError, match=r"validation_data\[0\] holds values beyond"):
            m.fit(X, y, epochs=1, progress=False, validation_data=(bad, y))
    assert all(np.array_equal(a, b) for a, b in zip(m.weights, before))
    ok = X.copy()
    ok[7, 2] = -below
    assert np.array_equal(m.check_xy(ok, y)[0], ok)
    float32 = MLP([X.shape[1], 4, 5], backend=backend)
    assert float32.check_xy(X * 0 + edge, y)[0].max() == edge


def test_sklearn_estimators_and_the_cli_take_the_precision(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from engine.apps.cli import main
    from engine.sklearn import MLPClassifier
    X, y = _training_data(n=120)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                        precision="bf16-mixed", backend="native").fit(X.astype(np.float64), y)
    assert est._net.precision == "bf16-mixed" and est.coefs_[0].dtype == np.float32
    with pytest.raises(ValueError, match="precision"):
        MLPClassifier(precision="fp8").fit(X, y)
    assert main(["train", "--data", "sample", "--layers", "784,8,10", "--epochs", "1",
                 "--precision", "bf16-mixed", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "| bf16-mixed |" in capsys.readouterr().out
    assert MLP.load(tmp_path / "model.npz").precision == "bf16-mixed"


@pytest.mark.parametrize("path", PATHS)
def test_the_epochs_team_is_the_one_asked_for_and_a_backends_threads_cap_it(path, monkeypatch):
    """A team only for minibatches with enough multiply-adds (the AMX path's threshold is
    16M, the others' 1M), of the process setting's size, capped by most_threads (a
    backend's `threads`); a team asked for by name is taken as it is."""
    saved = _native.epoch_threads_setting()
    big = [784, 1024, 1024, 10]                      # 256 x 1.8M multiply-adds: a team
    try:
        _native.set_epoch_threads(3)
        assert _native.bf16_epoch_team([37, 5], 10, path) == 1
        assert _native.bf16_epoch_team(big, 256, path) == 3
        assert _native.bf16_epoch_team(big, 256, path, most_threads=2) == 2
        assert _native.bf16_epoch_team(big, 256, path, most_threads=5) == 3
        assert _native.bf16_epoch_team([37, 5], 10, path, threads=2, most_threads=1) == 2
    finally:
        _native.set_epoch_threads(saved)
    with pytest.raises(ValueError, match="most_threads must be >= 0"):
        _native.bf16_epoch_team(big, 256, path, most_threads=-1)
    with pytest.raises(ValueError, match="positive layer sizes"):
        _native.bf16_epoch_team([784, 0, 10], 256, path)
    # the backend hands its `threads` to the epoch as that cap
    from engine.backends import native_backend
    asked = []
    real = native_backend._native.bf16_epoch

    def spy(*args, **kwargs):
        asked.append(kwargs.get("most_threads"))
        return real(*args, **kwargs)

    monkeypatch.setattr(native_backend._native, "bf16_epoch", spy)
    X, y = _training_data(n=40)
    for threads, cap in ((1, 1), (None, 0)):
        be = get_backend("native", bf16="kernels", threads=threads)
        MLP([37, 8, 5], precision="bf16-mixed", backend=be, seed=0).fit(
            X, y, epochs=1, batch_size=20, progress=False)
        assert asked.pop() == cap


@pytest.mark.parametrize("path", PATHS)
def test_products_split_between_threads_do_not_depend_on_the_thread_count(path):
    """Products past the split size (64M multiply-adds) are cut between the epoch's threads by
    column blocks, each computed whole by one thread: the same bits on 1, 2 or 3 threads."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((256, 1024)).astype(np.float32)
    b = rng.standard_normal((1040, 1024)).astype(np.float32)
    saved = _native.epoch_threads_setting()
    results = []
    try:
        for threads in (1, 2, 3):
            _native.set_epoch_threads(threads)
            out = np.empty((256, 1040), np.float32)
            _native.gemm_bf16(a, b, out, False, True, path=path)
            results.append(out)
    finally:
        _native.set_epoch_threads(saved)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sizes,acts", [([37, 20, 5], ["sigmoid", "softmax"]),
                                        ([37, 40, 17, 5], ["relu", "tanh", "sigmoid"])])
def test_the_bf16_forward_pass_is_the_per_layer_one_on_any_team(path, sizes, acts):
    """bf16_forward (an evaluation's pass in a bf16-mixed fit: weights packed once, rows in
    blocks through every layer) gives the bits of one gemm_bf16 + bias_act_ per layer, on
    1, 2 and 3 threads, for row counts around its 64-row blocks and 16-row tiles; and it is
    the NumPy specification within the products' bounds."""
    rng = np.random.default_rng(7)
    W = [(rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)
         for i, o in zip(sizes, sizes[1:])]
    B = [rng.standard_normal(o).astype(np.float32) for o in sizes[1:]]
    saved = _native.epoch_threads_setting()
    _native.force_bf16_path(path)
    try:
        for n in (1, 15, 64, 65, 700):
            x = rng.random((n, sizes[0])).astype(np.float32)
            want = [np.empty((n, o), np.float32) for o in sizes[1:]]
            z = x
            for w, b, act, out in zip(W, B, acts, want):
                _native.gemm_bf16(z, w, out, False, True, path=path)
                _native.bias_act_(out, b, act)
                z = out
            packed = _native.bf16_pack_rows(x)      # the same rows, already bf16
            for threads in (1, 2, 3):
                _native.set_epoch_threads(threads)
                for rows in (x, packed):
                    got = [np.empty((n, o), np.float32) for o in sizes[1:]]
                    _native.bf16_forward(W, B, acts, rows, got, path=path)
                    for g, w_ in zip(got, want):
                        np.testing.assert_array_equal(g, w_)
            ref = bf16_spec_forward(x, W, B, acts)
            np.testing.assert_allclose(got[-1], ref[-1], rtol=1e-4, atol=1e-5)
    finally:
        _native.set_epoch_threads(saved)
        _native.force_bf16_path(None if INFO["path"] == path else INFO["path"])


def test_the_bf16_forward_pass_checks_its_arguments():
    W, B = [np.ones((3, 4), np.float32)], [np.zeros(3, np.float32)]
    x, out = np.ones((5, 4), np.float32), [np.empty((5, 3), np.float32)]
    with pytest.raises(ValueError, match="x"):
        _native.bf16_forward(W, B, ["sigmoid"], np.ones((5, 6), np.float32), out)
    with pytest.raises(ValueError, match="path"):
        _native.bf16_forward(W, B, ["sigmoid"], x, out, path="fp8")
    with pytest.raises(ValueError, match="x"):            # packed rows are 32 wide here
        _native.bf16_forward(W, B, ["sigmoid"], np.zeros((5, 4), np.uint16), out)
    buf = np.zeros(40, np.float32)                 # the output overlaps the input rows
    with pytest.raises(ValueError, match="share memory"):
        _native.bf16_forward(W, B, ["sigmoid"], buf[:20].reshape(5, 4),
                             [buf[5:20].reshape(5, 3)])


@pytest.mark.parametrize("path", PATHS)
def test_each_fit_packs_the_rows_it_is_given(path):
    """The packed bf16 copy of X is made again for every fit: a new array that reuses a freed
    one's address (and id), or the same array changed in place, trains on its own numbers
    (a copy kept by id() once trained the next epoch's rows on the last one's)."""
    X, y = _training_data()
    other = np.random.default_rng(9).random(X.shape).astype(np.float32)
    kw = dict(epochs=1, batch_size=50, learning_rate=0.1, progress=False, shuffle=False)
    saved = _native.bf16_info()["path"]
    _native.force_bf16_path(path)
    try:
        def model():
            return MLP([37, 20, 5], "sigmoid", "softmax", "cross_entropy", dtype="float32",
                       backend=KERNELS, seed=3, precision="bf16-mixed", init="glorot")
        want, kept = model(), (X.copy(), other.copy())     # both alive: two addresses
        for data in kept:
            want.fit(data, y, **kw)
        in_place, fresh = model(), model()
        rows = X.copy()
        in_place.fit(rows, y, **kw)
        rows[...] = other
        in_place.fit(rows, y, **kw)
        for data in (X, other):         # each copy freed before the next is made
            fresh.fit(np.array(data), y, **kw)
        for m in (in_place, fresh):
            for a, b in zip(m.weights + m.biases, want.weights + want.biases):
                np.testing.assert_array_equal(a, b)
    finally:
        _native.force_bf16_path(None if saved == INFO["path"] else saved)


def test_a_prepared_plan_is_kept_for_the_same_objects_only():
    from engine.backends.base import Workspace
    ws = Workspace(1, None, None, [], [], [], [])
    weights = [np.zeros(2)]
    built = []
    assert ws.prepared(("tiles", 2, weights), lambda: built.append(1) or "a") == "a"
    assert ws.prepared(("tiles", 2, weights), lambda: built.append(2) or "b") == "a"
    assert ws.prepared(("tiles", 2, [np.zeros(2)]), lambda: built.append(3) or "c") == "c"
    assert ws.prepared(("tiles", 3, [np.zeros(2)]), lambda: built.append(4) or "d") == "d"
    assert built == [1, 3, 4]


@pytest.mark.parametrize("path", PATHS)
def test_a_bf16_fit_scores_its_epochs_with_bf16_products(path, monkeypatch):
    """The history's scores come from the forward pass with bf16 products (reading the
    fit's packed rows: the same bits as from float32 rows), not from float32's evaluate;
    the validation rows are packed once per fit too (not once per epoch), where a bf16
    kernel reads them."""
    from engine import evaluation
    X, y = _training_data()
    Xv, yv = X[::3].copy(), y[::3].copy()
    saved = _native.bf16_info()["path"]
    _native.force_bf16_path(path)
    try:
        model = MLP([37, 20, 5], "sigmoid", "softmax", "cross_entropy", dtype="float32",
                    backend=KERNELS, seed=3, precision="bf16-mixed")
        be = model.backend
        packed = []
        for name in ("bf16_pack_rows", "bf16_round"):     # bf16 rows or rounded floats
            monkeypatch.setattr(_native, name, lambda rows, f=getattr(_native, name):
                                packed.append(rows.shape[0]) or f(rows))
        hist = model.fit(X, y, epochs=3, batch_size=50, learning_rate=0.1, progress=False,
                         validation_data=(Xv, yv))
        monkeypatch.undo()
        loss, acc = evaluation.evaluate(model, be.asarray(X), be.asarray(y), bf16=True)
        vloss, vacc = evaluation.evaluate(model, be.asarray(Xv), be.asarray(yv), bf16=True)
    finally:
        _native.force_bf16_path(None if saved == INFO["path"] else saved)
    assert (hist.epoch_loss[-1], hist.epoch_accuracy[-1]) == (loss, acc)
    assert (hist.val_loss[-1], hist.val_accuracy[-1]) == (vloss, vacc)
    # each once in 3 epochs; without bf16 instructions the scores read Xv as it is
    assert sorted(packed) == sorted([len(X)] + ([] if path == "portable" else [len(Xv)]))
    assert model.evaluate(X, y)["loss"] != loss              # float32's own numbers
