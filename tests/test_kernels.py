"""Every kernel of every fast backend against the NumPy backend, in float32 and float64.

Shape and dtype are checked before values. Float64 must agree to 1e-12 relative;
float32 to an error bound that grows with the reduction length k:
|err| <= c * k * eps32 * (|a| @ |b|) for products and sums.
"""
import inspect

import numpy as np
import pytest

from engine import ops
from engine.backends.base import HIDDEN_ACTIVATIONS

from engine.backends import get_backend
from engine.backends.base import Backend

from helpers import (AVAILABLE, FAST, PAIRS, SIMD_VARIANTS, check, rand,  # noqa: F401
                     simd_variant)
from helpers import outputs_and_targets as _outputs

# rerun by .ci/run against the debug build of the extension
pytestmark = pytest.mark.native

REF = get_backend("numpy")


@pytest.fixture(params=[(name, simd) for name in FAST
                        for simd in (SIMD_VARIANTS if name == "native" else ("",))],
                ids=lambda p: "-".join(x for x in p if x))
def fast(request):
    """Each fast backend; the native one with each SIMD variant this CPU can run."""
    name, simd = request.param
    if simd:
        with simd_variant(simd):
            yield get_backend(name)
    else:
        yield get_backend(name)


def run_both(fast, method, args_fn, dtype):
    """Call `method` on fresh copies for both backends; returns (fast args, ref args, results)."""
    a_ref, a_fast = args_fn(), args_fn()
    r_ref = getattr(REF, method)(*a_ref)
    dev = [fast.asarray(x) if isinstance(x, np.ndarray) else x for x in a_fast]
    r_fast = getattr(fast, method)(*dev)
    fast.synchronize()
    outs = [fast.to_numpy(x) if not isinstance(x, (str, float, int, type(None))) else x
            for x in dev]
    return outs, a_ref, r_fast, r_ref


SHAPES = [(7, 13, 5), (33, 17, 65), (100, 784, 100), (1, 1, 1)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False),
                                             (True, True)])
def test_gemm(fast, dtype, m, k, n, trans_a, trans_b):
    rng = np.random.default_rng(m * k + n)
    a = rand(rng, (k, m) if trans_a else (m, k), dtype)
    b = rand(rng, (n, k) if trans_b else (k, n), dtype)
    out = rand(rng, (m, n), dtype)
    for alpha, beta in [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)]:
        o_ref, o_fast = out.copy(), fast.asarray(out.copy())
        REF.gemm(a, b, o_ref, trans_a, trans_b, alpha, beta)
        fast.gemm(fast.asarray(a), fast.asarray(b), o_fast, trans_a, trans_b, alpha, beta)
        A = a.T if trans_a else a
        B = b.T if trans_b else b
        mag = np.abs(alpha) * (np.abs(A).astype(np.float64) @ np.abs(B)) + abs(beta) * np.abs(out)
        check(fast.to_numpy(o_fast), o_ref, k=k + 1, magnitude=mag)


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS + ("softmax",))
@pytest.mark.parametrize("shape", [(7, 13), (33, 65), (3, 1)])
def test_bias_act(fast, dtype, activation, shape):
    rng = np.random.default_rng(1)
    z, b = rand(rng, shape, dtype, 3.0), rand(rng, shape[1], dtype)
    outs, refs, _, _ = run_both(fast, "bias_act_", lambda: (z.copy(), b.copy(), activation),
                                dtype)
    check(outs[0], refs[0], k=shape[1] if activation == "softmax" else 4)


