"""The native extension itself: argument checks, the fused epoch, allocation, threads."""
import gc
import tracemalloc

import numpy as np
import pytest

_native = pytest.importorskip("engine._native", reason="the native extension is not built")

from engine import MLP  # noqa: E402
from helpers import SIMD_VARIANTS, plan_arrays, simd_variant  # noqa: E402
from engine.optimizers import StepRule  # noqa: E402

SGD = StepRule("sgd", 0.1)

# rerun by .ci/run against the debug build of the extension
pytestmark = pytest.mark.native


def test_build_info_reports_openmp_and_flags():
    info = _native.build_info()
    assert isinstance(info["openmp"], bool)
    assert "-O" in info["compile_args"]
    import os
    if os.environ.get("ENGINE_NATIVE_ARCH", "") not in ("1", "true", "yes", "on"):
        assert "-march=native" not in info["compile_args"]
    if os.environ.get("ENGINE_FAST_MATH", "") not in ("1", "true", "yes", "on"):
        assert "-ffast-math" not in info["compile_args"]


@pytest.mark.parametrize("call,exc,match", [
    (lambda: _native.gemm(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros((2, 5))), ValueError,
     "inner sizes differ"),
    (lambda: _native.gemm(np.zeros((2, 3)), np.zeros((3, 5), np.float32), np.zeros((2, 5))),
     TypeError, "b must be float64"),
    (lambda: _native.gemm(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros((5, 2))), ValueError,
     r"out must have shape \(2, 5\)"),
    (lambda: _native.gemm(np.zeros((3, 2)).T, np.zeros((3, 5)), np.zeros((2, 5))), ValueError,
     "a must be C-contiguous"),
    (lambda: _native.gemm([[1.0]], np.zeros((1, 1)), np.zeros((1, 1))), TypeError,
     "a must be a NumPy array"),
    (lambda: _native.bias_act_(np.zeros((2, 3), np.int32), np.zeros(3), "relu"), TypeError,
     "z must be float32 or float64"),
    (lambda: _native.bias_act_(np.zeros((2, 3)), np.zeros(4), "relu"), ValueError,
     r"bias must have shape \(3,\)"),
    (lambda: _native.bias_act_(np.zeros((2, 3)), np.zeros(3), "gelu"), ValueError,
     "activation must be one of"),
    (lambda: _native.output_delta(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
                                  "softmax", "mse"), ValueError, "no kernel for output"),
    (lambda: _native.gather_(np.zeros((4, 2)), np.zeros(4, np.int64), np.array([0, 9]),
                             np.zeros((2, 2)), np.zeros((2, 3))), ValueError,
     r"index\[1\] = 9 is outside \[0, 4\)"),
    (lambda: _native.gather_(np.zeros((4, 2)), np.array([0, 1, 2, 3]), np.array([0, 1]),
                             np.zeros((2, 2)), np.zeros((2, 3))), ValueError,
     r"y\[3\] = 3 is outside \[0, 3\)"),
    (lambda: _native.sgd_step_(np.zeros(3), np.zeros(3), None, 0.1, 0.9), ValueError,
     "velocity is required"),
    (lambda: _native.loss(np.zeros((0, 3)), np.zeros((0, 3)), "sigmoid", "mse"), ValueError,
     "empty"),
])
def test_arguments_are_checked_before_the_work(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("gemm", ["tiles", "blas"])
def test_epoch_plan_checks_list_lengths_and_refuses_to_run_unbuilt(gemm):
    arrays = plan_arrays([4, 3, 2], 2)
    with pytest.raises(ValueError, match="velocities must have 4 entries"):
        _native.EpochPlan(**arrays, velocities=[np.zeros((3, 4))], gemm=gemm)
    with pytest.raises(ValueError, match="weight_grads must have 2 entries"):
        _native.EpochPlan(**arrays, weight_grads=[], gemm=gemm)
    args = (np.zeros((4, 4)), np.zeros(4, np.int64), np.arange(4), StepRule("sgd", 0.1),
            np.zeros(2))
    with pytest.raises(RuntimeError, match="never initialized"):
        _native.EpochPlan.__new__(_native.EpochPlan).run(*args)
    plan = _native.EpochPlan(**arrays, gemm=gemm)
    assert plan.run(*args) == 2
    with pytest.raises(ValueError):           # a failed re-init leaves a plan that refuses
        plan.__init__(**dict(arrays, weights=[np.zeros((3, 5)), np.zeros((2, 3))]), gemm=gemm)
    with pytest.raises(RuntimeError, match="never initialized"):
        plan.run(*args)
    plan.__init__(**arrays, gemm=gemm)         # and a good one makes it usable again
    assert plan.run(*args) == 2


def test_read_only_output_is_refused():
    out = np.zeros((2, 2))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _native.gemm(np.eye(2), np.eye(2), out)


def test_epoch_plan_rejects_bad_order_and_labels():
    arrays = plan_arrays([4, 3, 2], 2)
    plan = _native.EpochPlan(**arrays)
    X = np.zeros((5, 4))
    losses = np.zeros(3)
    with pytest.raises(ValueError, match=r"order\[1\] = 5 is outside"):
        plan.run(X, np.zeros(5, np.int64), np.array([0, 5]), SGD, losses)
    with pytest.raises(ValueError, match=r"y\[4\] = 2 is outside"):
        plan.run(X, np.array([0, 1, 0, 1, 2]), np.arange(5), SGD, losses)
    with pytest.raises(ValueError, match="batch_losses needs 3"):
        plan.run(X, np.zeros(5, np.int64), np.arange(5), SGD, np.zeros(2))
    with pytest.raises(ValueError, match="without velocities"):
        plan.run(X, np.zeros(5, np.int64), np.arange(5), StepRule("momentum", 0.1, 0.9), losses)
    with pytest.raises(TypeError, match="X must be float64"):
        plan.run(X.astype(np.float32), np.zeros(5, np.int64), np.arange(5), SGD, losses)
    with pytest.raises(ValueError, match="weights\\[1\\] has 5 inputs"):
        _native.EpochPlan(**dict(arrays, weights=[np.zeros((3, 4)), np.zeros((2, 5))]))


@pytest.mark.parametrize("optimizer", [{}, dict(optimizer="adam", alpha=0.01),
                                       dict(momentum=0.9, nesterov=True),
                                       dict(dropout=0.2)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_steady_state_epochs_allocate_nothing(dtype, optimizer):
    rng = np.random.default_rng(0)
    X = rng.random((2000, 784)).astype(dtype)
    y = rng.integers(0, 10, 2000)
    model = MLP([784, 64, 32, 10], backend="native", dtype=dtype)
    order = np.arange(2000)
    epoch = model.epoch_runner(X, y, batch_size=100, learning_rate=0.1, order=order,
                               **optimizer)
    epoch()     # warm-up
    gc.collect()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    for _ in range(20):
        rng.shuffle(order)
        epoch()
    current, peak = tracemalloc.get_traced_memory()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    # nothing retained, and no temporary bigger than a few Python objects
    assert grown < 4096, f"{grown} bytes retained over 20 epochs"
    assert peak < 64 * 1024, f"peak {peak} bytes traced during 20 epochs"


def test_gil_is_released_during_an_epoch():
    """Another Python thread makes progress while an epoch runs."""
    import threading
    import time
    rng = np.random.default_rng(0)
    X = rng.random((6000, 784)).astype(np.float32)
    y = rng.integers(0, 10, 6000)
    model = MLP([784, 256, 10], backend="native")
    epoch = model.epoch_runner(X, y, batch_size=100, learning_rate=0.1, order=np.arange(6000))
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    t0 = time.perf_counter()
    epoch()
    t1 = time.perf_counter()
    done.set()
    t.join()
    inside = [x for x in ticks if t0 < x < t1]
    assert len(inside) >= 3, f"only {len(inside)} ticks in a {t1 - t0:.3f} s epoch"


def test_thread_count_setting():
    n = _native.get_num_threads()
    _native.set_num_threads(1)
    if _native.build_info()["openmp"]:
        assert _native.get_num_threads() == 1
    _native.set_num_threads(n)
    with pytest.raises(ValueError):
        _native.set_num_threads(0)


def test_debug_build_is_in_use_when_ci_asks_for_it():
    """CI's second pass sets ENGINE_EXPECT_DEBUG_BUILD: prove the debug build is what runs."""
    import os
    expected = os.environ.get("ENGINE_EXPECT_DEBUG_BUILD") == "1"
    assert _native.build_info()["debug_build"] == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(dtype):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((600, 1000)).astype(dtype)       # above the parallel threshold
    b = rng.standard_normal(1000).astype(dtype)
    d = rng.standard_normal((600, 1000)).astype(dtype)
    results = []
    n = _native.get_num_threads()
    try:
        for threads in (1, 2):
            _native.set_num_threads(threads)
            out, delta = z.copy(), d.copy()
            _native.bias_act_(out, b, "sigmoid")
            _native.act_backward_(delta, out, "sigmoid")
            results.append((out, delta))
    finally:
        _native.set_num_threads(n)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])


def test_every_simd_variant_agrees_with_the_baseline():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((50, 70)) * 30
    b = np.zeros(70)
    acts = ("sigmoid", "softmax", "tanh", "relu")
    outs = {}
    for variant in SIMD_VARIANTS:
        with simd_variant(variant):
            for act in acts:
                out = z.copy()
                _native.bias_act_(out, b, act)
                outs[variant, act] = out
    assert len(SIMD_VARIANTS) >= 2 or SIMD_VARIANTS == ["baseline"]
    for variant in SIMD_VARIANTS:
        for act in acts:
            np.testing.assert_allclose(outs[variant, act], outs["baseline", act], rtol=1e-14,
                                       atol=1e-300)


def test_simd_variants_are_reported_and_forced():
    variants = _native.simd_variants()
    assert {"baseline", "avx2+fma", "avx512", "avx512-on-avx2"} <= set(variants)
    assert variants["baseline"]
    best = _native.build_info()["simd"]
    assert variants[best]
    with simd_variant("baseline"):
        assert _native.build_info()["simd"] == "baseline"
    assert _native.build_info()["simd"] == best
    with pytest.raises(ValueError, match="unknown SIMD variant"):
        _native.force_simd("sse9")
    for name, runs in variants.items():
        if not runs:
            with pytest.raises(ValueError, match="cannot run"):
                _native.force_simd(name)


def test_the_gemm_floor_makes_the_products_alone():
    """EpochPlan.gemm_floor (the benchmarks' floor) runs the BLAS path's products of
    ceil(count / batch) minibatches and nothing else: on all-zero deltas the weights stay
    as they were, and the plan trains normally afterwards."""
    arrays = plan_arrays([4, 3, 2], 2)
    plan = _native.EpochPlan(**arrays, gemm="blas")
    before = [w.copy() for w in arrays["weights"]]
    assert plan.gemm_floor(5) == 3 and plan.gemm_floor(0) == 0
    for w, b in zip(arrays["weights"], before):
        np.testing.assert_array_equal(w, b)
    with pytest.raises(ValueError, match="count must be >= 0"):
        plan.gemm_floor(-1)
    with pytest.raises(RuntimeError, match="never initialized"):
        _native.EpochPlan.__new__(_native.EpochPlan).gemm_floor(4)
    assert plan.run(np.ones((4, 4)), np.zeros(4, np.int64), np.arange(4), SGD,
                    np.zeros(2)) == 2
