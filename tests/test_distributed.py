"""engine.distributed: N ranks x batch b train to the same weights as one process with batch
N*b over the same global order (float64, 1e-12), under mpiexec -n 2 and -n 3; a rank that
fails mid-epoch ends every rank promptly; shards are row ranges."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import engine
import engine.distributed as dist

from helpers import AVAILABLE

PROGRAM = os.path.join(os.path.dirname(__file__), "mpi_programs", "train_shard.py")


def _mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is an optional extra (engine[mpi])")
    # the MPICH wheel puts mpiexec beside the interpreter, which need not be on PATH
    exe = shutil.which("mpiexec") or shutil.which(
        "mpiexec", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("no mpiexec on PATH (pip install mpich)")
    return exe


# the ranks import the engine this test imported (not another install of it)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [os.path.dirname(os.path.dirname(engine.__file__))]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}


def _run(n, settings, out, timeout=120):
    return subprocess.run([_mpiexec(), "-n", str(n), sys.executable, PROGRAM,
                           json.dumps(settings), str(out)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def _equal_replicas(folder, ranks):
    """Every rank's saved results, after checking that each replica holds the same ones."""
    results = [np.load(folder / f"rank{r}.npz") for r in range(ranks)]
    for other in results[1:]:
        for key in results[0].files:
            np.testing.assert_array_equal(other[key], results[0][key])
    return results


def test_shard_ranges_cover_the_rows_once():
    for n in (0, 1, 7, 100):
        for size in (1, 2, 3, 5):
            ranges = [dist.shard_range(n, r, size) for r in range(size)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            sizes = [b - a for a, b in ranges]
            assert max(sizes) - min(sizes) <= 1


def test_global_order_interleaves_blocks():
    order = dist.global_order([np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7, 8])], 2)
    np.testing.assert_array_equal(order, [0, 1, 5, 6, 2, 3, 7, 8, 4])


def _single_process(settings, data, size):
    """One process, batch size x b, each epoch visiting the rows in the distributed run's
    global order (the ranks' shuffles replayed here)."""
    X, y = data["X"], data["y"]
    w = data["weights"] if "weights" in data.files else None
    fit = dict(settings["fit"])
    b, epochs = fit.pop("batch_size"), fit.pop("epochs")
    fit.pop("sync_every", None)
    ranges = [dist.shard_range(len(y), r, size) for r in range(size)]
    rngs = [dist.shard_rng(10, r) for r in range(size)]      # rank 0's seed is the model's
    orders = [np.arange(stop - start) for start, stop in ranges]
    model = engine.MLP(settings["sizes"], settings.get("hidden", "tanh"),
                       dtype=settings.get("dtype", "float64"), backend=settings["backend"],
                       seed=10, precision=settings.get("precision"))
    scores = []
    for _ in range(epochs):
        for rng, o in zip(rngs, orders):
            rng.shuffle(o)
        order = dist.global_order([o + start for o, (start, _) in zip(orders, ranges)], b)
        h = model.fit(X[order], y[order], epochs=1, batch_size=size * b, shuffle=False,
                      progress=False, sample_weight=None if w is None else w[order], **fit)
        scores.append(h.epoch_loss[-1])
    model.epoch_losses = scores
    return model


FITS = {
    "sgd": dict(epochs=3, batch_size=7, learning_rate=0.2),
    "momentum": dict(epochs=3, batch_size=5, learning_rate=0.1, momentum=0.9),
    "nesterov-l2": dict(epochs=2, batch_size=8, learning_rate=0.1, momentum=0.8,
                        nesterov=True, alpha=0.01),
    "adam": dict(epochs=3, batch_size=6, learning_rate=0.01, optimizer="adam"),
}


CASES = [(fit, None) for fit in FITS] + [(fit, 1) for fit in ("sgd", "momentum",
                                                                 "nesterov-l2")]


# the native backend where it is built, the NumPy one for one case (each case is an
# mpiexec launch of a second or two)
HOST = "native" if "native" in AVAILABLE else "numpy"
RUNS = [(HOST, ranks, fit, k) for ranks in (2, 3) for fit, k in CASES]
RUNS += [("numpy", 3, "adam", None)] if HOST != "numpy" else []