@pytest.mark.parametrize("activation", sorted(ops.KEEPS_SLOPE))
def test_bias_act_keeps_the_slope(fast, dtype, activation):
    """The activations whose derivative the output cannot give (silu) write act'(z) into
    the slope array as they activate; the NumPy slope is checked against central
    differences of the NumPy activation."""
    rng = np.random.default_rng(4)
    z, b = rand(rng, (9, 21), dtype, 4.0), rand(rng, 21, dtype)
    z[0, :5] = [-1e4, -90, -1.278, 0, 90]          # far tails, silu's minimum, the origin
    slope = np.zeros_like(z)
    outs, refs, _, _ = run_both(fast, "bias_act_", lambda: (z.copy(), b.copy(), activation,
                                                            slope.copy()), dtype)
    check(outs[0], refs[0], k=4)
    check(outs[3], refs[3], k=6)
    if dtype == np.float64:
        zb = (z + b).astype(np.float64)
        h = 1e-6 * np.maximum(1, np.abs(zb))
        up, down = zb + h, zb - h
        for v in (up, down):
            REF.bias_act_(v, np.zeros(21), activation)
        np.testing.assert_allclose(refs[3], (up - down) / (2 * h), rtol=1e-7, atol=1e-9)


def test_bias_act_leaves_the_slope_of_other_activations_alone(fast, dtype):
    """A slope array given for an activation that reads its output is never written."""
    rng = np.random.default_rng(5)
    z, b = rand(rng, (4, 6), dtype), rand(rng, 6, dtype)
    slope = np.full_like(z, 7.0)
    outs, _, _, _ = run_both(fast, "bias_act_", lambda: (z.copy(), b.copy(), "tanh",
                                                         slope.copy()), dtype)
    assert np.all(outs[3] == 7.0)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softmax"])
def test_activations_do_not_overflow(fast, dtype, activation):
    z = np.array([[-1e4, -800.0, -90.0, 0.0, 90.0, 800.0, 1e4]], dtype=dtype)
    b = np.zeros(7, dtype)
    outs, refs, _, _ = run_both(fast, "bias_act_", lambda: (z.copy(), b.copy(), activation),
                                dtype)
    assert np.all(np.isfinite(outs[0]))
    check(outs[0], refs[0], k=7)
    if activation == "sigmoid":
        assert outs[0][0, 0] == 0.0 and outs[0][0, -1] == 1.0 and outs[0][0, 3] == 0.5


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_act_backward(fast, dtype, activation):
    rng = np.random.default_rng(2)
    d = rand(rng, (9, 11), dtype)
    a = rng.random((9, 11)).astype(dtype)
    if activation in ("relu", "identity"):
        a = np.where(rng.random((9, 11)) < 0.4, 0, a).astype(dtype)
    if activation == "tanh":
        a = (2 * a - 1).astype(dtype)
    outs, refs, _, _ = run_both(fast, "act_backward_", lambda: (d.copy(), a, activation), dtype)
    # 1 - a*a cancels near |a| = 1: bound by the terms, not the result (FMA rounds once)
    check(outs[0], refs[0], k=3, magnitude=np.abs(d) * (1 + a.astype(np.float64) ** 2))


def test_softmax(fast, dtype):
    rng = np.random.default_rng(3)
    z = rand(rng, (17, 10), dtype, 20.0)
    outs, refs, _, _ = run_both(fast, "bias_act_",
                                lambda: (z.copy(), np.zeros(10, dtype), "softmax"), dtype)
    check(outs[0], refs[0], k=10)
    np.testing.assert_allclose(outs[0].sum(axis=1), 1, rtol=10 * np.finfo(dtype).eps * 10)


@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("n,c", [(7, 13), (100, 10), (1, 2)])
def test_output_delta_and_loss(fast, dtype, output, loss, n, c):
    rng = np.random.default_rng(n + c)
    a, t = _outputs(rng, output, n, c, dtype, loss)
    out = np.zeros((n, c), dtype)
    outs, refs, _, _ = run_both(fast, "output_delta",
                                lambda: (a, t, out.copy(), output, loss), dtype)
    check(outs[2], refs[2], k=4)
    _, _, got, want = run_both(fast, "loss", lambda: (a, t, output, loss), dtype)
    assert isinstance(got, float)
    check(np.array(got, dtype), np.array(want, dtype), k=n * c)


