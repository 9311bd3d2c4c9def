"""The MLP API: training, inference, persistence, history."""
import json
import os

import numpy as np
import pytest

import engine
from engine import MLP, History


def test_fit_learns_the_sample(backend, sample):
    X, y, Xt, yt = sample
    model = MLP([784, 64, 10], dtype="float32", backend=backend.name, seed=3)
    hist = model.fit(X, y, epochs=3, batch_size=50, learning_rate=0.5,
                     validation_data=(Xt, yt), progress=False)
    assert isinstance(hist, History)
    assert hist.epochs == 3 and len(hist.val_accuracy) == 3
    assert hist.batches_per_epoch == 50
    assert len(hist.batch_loss) == 150
    assert hist.epoch_loss[-1] < hist.epoch_loss[0]
    assert hist.epoch_accuracy[-1] > 0.8
    res = model.evaluate(Xt, yt)
    assert res["accuracy"] == pytest.approx(hist.val_accuracy[-1])
    assert res["loss"] == pytest.approx(hist.val_loss[-1], rel=1e-5)
    proba = model.predict_proba(Xt[:7])
    assert proba.shape == (7, 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    pred = model.predict(Xt[:7])
    assert pred.shape == (7,) and np.issubdtype(pred.dtype, np.integer)


def test_partial_last_batch_is_kept(backend):
    rng = np.random.default_rng(0)
    X = rng.random((10, 4))
    y = rng.integers(0, 3, 10)
    model = MLP([4, 3], "sigmoid", "softmax", "cross_entropy", backend=backend.name,
                dtype="float64")
    hist = model.fit(X, y, epochs=2, batch_size=4, progress=False)
    assert hist.batches_per_epoch == 3 and len(hist.batch_loss) == 6
    # the same epoch by hand: batches of 4, 4 and 2 rows, in the model's shuffled order
    model2 = MLP([4, 3], "sigmoid", "softmax", "cross_entropy", backend=backend.name,
                 dtype="float64")
    w, b = model2.weights, model2.biases
    order = np.random.default_rng(np.random.SeedSequence(1).spawn(2)[1]).permutation(10)
    for start in (0, 4, 8):
        idx = order[start:start + 4]
        _, gw, gb = model2.loss_and_gradients(X[idx], y[idx])
        w, b = [w[0] - 0.1 * gw[0]], [b[0] - 0.1 * gb[0]]
        model2.set_weights(w, b)
    model3 = MLP([4, 3], "sigmoid", "softmax", "cross_entropy", backend=backend.name,
                 dtype="float64")
    model3.fit(X, y, epochs=1, batch_size=4, progress=False)
    np.testing.assert_allclose(model3.weights[0], w[0], rtol=1e-12)


def test_momentum_matches_the_update_rule(backend):
    rng = np.random.default_rng(1)
    X = rng.random((6, 3))
    y = rng.integers(0, 2, 6)
    kw = dict(dtype="float64", backend=backend.name)
    model = MLP([3, 2], "sigmoid", "sigmoid", "mse", **kw)
    shadow = MLP([3, 2], "sigmoid", "sigmoid", "mse", **kw)
    w, b = shadow.weights[0], shadow.biases[0]
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for _ in range(3):
        _, gw, gb = shadow.loss_and_gradients(X, y)
        vw, vb = 0.9 * vw - 0.2 * gw[0], 0.9 * vb - 0.2 * gb[0]
        w, b = w + vw, b + vb
        shadow.set_weights([w], [b])
    model.fit(X, y, epochs=3, batch_size=6, learning_rate=0.2, momentum=0.9, shuffle=False,
              progress=False)
    np.testing.assert_allclose(model.weights[0], w, rtol=1e-12)
    np.testing.assert_allclose(model.biases[0], b, rtol=1e-12)


def test_float32_and_float64_start_from_the_same_draw():
    m32 = MLP([5, 4, 3], dtype="float32", backend="numpy", seed=9)
    m64 = MLP([5, 4, 3], dtype="float64", backend="numpy", seed=9)
    assert m32.weights[0].dtype == np.float32
    np.testing.assert_array_equal(m32.weights[0], m64.weights[0].astype(np.float32))


@pytest.mark.parametrize("init", ["normal", "he", "glorot"])
def test_inits_have_the_documented_spread(init):
    model = MLP([400, 300, 10], init=init, init_scale=0.1, backend="numpy", dtype="float64")
    w = model.weights[0]
    want = {"normal": 0.1, "he": np.sqrt(2 / 400), "glorot": np.sqrt(6 / 700) / np.sqrt(3)}[init]
    assert w.std() == pytest.approx(want, rel=0.02)
    assert abs(w.mean()) < 0.01 * want * 10
    assert not model.biases[0].any()


def test_save_and_load_round_trip(tmp_path, backend, sample):
    X, y, Xt, yt = sample
    model = MLP([784, 16, 10], "tanh", backend=backend.name, seed=4)
    model.fit(X[:500], y[:500], epochs=1, progress=False)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = MLP.load(path, backend=backend.name)
    assert loaded.layer_sizes == [784, 16, 10] and loaded.hidden_activation == "tanh"
    for a, b in zip(model.weights + model.biases, loaded.weights + loaded.biases):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(Xt), loaded.predict(Xt))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_load_rejects_a_corrupt_file(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a model saved"):
        MLP.load(path)


def test_history_json_and_plots(tmp_path, sample):
    X, y, Xt, yt = sample
    model = MLP([784, 20, 10], backend="numpy")
    hist = model.fit(X, y, epochs=2, validation_data=(Xt, yt), progress=False)
    hist.save(tmp_path / "h.json")
    again = History.load(tmp_path / "h.json")
    assert again.batch_loss == hist.batch_loss
    assert json.loads((tmp_path / "h.json").read_text())["meta"]["layer_sizes"] == [784, 20, 10]
    hist.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_bar_writes_to_stderr(sample, capsys):
    X, y, _, _ = sample
    MLP([784, 8, 10], backend="numpy").fit(X[:200], y[:200], epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "acc" in err


def test_backends_registry():
    infos = engine.available_backends()
    assert [b.name for b in infos] == ["numpy", "native", "cuda"]
    assert all(isinstance(b.reason, str) and b.reason for b in infos)
    assert engine.get_backend("numpy").name == "numpy"
    assert engine.get_backend("auto").name in [b.name for b in infos if b.available]
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        engine.get_backend("tpu")


def test_predictions_on_many_batch_sizes_share_a_few_workspaces():
    """Evaluation passes take a power-of-two row count (up to a cap): a serving loop that
    predicts on batches of every size from 1 to 300 keeps 10 workspaces, not 300."""
    model = MLP([6, 5, 3], backend="numpy", seed=1)
    X = np.random.default_rng(0).normal(size=(300, 6))
    for n in range(1, 301):
        model.predict(X[:n])
    eval_sizes = sorted(size for purpose, size in model.state.workspaces if purpose == "eval")
    assert eval_sizes == [2 ** k for k in range(10)]