@pytest.mark.parametrize("backend,ranks,fit,sync_every", RUNS,
                         ids=[f"{b}-{r}-{f}-{'allreduce' if k is None else 'local1'}"
                              for b, r, f, k in RUNS])
def test_ranks_train_as_one_process_with_their_global_batch(tmp_path, backend, ranks, fit,
                                                            sync_every):
    """Gradient all-reduce for every optimizer; local SGD synchronising every step (through
    the backend's own epoch) for the optimizers whose step is linear in the gradient."""
    rng = np.random.default_rng(ranks)
    n = 103                                   # shards of unequal size, a short last step
    X = rng.normal(size=(n, 6))
    y = rng.integers(0, 3, n)
    arrays = dict(X=X, y=y)
    if fit == "adam":
        arrays["weights"] = rng.uniform(0.2, 2.0, n)
    np.savez(tmp_path / "data.npz", **arrays)
    settings = {"data": str(tmp_path / "data.npz"), "sizes": [6, 5, 3], "backend": backend,
                "fit": FITS[fit]}
    if sync_every is not None:
        settings["fit"] = {**FITS[fit], "sync_every": sync_every}
    _as_one_process(tmp_path, settings, ranks, rtol=1e-12, atol=1e-14)


def _as_one_process(tmp_path, settings, ranks, rtol, atol):
    """Run `settings` on `ranks` ranks (every replica equal) and the one-process fit with
    the global batch; (rank 0's results, that model), their parameters checked equal within
    rtol and atol."""
    done = _run(ranks, settings, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = _equal_replicas(tmp_path, ranks)[0]
    one = _single_process(settings, np.load(tmp_path / "data.npz"), ranks)
    for i, p in enumerate(one.weights + one.biases):
        np.testing.assert_allclose(result[f"arr_{i}"], p, rtol=rtol, atol=atol)
    return result, one


@pytest.mark.parametrize("backend", sorted({"numpy", HOST}))
def test_bf16_mixed_ranks_train_as_one_process(tmp_path, backend):
    """bf16-mixed on two ranks (the reduced epoch rounds every product's operands too) is
    the one-process fit with the global batch, within float32 sums; the per-epoch losses
    too, scored with bf16 products on both."""
    rng = np.random.default_rng(11)
    np.savez(tmp_path / "data.npz", X=rng.normal(size=(61, 6)), y=rng.integers(0, 3, 61))
    settings = {"data": str(tmp_path / "data.npz"), "sizes": [6, 5, 3], "backend": backend,
                "fit": FITS["momentum"], "dtype": "float32", "precision": "bf16-mixed"}
    result, one = _as_one_process(tmp_path, settings, 2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result["epoch_loss"], one.epoch_losses, rtol=1e-4)


@pytest.mark.parametrize("backend,weighted", [("numpy", False), (HOST, False), (HOST, True)])
def test_more_ranks_than_rows_trains_as_one_process(tmp_path, backend, weighted):
    """Two rows on three ranks: the empty shard's rank takes part in every step and every
    evaluation with nothing to add, and the result is the one-process run's."""
    rng = np.random.default_rng(7)
    arrays = dict(X=rng.normal(size=(2, 4)), y=np.array([0, 1]))
    if weighted:
        arrays["weights"] = np.array([0.5, 2.0])
    np.savez(tmp_path / "data.npz", **arrays)
    settings = {"data": str(tmp_path / "data.npz"), "sizes": [4, 3, 2], "backend": backend,
                "fit": dict(epochs=3, batch_size=1, learning_rate=0.1)}
    _as_one_process(tmp_path, settings, 3, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", [b for b in AVAILABLE if b in ("numpy", "native")])
def test_local_sgd_keeps_the_replicas_equal_and_learns(tmp_path, backend):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    settings = {"data": str(tmp_path / "data.npz"), "sizes": [6, 8, 2], "backend": backend,
                "fit": dict(epochs=6, batch_size=10, learning_rate=0.01, optimizer="adam",
                            sync_every=4)}
    done = _run(3, settings, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = _equal_replicas(tmp_path, 3)
    assert len(results[0]["losses"]) == 6 * 3          # ceil(10 steps / 4) rounds per epoch
    assert results[0]["epoch_loss"][-1] < 0.6 * results[0]["epoch_loss"][0]
    assert results[0]["epoch_accuracy"][-1] > 0.9


def test_memory_mapped_npy_shards(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 2, 40)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    fit = dict(epochs=2, batch_size=4, learning_rate=0.1)
    base = {"data": str(tmp_path / "data.npz"), "sizes": [4, 3, 2], "backend": "numpy",
            "fit": fit}
    for sub, extra in (("arrays", {}), ("npy", {"npy": [str(tmp_path / "X.npy"),
                                                        str(tmp_path / "y.npy")]})):
        (tmp_path / sub).mkdir()
        done = _run(2, {**base, **extra}, tmp_path / sub)
        assert done.returncode == 0, done.stderr[-3000:]
    a, b = np.load(tmp_path / "arrays" / "rank0.npz"), np.load(tmp_path / "npy" / "rank0.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("ranks,backend", [(2, "numpy"), (3, "numpy"), (2, HOST)])
def test_a_rank_failing_mid_epoch_ends_every_rank(tmp_path, ranks, backend):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", X=rng.normal(size=(60, 4)), y=rng.integers(0, 2, 60))
    settings = {"data": str(tmp_path / "data.npz"), "sizes": [4, 3, 2], "backend": backend,
                "fit": dict(epochs=50, batch_size=2, learning_rate=0.1),
                "fail_at_step": 5, "fail_rank": ranks - 1}
    done = _run(ranks, settings, tmp_path, timeout=60)      # a hang fails by TimeoutExpired
    seen = f"exit code {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode != 0
    assert f"rank {ranks - 1} of {ranks} failed; aborting every rank" in done.stderr, seen
    assert "injected failure in the middle of an epoch" in done.stderr
    assert not any(name.startswith("rank") for name in os.listdir(tmp_path))


@pytest.mark.parametrize("ranks,backend,sync", [(2, "numpy", None), (2, HOST, None),
                                                (3, HOST, 2)])
def test_a_diverging_distributed_fit_raises_on_every_rank(tmp_path, ranks, backend, sync):
    """A learning rate of 1e6: every rank raises TrainingDiverged (one Allreduce decides),
    exits normally, and keeps finite weights (those of before the diverging epoch)."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", X=rng.normal(size=(60, 4)) * 10,
             y=rng.integers(0, 2, 60))
    settings = {"data": str(tmp_path / "data.npz"), "sizes": [4, 3, 2], "backend": backend,
                "hidden": "relu",
                "fit": dict(epochs=15, batch_size=4, learning_rate=1e6, sync_every=sync)}
    done = _run(ranks, settings, tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    for r in range(ranks):
        saved = np.load(tmp_path / f"rank{r}.npz")
        assert "distributed training diverged in epoch" in str(saved["diverged"])
        assert all(np.isfinite(saved[k]).all() for k in saved.files if k.startswith("arr_"))


@pytest.mark.parametrize("differs", [{"epochs": 3}, {"optimizer": "adam"},
                                     {"learning_rate": 0.2, "batch_size": 3}])
def test_ranks_given_different_settings_stop_at_once_with_one_error(tmp_path, differs):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", X=rng.normal(size=(40, 4)), y=rng.integers(0, 2, 40))
    settings = {"data": str(tmp_path / "data.npz"), "sizes": [4, 3, 2], "backend": "numpy",
                "fit": dict(epochs=2, batch_size=4, learning_rate=0.1),
                "rank_differs": differs}
    done = _run(3, settings, tmp_path, timeout=60)         # a hang fails by TimeoutExpired
    assert done.returncode == 3, done.stderr[-3000:]
    errors = {(tmp_path / f"rank{r}.err").read_text() for r in range(3)}
    assert len(errors) == 1                                  # the same error on every rank
    (error,) = errors
    assert "ranks were given different settings" in error
    assert all(key in error for key in differs)


def test_abort_waits_until_the_launcher_has_read_the_error(monkeypatch):
    # Abort ends the launcher's forwarding of stderr; the error must be read first
    import threading
    import time
    read_end, write_end = os.pipe()
    got = []

    def slow_reader():
        time.sleep(0.3)
        got.append(os.read(read_end, 1 << 16))
    reader = threading.Thread(target=slow_reader)
    with os.fdopen(write_end, "w") as pipe:
        monkeypatch.setattr(sys, "stderr", pipe)
        pipe.write("the error\n")
        pipe.flush()
        reader.start()
        start = time.monotonic()
        dist._let_stderr_drain(limit=5.0, grace=0.0)
        waited = time.monotonic() - start
        monkeypatch.undo()
    reader.join()
    os.close(read_end)
    assert got == [b"the error\n"]
    assert 0.2 < waited < 4.0


def _engine_train_on_2_ranks(tmp_path, out, epochs, *extra):
    return subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "engine",
                           "train", "--distributed", "--data", "sample", "--layers",
                           "784,16,10", "--epochs", str(epochs), "--batch-size", "50",
                           "--out", str(out), "--no-progress", *extra],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          # the tiles named: no rank measures the tiles/BLAS cut (~20 s)
                          env=dict(ENV, ENGINE_NATIVE_GEMM="tiles"))


def test_engine_train_distributed_writes_once_from_rank_0(tmp_path):
    """The command trains with every option `engine train` takes (they were dropped:
    --optimizer adam trained plain SGD; --precision and --resume were refused), rank 0
    writes once, and --resume goes on from its checkpoint to the uninterrupted weights."""
    options = ["--optimizer", "adam", "--lr", "0.01", "--precision", "bf16-mixed"]
    done = _engine_train_on_2_ranks(tmp_path, tmp_path / "run", 2, *options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("| 2 ranks |") == 1            # one report, from rank 0
    assert "| bf16-mixed |" in done.stdout
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint.npz", "history.json",
                                                   "model.npz", "plot.png"]
    with open(tmp_path / "run" / "history.json") as f:
        meta = json.load(f)["meta"]
    assert (meta["optimizer"], meta["learning_rate"], meta["ranks"]) == ("adam", 0.01, 2)
    resumed = _engine_train_on_2_ranks(tmp_path, tmp_path / "run", 3, "--resume", *options)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = _engine_train_on_2_ranks(tmp_path, tmp_path / "whole", 3, *options)
    assert whole.returncode == 0, whole.stderr[-3000:]
    a, b = (engine.MLP.load(tmp_path / run / "model.npz", backend="numpy")
            for run in ("run", "whole"))
    assert a.layer_sizes == [784, 16, 10] and a.precision == "bf16-mixed"
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
    # early stopping picks its epoch on held-out training rows; the table's test accuracy
    # is the test set's, scored over both shards (dist.evaluate)
    early = _engine_train_on_2_ranks(tmp_path, tmp_path / "early", 3, "--early-stopping")
    assert early.returncode == 0, early.stderr[-3000:]
    model = engine.MLP.load(tmp_path / "early" / "model.npz", backend="numpy")
    _, _, X_test, y_test = engine.load_mnist_sample()
    row = next(line for line in early.stdout.splitlines() if "| 2 ranks |" in line)
    test_accuracy = float(row.split("|")[6])
    assert test_accuracy == round(100 * model.evaluate(X_test, y_test)["accuracy"], 2)
    # data the ranks refuse: one line from rank 0 and exit code 2, no traceback per rank
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,kind\n" + "".join(f"{i},{i % 5},{i % 3}\n" for i in range(40))
                   + "1,2,1000000\n")
    refused = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "engine", "train",
                              "--distributed", "--data", str(bad), "--target", "kind",
                              "--epochs", "1", "--no-progress"], capture_output=True,
                             text=True, timeout=180, cwd=tmp_path, env=ENV)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stderr.count("engine: error:") == 1 and "Traceback" not in refused.stderr
    assert "only 4 distinct values occur" in refused.stderr


def test_scaling_model_bench_measures_the_local_parts():
    _mpiexec()
    from engine.apps import bench_distributed as bd
    assert bd.buffer_bytes([784, 100, 10]) == (79510 + 2) * 4
    assert bd.allreduce_seconds(1, 1e6, 1e9, 1e-5) == 0.0
    assert bd.allreduce_seconds(4, 1e6, 1e9, 1e-5) == pytest.approx(1.5e-3 + 6e-5)
    rows, local = bd.distributed_rows(log=lambda *a: None)
    for info in local.values():
        assert info["step_s"] > 0
        assert info["allreduce_shared_memory_2_ranks_s"] > 0, info["measured_by"]
    assert {r["ranks"] for r in rows} == set(bd.RANKS)
    assert "ranks" in bd.format_distributed(rows, local)


# ---------------------------------------------------------------- the native epoch's hook
@pytest.mark.native
@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
@pytest.mark.parametrize("gemm", ["blas", "tiles"])
@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_epoch_reduce_hook_sees_every_gradient_before_its_step(kind, gemm):
    """EpochPlan.run(reduce=...) is called once per minibatch with its rows, between its
    gradients and its step; a hook that returns what it got leaves the epoch unchanged
    (on the tiles: their stored-gradient mode against their usual fused step)."""
    from engine import _native
    from engine.optimizers import StepRule
    from helpers import plan_arrays
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(10, 6)), rng.integers(0, 3, 10)
    order = np.arange(10, dtype=np.int64)

    def run(reduce):
        arrays = plan_arrays([6, 5, 3], 4)
        arrays["weights"] = [w + np.sin(np.arange(w.size)).reshape(w.shape)
                             for w in arrays["weights"]]
        state = [np.zeros_like(p) for p in arrays["weights"] + arrays["biases"]]
        plan = _native.EpochPlan(**arrays, velocities=None if kind == "sgd" else state,
                                 weight_grads=[np.zeros_like(w) for w in arrays["weights"]],
                                 gemm=gemm, second_moments=[np.zeros_like(p) for p in state]
                                 if kind == "adam" else None)
        losses = np.zeros(3)
        plan.run(X, y, order, StepRule(kind, 0.1, 0.9, t=0), losses, alpha=0.3,
                 reduce=reduce)
        return arrays["weights"], losses

    seen = []

    def identity(i, loss, weight, grads):
        seen.append((i, weight))
        return loss, weight
    hooked, plain = run(identity), run(None)
    assert seen == [(0, 4.0), (1, 4.0), (2, 2.0)]
    for a, b in zip(hooked[0], plain[0]):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(hooked[1], plain[1], rtol=1e-13)


@pytest.mark.native
@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
def test_a_failing_reduce_hook_stops_the_epoch_and_raises():
    from engine import _native
    from engine.optimizers import StepRule
    from helpers import plan_arrays
    arrays = plan_arrays([4, 3, 2], 2)
    grads = [np.zeros_like(w) for w in arrays["weights"]]
    plan = _native.EpochPlan(**arrays, weight_grads=grads, gemm="blas")
    X, y = np.ones((6, 4)), np.array([0, 0, 1, 1, 0, 1])
    calls = []

    def hook(i, loss, weight, grads):
        calls.append(i)
        if i == 1:
            raise RuntimeError("the reduction failed")
        return loss, weight
    for gemm in ("blas", "tiles"):          # the tiles' stored-gradient mode likewise
        arrays = plan_arrays([4, 3, 2], 2)
        plan = _native.EpochPlan(**arrays, gemm=gemm,
                                 weight_grads=[np.zeros_like(w) for w in arrays["weights"]])
        before = [p.copy() for p in arrays["weights"] + arrays["biases"]]
        calls.clear()
        with pytest.raises(RuntimeError, match="the reduction failed"):
            plan.run(X, y, np.arange(6, dtype=np.int64), StepRule("sgd", 0.1), np.zeros(3),
                     reduce=hook)
        assert calls == [0, 1], gemm
        # the first minibatch stepped, the failed one did not
        after = arrays["weights"] + arrays["biases"]
        assert not all(np.array_equal(p, b) for p, b in zip(after, before))
    bare = _native.EpochPlan(**plan_arrays([4, 3, 2], 2), gemm="tiles")
    with pytest.raises(ValueError, match="reduce needs a plan built with weight_grads"):
        bare.run(X, y, np.arange(6, dtype=np.int64), StepRule("sgd", 0.1), np.zeros(3),
                 reduce=hook)


# ---------------------------------------------------------------- MLP.fit's features
def _data(tmp_path, n=60):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "data.npz", X=rng.normal(size=(n, 4)), y=rng.integers(0, 3, n))
    return str(tmp_path / "data.npz")


@pytest.mark.parametrize("backend", ["numpy", HOST])
def test_distributed_checkpoint_resumes_bit_identically(tmp_path, backend):
    """Rank 0 writes the checkpoint (with every rank's shuffle state and row order); a fit
    of 2 epochs, then one resumed to 4, ends where an uninterrupted fit of 4 ends."""
    data = _data(tmp_path)
    fit = dict(epochs=4, batch_size=4, learning_rate=0.01, optimizer="adam")
    whole, half = tmp_path / "whole", tmp_path / "half"
    whole.mkdir(), half.mkdir()
    base = {"data": data, "sizes": [4, 5, 3], "backend": backend}
    done = _run(3, dict(base, fit=dict(fit, checkpoint=str(whole / "ck.npz"))), whole)
    assert done.returncode == 0, done.stderr[-3000:]
    ck = str(half / "ck.npz")
    done = _run(3, dict(base, fit=dict(fit, epochs=2, checkpoint=ck)), half)
    assert done.returncode == 0, done.stderr[-3000:]
    assert engine.MLP.load(ck).state.counters["epochs"] == 2
    done = _run(3, dict(base, fit=dict(fit, checkpoint=ck, resume=True)), half)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _equal_replicas(whole, 3)[0], _equal_replicas(half, 3)[0]
    for k in a.files:
        if k.startswith("arr_"):
            np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a["epoch_loss"], b["epoch_loss"])


@pytest.mark.parametrize("backend", ["numpy", HOST])
def test_distributed_early_stopping_and_dropout_keep_the_replicas_equal(tmp_path, backend):
    """Early stopping on the validation loss over every rank's held-out rows, and dropout:
    every rank takes the same decisions and ends with the same parameters."""
    fit = dict(epochs=40, batch_size=4, learning_rate=0.5, early_stopping=True,
               n_iter_no_change=2, tol=0.0, dropout=0.2)
    done = _run(2, {"data": _data(tmp_path, 80), "sizes": [4, 6, 3], "backend": backend,
                    "fit": fit}, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    r = _equal_replicas(tmp_path, 2)[0]
    assert len(r["val_loss"]) == len(r["epoch_loss"]) >= 1
    assert np.all(np.isfinite(r["val_loss"]))
    if len(r["epoch_loss"]) < 40:
        assert "validation loss did not improve" in str(r["stop_reason"])


def test_distributed_early_stopping_holds_out_rows_where_there_are_some(tmp_path):
    """Shards too small to spare a validation row hold out none (the others' count for the
    score); when no rank can, every rank stops with one clear error."""
    fit = dict(epochs=3, batch_size=2, learning_rate=0.1, early_stopping=True,
               validation_fraction=0.3)
    done = _run(3, {"data": _data(tmp_path, 25), "sizes": [4, 3, 3], "backend": HOST,
                    "fit": fit}, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_equal_replicas(tmp_path, 3)[0]["val_loss"]) == 3
    small = tmp_path / "small"
    small.mkdir()
    done = _run(3, {"data": _data(small, 2), "sizes": [4, 3, 3], "backend": HOST,
                    "fit": fit}, small, timeout=60)
    assert done.returncode != 0
    assert "holds out no row on any of the 3 ranks" in done.stderr
