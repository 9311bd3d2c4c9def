"""Defects found by fuzzing and sanitizers, each held by a test: no silent NaN, clear
errors instead of crashes, files that keep their mode and links, one fit at a time."""
import gzip
import os
import threading
import time

import numpy as np
import pytest

import engine
from engine import MLP, TrainingDiverged, data
from engine.io import atomic_write_bytes

from helpers import AVAILABLE


@pytest.mark.parametrize("backend", AVAILABLE)
def test_a_nan_output_gives_a_nan_loss(backend):
    be = engine.get_backend(backend)
    a = np.array([[np.nan, 0.5]])
    t = np.array([[1.0, 0.0]])
    for output, loss in (("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
                         ("exp", "poisson"), ("sigmoid", "mse")):
        assert np.isnan(be.loss(a, t, output, loss)), (output, loss)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_divergence_stops_fit_and_keeps_the_last_finite_weights(backend):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    model = MLP([5, 4, 3], "tanh", "identity", "mse", backend=backend, dtype="float64",
                seed=1)
    model.fit(X, y, epochs=1, learning_rate=1e-6, progress=False)
    before = model.weights
    with pytest.raises(TrainingDiverged, match=r"epoch 1 with learning rate 1e\+200"):
        model.fit(X, y, epochs=3, learning_rate=1e200, progress=False)
    for a, b in zip(model.weights, before):
        np.testing.assert_array_equal(a, b)
    assert issubclass(TrainingDiverged, FloatingPointError)
    with np.errstate(all="ignore"):
        hist = model.fit(X, y, epochs=2, learning_rate=1e200, on_divergence="continue",
                         progress=False)
    assert not np.all(np.isfinite(hist.batch_loss))


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
def test_native_kernels_refuse_what_they_cannot_read_safely():
    from engine import _native
    buf = np.zeros(80, np.uint8)
    odd = np.frombuffer(buf.data, dtype=np.float64, count=8, offset=1).reshape(2, 4)
    with pytest.raises(ValueError, match="aligned"):
        _native.bias_act_(odd, np.zeros(4), "relu")
    with pytest.raises(ValueError, match="at least one column"):
        _native.softmax_(np.zeros((3, 0)))
    m = np.ones((3, 3))
    with pytest.raises(ValueError, match="shares memory"):
        _native.gemm(m, np.ones((3, 3)), m)
    with pytest.raises(ValueError, match="shares memory"):
        _native.gemm(np.ones((3, 3)), m[:, :], m)


def test_the_textbook_drop_in_checks_its_input():
    net = engine.NeuralNetMLP(4, 3, 2)
    X = np.ones((6, 4))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.fit(X, np.zeros(6, int))
    with pytest.raises(ValueError, match="minibatch_size must be an integer >= 1"):
        net.fit(np.ones((6, 4)), np.zeros(6, int), minibatch_size=0)
    with pytest.raises(ValueError, match="labels must lie in"):
        net.step(np.ones((6, 4)), np.full(6, 5))


def test_malformed_idx_files_are_data_errors(tmp_path):
    for stem in data.IDX_FILES.values():
        (tmp_path / stem).mkdir()                       # a folder where a file should be
    with pytest.raises(data.DataError, match="IsADirectoryError"):
        data._read_idx_folder(str(tmp_path))
    with pytest.raises(data.DataError, match="broken gzip"):
        data.parse_idx(b"\x1f\x8b" + b"garbage", "x.gz")
    with pytest.raises(data.DataError, match="broken gzip"):
        data.parse_idx(gzip.compress(bytes(100))[:-10], "cut.gz")
    forged = b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3
    with pytest.raises(data.DataError, match="does not match its header"):
        data.parse_idx(forged, "forged")
    with pytest.raises(data.DataError, match="truncated"):
        data.parse_idx(b"\x00\x00\x08\x03\x00", "short")


def test_atomic_writes_keep_mode_and_links_and_clean_up(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    stale = tmp_path / ".model.npz.abc123.tmp"
    stale.write_bytes(b"left by a killed writer")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".model.npz.def456.tmp"       # another writer's, still at work
    fresh.write_bytes(b"")
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert (os.stat(target).st_mode & 0o777) == 0o600
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("backend", AVAILABLE)
def test_two_threads_fitting_one_model_lose_no_update(backend):
    X = np.random.default_rng(1).normal(size=(200, 8))
    y = np.arange(200) % 4
    kw = dict(epochs=3, batch_size=20, learning_rate=0.1, momentum=0.5, progress=False)
    model = MLP([8, 6, 4], backend=backend, dtype="float64", seed=2)
    threads = [threading.Thread(target=model.fit, args=(X, y), kwargs=kw) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    twice = MLP([8, 6, 4], backend=backend, dtype="float64", seed=2)
    twice.fit(X, y, **kw)
    twice.fit(X, y, **kw)
    for a, b in zip(model.weights, twice.weights):
        np.testing.assert_allclose(a, b, rtol=1e-12)


TRAIN_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, {root!r})
import engine
from engine import _native
_native.set_epoch_threads(2)
X, y, _, _ = engine.load_mnist_sample(dtype="float64")
X, y = X[:1000], y[:1000]
model = engine.MLP([784, 32, 10], "relu", backend="native", dtype="float64", seed=5)
h = model.fit(X, y, epochs=120, batch_size=50, learning_rate=0.05, optimizer="adam",
              dropout=0.1, checkpoint={checkpoint!r}, resume=True, progress=False)
np.savez({out!r}, *(model.weights + model.biases), batch_loss=h.batch_loss,
         epoch_loss=h.epoch_loss)       # the history resumes whole too
"""


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
def test_a_run_killed_at_any_moment_resumes_bit_identical(tmp_path):
    import signal
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def script(name, checkpoint):
        path = tmp_path / f"{name}.py"
        path.write_text(TRAIN_SCRIPT.format(root=root, checkpoint=str(checkpoint),
                                            out=str(tmp_path / f"{name}.npz")))
        return [sys.executable, str(path)]

    subprocess.run(script("whole", tmp_path / "whole-ck.npz"), check=True, timeout=300)
    killed = tmp_path / "killed-ck.npz"
    proc = subprocess.Popen(script("killed", killed))
    deadline = time.time() + 120
    while not killed.exists() and time.time() < deadline:      # at least one epoch done
        time.sleep(0.05)
    time.sleep(float(np.random.default_rng().uniform(0, 0.2)))  # then any moment
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    MLP.load(killed)                      # the checkpoint is whole: the write was atomic
    subprocess.run(script("killed", killed), check=True, timeout=300)
    with np.load(tmp_path / "whole.npz") as a, np.load(tmp_path / "killed.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("backend", AVAILABLE)
def test_a_stop_request_ends_fit_at_a_minibatch_boundary(backend):
    from engine import interrupt
    X = np.random.default_rng(2).normal(size=(3000, 20))
    y = np.arange(3000) % 4
    model = MLP([20, 64, 4], backend=backend, seed=1)
    if interrupt._native is not None:
        stop = interrupt._native.request_stop
    else:
        def stop():
            interrupt._flag = True
    timer = threading.Timer(0.3, stop)
    timer.start()
    with pytest.raises(KeyboardInterrupt, match=r"interrupted \(Ctrl-C\) after"):
        model.fit(X, y, epochs=10_000, batch_size=10, optimizer="adam", progress=False)
    timer.cancel()
    assert not interrupt.requested()            # cleared for the next fit
    assert np.all(np.isfinite(model.predict_proba(X[:5])))
    t = model.state.counters["t"]
    model.fit(X[:100], y[:100], epochs=1, batch_size=10, optimizer="adam", progress=False)
    assert model.state.counters["t"] == t + 10            # the step count went on from the stop


@pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process")
def test_ctrl_c_in_a_running_fit(tmp_path):
    import signal
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "fit.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {root!r})
import numpy as np
import engine
X = np.random.default_rng(0).normal(size=(20000, 50))
model = engine.MLP([50, 100, 4], seed=1)
print("ready", flush=True)
try:
    model.fit(X, np.arange(20000) % 4, epochs=100000, batch_size=20, progress=False)
except KeyboardInterrupt as stop:
    print("stopped:", stop, model.predict(X[:3]).shape, flush=True)
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "stopped: interrupted (Ctrl-C) after" in out and "(3,)" in out