def test_cross_entropy_is_clipped_at_eps(fast, dtype):
    a = np.array([[0.0, 1.0]], dtype)
    t = np.array([[1.0, 0.0]], dtype)
    got = fast.loss(fast.asarray(a), fast.asarray(t), "softmax", "cross_entropy")
    assert got == pytest.approx(-np.log(np.finfo(dtype).eps), rel=1e-6)


@pytest.mark.parametrize("n,c", [(7, 13), (100, 100), (1, 5)])
def test_bias_grad(fast, dtype, n, c):
    rng = np.random.default_rng(4)
    d = rand(rng, (n, c), dtype)
    outs, refs, _, _ = run_both(fast, "bias_grad", lambda: (d, np.zeros(c, dtype)), dtype)
    check(outs[1], refs[1], k=n, magnitude=np.abs(d).sum(axis=0))


def test_gather(fast, dtype):
    rng = np.random.default_rng(6)
    X = rand(rng, (50, 9), dtype)
    y = rng.integers(0, 4, 50)
    idx = rng.permutation(50)[:13]
    outs, refs, _, _ = run_both(
        fast, "gather_",
        lambda: (X, y, idx, np.zeros((13, 9), dtype), np.full((13, 4), 7, dtype)), dtype)
    check(outs[3], refs[3])
    check(outs[4], refs[4])


@pytest.mark.parametrize("target_rows", [False, True])
def test_gather_of_the_targets_only(fast, dtype, target_rows):
    """x_out None (evaluation, which reads X in place): t_out as a whole gather fills it."""
    rng = np.random.default_rng(8)
    X = rand(rng, (50, 9), dtype)
    y = rand(rng, (50, 4), dtype) if target_rows else rng.integers(0, 4, 50)
    idx = rng.permutation(50)[:13]
    want = np.full((13, 4), 7, dtype)
    REF.gather_(X, y, idx, np.zeros((13, 9), dtype), want)
    got = fast.asarray(np.full((13, 4), 7, dtype))
    fast.gather_(fast.asarray(X), fast.asarray(y), fast.asarray(idx), None, got)
    fast.synchronize()
    np.testing.assert_array_equal(fast.to_numpy(got), want)


def test_diagnostic_kernels(fast, dtype):
    rng = np.random.default_rng(7)
    a = np.maximum(rand(rng, (20, 8), dtype), 0)
    a[:, 3] = 0
    assert np.array_equal(fast.to_numpy(fast.alive_units(fast.asarray(a))), REF.alive_units(a))
    s = rng.random((20, 8)).astype(dtype)
    for act in ("sigmoid", "tanh", "relu"):
        assert fast.saturated_count(fast.asarray(s), act) == REF.saturated_count(s, act)
    assert fast.sq_norm(fast.asarray(s)) == pytest.approx(REF.sq_norm(s), rel=1e-6)


def test_signatures_match_the_contract():
    """Every registered, importable backend implements the base methods with the same signature."""
    from engine.backends import _load_class, backend_names
    def shape(fn):   # names, kinds and defaults; annotations are documentation
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    base = {name: shape(fn) for name, fn in inspect.getmembers(Backend)
            if inspect.isfunction(fn) and not name.startswith("_")}
    checked = 0
    for name in backend_names():
        try:
            cls = _load_class(name)
        except ImportError:
            continue
        for meth, sig in base.items():
            assert shape(getattr(cls, meth)) == sig, f"{name}.{meth} differs from the base"
        checked += 1
    assert checked >= 2 or AVAILABLE == ["numpy"]


def test_kernels_that_a_backend_must_implement_are_implemented():
    required = ["gemm", "bias_act_", "act_backward_", "output_delta", "loss",
                "bias_grad", "optimizer_step_", "gather_", "alive_units", "saturated_count",
                "sq_norm", "asarray", "to_numpy", "empty", "zeros"]
    for name in AVAILABLE:
        cls = type(get_backend(name))
        for meth in required:
            assert getattr(cls, meth) is not getattr(Backend, meth), f"{name} lacks {meth}"
