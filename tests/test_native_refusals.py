"""What the native extension refuses instead of crashing or computing garbage (the round-3
fuzz run): 0-row plans, a plan re-initialised while it runs, a softmax over no columns,
outputs that alias inputs, absurd thread counts; and the default team capped at the CPUs
this process may use."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

_native = pytest.importorskip("engine._native", reason="the native extension is not built")

from helpers import plan_arrays  # noqa: E402
from engine.optimizers import StepRule  # noqa: E402

SGD = StepRule("sgd", 0.1)

pytestmark = pytest.mark.native


@pytest.mark.parametrize("gemm", ["tiles", "blas"])
def test_a_plan_of_zero_rows_is_refused(gemm):
    with pytest.raises(ValueError, match="at least one row"):
        _native.EpochPlan(**plan_arrays([4, 3, 2], 0), gemm=gemm)


@pytest.mark.parametrize("gemm", ["tiles", "blas"])
def test_a_silu_plan_needs_room_for_its_slopes(gemm):
    """silu's derivative is read from the slopes the forward pass keeps: a plan without
    them is refused (reading the outputs instead would train on a wrong gradient)."""
    arrays = dict(plan_arrays([4, 3, 2], 5), activations=("silu", "softmax"))
    with pytest.raises(ValueError, match=r"slopes\[0\] must be an array of shape \(5, 3\)"):
        _native.EpochPlan(**arrays, gemm=gemm)
    with pytest.raises(ValueError, match=r"slopes\[0\] must have shape \(5, 3\)"):
        _native.EpochPlan(**arrays, gemm=gemm, slopes=[np.zeros((5, 4)), None])
    _native.EpochPlan(**arrays, gemm=gemm, slopes=[np.zeros((5, 3)), None])


def test_a_plan_cannot_be_reinitialised_from_its_reduce_callback():
    arrays = plan_arrays([4, 3, 2], 2)
    grads = [np.zeros_like(w) for w in arrays["weights"]]
    plan = _native.EpochPlan(**arrays, weight_grads=grads, gemm="blas")
    X, y = np.ones((6, 4)), np.array([0, 1, 0, 1, 0, 1])
    order, losses = np.arange(6, dtype=np.int64), np.zeros(3)

    def hook(i, loss, weight, _grads):
        plan.__init__(**plan_arrays([4, 3, 2], 2), weight_grads=grads, gemm="blas")
    with pytest.raises(RuntimeError, match="running an epoch"):
        plan.run(X, y, order, SGD, losses, reduce=hook)

    def nested(i, loss, weight, _grads):
        plan.run(X, y, order, SGD, losses)
    with pytest.raises(RuntimeError, match="already running"):
        plan.run(X, y, order, SGD, losses, reduce=nested)
    assert plan.run(X, y, order, SGD, losses) == 3          # still whole, still runs


def test_a_plan_cannot_be_reinitialised_while_another_thread_runs_it():
    arrays = plan_arrays([64, 64, 10], 50, np.float32)
    plan = _native.EpochPlan(**arrays, gemm="tiles")
    rng = np.random.default_rng(0)
    X, y = rng.random((20000, 64), np.float32), rng.integers(0, 10, 20000)
    order, losses = np.arange(20000, dtype=np.int64), np.zeros(400)
    started, errors = threading.Event(), []

    def train():
        started.set()
        for _ in range(20):
            plan.run(X, y, order, StepRule("sgd", 0.01), losses)
    t = threading.Thread(target=train)
    t.start()
    started.wait()
    refused = 0
    while t.is_alive():
        try:
            plan.__init__(**plan_arrays([64, 64, 10], 50, np.float32), gemm="tiles")
        except RuntimeError as exc:
            refused += 1
            assert "running an epoch" in str(exc)
        except Exception as exc:        # noqa: BLE001
            errors.append(exc)
    t.join()
    assert refused > 0 and not errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_softmax_over_zero_columns_is_refused(dtype):
    with pytest.raises(ValueError, match="at least one column"):
        _native.bias_act_(np.zeros((3, 0), dtype), np.zeros(0, dtype), "softmax")
    _native.bias_act_(np.zeros((0, 0), dtype), np.zeros(0, dtype), "softmax")  # no rows: fine
    with pytest.raises(ValueError, match="0 outputs"):
        _native.tiled_forward([np.zeros((0, 4), dtype)], [np.zeros(0, dtype)], ["softmax"],
                              np.ones((3, 4), dtype), [np.zeros((3, 0), dtype)])


def test_outputs_that_alias_inputs_are_refused():
    rng = np.random.default_rng(1)
    p, g = rng.normal(size=12), rng.normal(size=12)
    with pytest.raises(ValueError, match="param and grad share memory"):
        _native.optimizer_step_(p, p, (), StepRule("sgd", 0.1))
    v = np.zeros(12)
    with pytest.raises(ValueError, match=r"param and state\[0\] share memory"):
        _native.optimizer_step_(p, g, (p,), StepRule("momentum", 0.1, 0.9))
    m = np.zeros(24)
    with pytest.raises(ValueError, match=r"state\[0\] and state\[1\] share memory"):
        _native.optimizer_step_(p, g, (m[:12], m[:12]), StepRule("adam", 0.1, t=1))
    _native.optimizer_step_(p, g, (v,), StepRule("momentum", 0.1, 0.9))      # distinct: fine

    X, y = rng.normal(size=(6, 4)), np.arange(6) % 3
    with pytest.raises(ValueError, match="x_out and X share memory"):
        _native.gather_(X, y, np.arange(6, dtype=np.int64), X, np.zeros((6, 3)))
    buf = np.zeros(40)                       # two outputs overlapping by four elements
    with pytest.raises(ValueError, match="x_out and t_out share memory"):
        _native.gather_(X, y, np.arange(6, dtype=np.int64), buf[:24].reshape(6, 4),
                        buf[20:38].reshape(6, 3))

    W, b = rng.normal(size=(4, 4)), np.zeros(4)
    x = rng.normal(size=(5, 4))
    with pytest.raises(ValueError, match=r"outs\[0\] and x share memory"):
        _native.tiled_forward([W], [b], ["identity"], x, [x])
    out = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"outs\[0\] and outs\[1\] share memory"):
        _native.tiled_forward([W, W], [b, b], ["relu", "identity"], x, [out, out])
    _native.tiled_forward([W, W], [b, b], ["relu", "identity"], x, [out, np.zeros((5, 4))])


def test_absurd_thread_counts_are_refused():
    saved = _native.epoch_threads_setting()
    try:
        for n in (2 ** 31 - 1, 1025, -1):
            with pytest.raises(ValueError, match="n must be >= 1, or 0 .* at most 1024"):
                _native.set_epoch_threads(n)
        with pytest.raises(TypeError):
            _native.set_epoch_threads(2.0)
        assert _native.epoch_threads_setting() == saved
        with pytest.raises(ValueError, match=r"threads must lie in \[0, 1024\]"):
            _native.EpochPlan(**plan_arrays([4, 3, 2], 2), gemm="tiles", threads=2 ** 20)
    finally:
        _native.set_epoch_threads(saved)


def test_the_default_team_is_capped_at_the_usable_cpus():
    """OMP_NUM_THREADS far above the CPUs: the default team (and the tiles calibration that
    uses it) stays at the CPUs this process may use; an explicit setting is kept."""
    code = ("import os, engine._native as n; "
            "print(n.get_epoch_threads(), n.usable_cpus(), len(os.sched_getaffinity(0)));"
            "n.set_epoch_threads(3); print(n.get_epoch_threads())")
    env = dict(os.environ, OMP_NUM_THREADS="64")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    team, usable, affinity, explicit = map(int, out)
    assert usable == affinity and team == min(64, affinity) and explicit == 3
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        one = min(os.sched_getaffinity(0))
        out = subprocess.run(["taskset", "-c", str(one), sys.executable, "-c", code], env=env,
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 0:                          # taskset is there
            assert out.stdout.split()[:2] == ["1", "1"]
