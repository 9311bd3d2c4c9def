"""Optimizers (SGD, momentum, Nesterov, Adam), the L2 penalty, learning-rate schedules and
early stopping: each replayed by a hand-written NumPy loop, on every runnable backend."""
import math

import numpy as np
import pytest

from engine import MLP
from engine.backends import get_backend

from helpers import AVAILABLE

OPTIMIZERS = {"sgd": dict(optimizer="sgd"),
              "momentum": dict(optimizer="sgd", momentum=0.9),
              "nesterov": dict(optimizer="sgd", momentum=0.8, nesterov=True),
              "adam": dict(optimizer="adam", beta_1=0.8, beta_2=0.95, epsilon=1e-7)}
NETS = {"sigmoid-softmax": dict(layer_sizes=[7, 5, 4], hidden_activation="sigmoid",
                                output_activation="softmax", loss="cross_entropy"),
        "relu-mse": dict(layer_sizes=[7, 6, 3, 4], hidden_activation="relu",
                         output_activation="sigmoid", loss="mse"),
        "regression": dict(layer_sizes=[7, 5, 3], hidden_activation="tanh",
                           output_activation="identity", loss="mse"),
        "multilabel": dict(layer_sizes=[7, 6, 3], hidden_activation="relu",
                           output_activation="sigmoid", loss="binary_cross_entropy"),
        "binary": dict(layer_sizes=[7, 4, 1], hidden_activation="identity",
                       output_activation="sigmoid", loss="binary_cross_entropy"),
        "poisson": dict(layer_sizes=[7, 4, 2], hidden_activation="tanh",
                        output_activation="exp", loss="poisson")}
# the native backend's two product paths, and every other runnable backend
BACKENDS = [b for b in AVAILABLE if b != "native"] + \
    ([("native", "tiles"), ("native", "blas")] if "native" in AVAILABLE else [])


def _backend(spec):
    return get_backend(spec[0], gemm=spec[1]) if isinstance(spec, tuple) else spec


def data(n=23, f=7, c=4, seed=0, dtype="float64", net=None):
    """Rows and the targets a network trains on: labels, 0/1 indicators, values or counts."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(dtype)
    spec = NETS.get(net, {})
    k = spec.get("layer_sizes", [0, c])[-1]
    if spec.get("loss") == "binary_cross_entropy":
        y = rng.integers(0, 2, (n, k)).astype(dtype)
        return X, (y[:, 0] if k == 1 else y)
    if spec.get("output_activation") == "identity":
        return X, rng.normal(size=(n, k)).astype(dtype)
    if spec.get("output_activation") == "exp":
        return X, rng.poisson(1.5, (n, k)).astype(dtype)
    return X, rng.integers(0, c, n)


def replay(net, opt, alpha, X, y, batch, epochs, lr):
    """The updates written out by hand: gradients from the NumPy backend, steps by the
    formulas of engine/optimizers.py. Returns (parameters, minibatch losses)."""
    shadow = MLP(**net, backend="numpy", dtype="float64", seed=5, init_scale=0.5)
    params = shadow.weights + shadow.biases
    n_w = len(shadow.weights)
    v = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    mom, nesterov = opt.get("momentum", 0.0), opt.get("nesterov", False)
    b1, b2, eps = opt.get("beta_1", 0.9), opt.get("beta_2", 0.999), opt.get("epsilon", 1e-8)
    t, losses = 0, []
    for _ in range(epochs):
        for start in range(0, len(y), batch):
            xb, yb = X[start:start + batch], y[start:start + batch]
            m = len(yb)
            shadow.set_weights(params[:n_w], params[n_w:])
            loss, gw, gb = shadow.loss_and_gradients(xb, yb)
            losses.append(loss + 0.5 * alpha * sum(np.sum(w * w) for w in params[:n_w]) / m)
            t += 1
            for i, g in enumerate(gw + gb):
                p = params[i]
                if i < n_w:
                    g = g + alpha * p / m
                if opt["optimizer"] == "adam":
                    v[i] = b1 * v[i] + (1 - b1) * g
                    s[i] = b2 * s[i] + (1 - b2) * g * g
                    lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                    params[i] = p - lr_t * v[i] / (np.sqrt(s[i]) + eps)
                elif mom:
                    v[i] = mom * v[i] - lr * g
                    params[i] = p + (mom * v[i] - lr * g if nesterov else v[i])
                else:
                    params[i] = p - lr * g
    return params, losses


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_every_optimizer_replays_by_hand_in_float64(backend, net, opt, alpha):
    X, y = data(net=net)
    lr = 0.02 if opt == "adam" else 0.3
    want, want_losses = replay(NETS[net], OPTIMIZERS[opt], alpha, X, y, 10, 2, lr)
    model = MLP(**NETS[net], backend=_backend(backend), dtype="float64", seed=5,
                init_scale=0.5)
    hist = model.fit(X, y, epochs=2, batch_size=10, learning_rate=lr, shuffle=False,
                     alpha=alpha, progress=False, **OPTIMIZERS[opt])
    for got, ref in zip(model.weights + model.biases, want):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(hist.batch_loss, want_losses, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("opt", ["nesterov", "adam"])
@pytest.mark.parametrize("net", ["sigmoid-softmax", "regression", "multilabel", "poisson"])
def test_float32_follows_float64(backend, opt, net):
    X, y = data(n=60, net=net)
    runs = []
    for dtype in ("float32", "float64"):
        model = MLP(**NETS[net], backend=_backend(backend), dtype=dtype, seed=5)
        model.fit(X.astype(dtype), y, epochs=2, batch_size=20, learning_rate=0.05,
                  alpha=0.1, progress=False, **OPTIMIZERS[opt])
        runs.append(model.weights)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_the_optimizer_state_carries_over_fits_and_files(backend, tmp_path):
    X, y = data(n=50)
    kw = dict(epochs=2, batch_size=16, learning_rate=0.01, progress=False, alpha=0.05,
              **OPTIMIZERS["adam"])
    whole = MLP(**NETS["sigmoid-softmax"], backend=_backend(backend), dtype="float64", seed=2)
    whole.fit(X, y, **dict(kw, epochs=4))
    split = MLP(**NETS["sigmoid-softmax"], backend=_backend(backend), dtype="float64", seed=2)
    split.fit(X, y, **kw)
    split.save(tmp_path / "half.npz")
    split.fit(X, y, **kw)
    loaded = MLP.load(tmp_path / "half.npz", backend=_backend(backend))
    loaded.fit(X, y, **kw)
    for w, s, l in zip(whole.weights, split.weights, loaded.weights):
        np.testing.assert_allclose(s, w, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(l, w, rtol=1e-12, atol=1e-14)


def test_changing_the_optimizer_starts_its_state_afresh():
    X, y = data(n=40)
    model = MLP(**NETS["sigmoid-softmax"], backend="numpy", dtype="float64", seed=2)
    model.fit(X, y, epochs=1, batch_size=8, learning_rate=0.01, optimizer="adam",
              progress=False)
    twin = MLP(**NETS["sigmoid-softmax"], backend="numpy", dtype="float64", seed=2)
    twin.fit(X, y, epochs=1, batch_size=8, learning_rate=0.01, optimizer="adam",
             progress=False)
    twin.set_weights(twin.weights, twin.biases)          # fresh state, same weights
    for m in (model, twin):
        m.fit(X, y, epochs=1, batch_size=8, learning_rate=0.1, momentum=0.5, progress=False)
    for a, b in zip(model.weights, twin.weights):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_the_l2_term_is_in_the_reported_loss():
    X, y = data(n=10)
    losses = {}
    for alpha in (0.0, 2.0):
        model = MLP(**NETS["relu-mse"], backend="numpy", dtype="float64", seed=1)
        squares = sum(np.sum(w * w) for w in model.weights)
        hist = model.fit(X, y, epochs=1, batch_size=10, learning_rate=0.0, alpha=alpha,
                         progress=False)
        losses[alpha] = hist.batch_loss[0]
    assert losses[2.0] - losses[0.0] == pytest.approx(0.5 * 2.0 * squares / 10, rel=1e-12)


def test_schedules_set_each_epochs_learning_rate():
    X, y = data(n=30)
    model = MLP(**NETS["sigmoid-softmax"], backend="numpy", seed=1)
    hist = model.fit(X, y, epochs=3, batch_size=10, learning_rate=0.5, schedule="invscaling",
                     power_t=0.25, progress=False)
    assert hist.learning_rate == pytest.approx([0.5 / (30 * k + 1) ** 0.25 for k in range(3)])
    hist = model.fit(X, y, epochs=3, batch_size=10, learning_rate=0.5,
                     schedule=lambda epoch: 0.1 * (epoch + 1), progress=False)
    assert hist.learning_rate == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="returned nan"):
        model.fit(X, y, epochs=1, schedule=lambda epoch: float("nan"), progress=False)
    with pytest.raises(ValueError, match="schedule must be one of"):
        model.fit(X, y, epochs=1, schedule="cosine", progress=False)


def test_the_adaptive_schedule_divides_by_five_then_stops():
    X, y = data(n=30)
    model = MLP(**NETS["sigmoid-softmax"], backend="numpy", seed=1)
    # tol so large that no epoch counts as an improvement after the first
    hist = model.fit(X, y, epochs=50, batch_size=10, learning_rate=1e-5, schedule="adaptive",
                     tol=1e9, n_iter_no_change=1, progress=False)
    assert hist.learning_rate == pytest.approx([1e-5] * 3 + [2e-6] * 2 + [4e-7] * 2)
    assert "adaptive learning rate" in hist.stop_reason


@pytest.mark.parametrize("backend", AVAILABLE)
def test_early_stopping_keeps_the_best_epochs_weights(backend):
    rng = np.random.default_rng(3)
    X, y = data(n=80, seed=1)
    Xv, yv = data(n=40, seed=2)                # unrelated labels: the model overfits to X
    kw = dict(batch_size=8, learning_rate=0.5, progress=False)
    model = MLP(**NETS["sigmoid-softmax"], backend=backend, dtype="float64", seed=4)
    hist = model.fit(X, y, epochs=200, validation_data=(Xv, yv), early_stopping=True,
                     n_iter_no_change=3, tol=0.0, **kw)
    best = int(np.argmin(hist.val_loss)) + 1
    assert hist.best_epoch == best and hist.epochs < 200
    assert hist.epochs == best + 4                # more than 3 epochs without improvement
    assert "did not improve" in hist.stop_reason and f"epoch {best}" in hist.stop_reason
    again = MLP(**NETS["sigmoid-softmax"], backend=backend, dtype="float64", seed=4)
    again.fit(X, y, epochs=best, **kw)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert rng is not None


def test_early_stopping_holds_out_a_stratified_share():
    X, y = data(n=200, c=4)
    model = MLP(**NETS["sigmoid-softmax"], backend="numpy", seed=4)
    hist = model.fit(X, y, epochs=2, early_stopping=True, validation_fraction=0.2,
                     progress=False)
    assert hist.meta["n_train"] == 200 - sum(round(0.2 * c) for c in np.bincount(y))
    assert len(hist.val_loss) == 2
    with pytest.raises(ValueError, match="validation_fraction"):
        model.fit(X[:4], y[:4], epochs=1, early_stopping=True, validation_fraction=0.0,
                  progress=False)


@pytest.mark.parametrize("kwargs,match", [
    (dict(optimizer="rmsprop"), "optimizer must be one of"),
    (dict(optimizer="adam", beta_1=1.0), "beta_1 must be in"),
    (dict(optimizer="adam", epsilon=0.0), "epsilon must be > 0"),
    (dict(alpha=-1.0), "alpha"),
    (dict(nesterov="yes"), "nesterov must be True or False"),
    (dict(momentum=1.5), "momentum"),
])
def test_bad_optimizer_arguments_are_refused(kwargs, match):
    X, y = data(n=10)
    model = MLP(**NETS["sigmoid-softmax"], backend="numpy")
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, y, epochs=1, progress=False, **kwargs)


@pytest.mark.parametrize("net,y,match", [
    ("sigmoid-softmax", np.full(10, 0.5), "integer class labels"),
    ("multilabel", np.full((10, 3), 0.5), "0/1 indicators"),
    ("multilabel", np.zeros((10, 2)), r"shape \(10, 3\)"),
    ("binary", np.zeros((10, 2)), r"shape \(10, 1\) or \(10,\)"),
    ("regression", np.zeros(10), r"shape \(10, 3\)"),
    ("regression", np.full((10, 3), np.nan), "NaN or inf"),
    ("poisson", -np.ones((10, 2)), ">= 0"),
    ("regression", np.zeros((9, 3)), "9 rows but X has 10"),
])
def test_targets_are_checked_per_output_loss_pair(net, y, match):
    X, _ = data(n=10)
    model = MLP(**NETS[net], backend="numpy")
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, y, epochs=1, progress=False)


def test_predictions_and_scores_follow_the_pair():
    X, y = data(n=40, net="multilabel")
    model = MLP(**NETS["multilabel"], backend="numpy", seed=1)
    model.fit(X, y, epochs=2, batch_size=8, progress=False)
    proba = model.predict_proba(X)
    np.testing.assert_array_equal(model.predict(X), (proba > 0.5).astype(np.int64))
    subset = np.mean(np.all(model.predict(X) == y, axis=1))
    assert model.evaluate(X, y)["accuracy"] == pytest.approx(subset)
    X, y = data(n=40, net="regression")
    model = MLP(**NETS["regression"], backend="numpy", seed=1)
    hist = model.fit(X, y, epochs=2, batch_size=8, progress=False)
    np.testing.assert_array_equal(model.predict(X), model.predict_proba(X))
    result = model.evaluate(X, y)
    assert math.isnan(result["accuracy"]) and math.isnan(hist.epoch_accuracy[-1])
    assert result["loss"] == pytest.approx(np.mean((model.predict(X) - y) ** 2), rel=1e-6)
    X, y = data(n=40, net="binary")
    model = MLP(**NETS["binary"], backend="numpy", seed=1)
    model.fit(X, y, epochs=1, progress=False)             # y of shape (n,) for one unit
    assert model.predict(X).shape == (40, 1)


# ---------------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("net", sorted(NETS))
def test_integer_sample_weights_equal_repeated_rows(backend, net):
    """One minibatch holding every row: weights w_i give the same steps (and losses, L2
    term included) as the rows repeated w_i times, unweighted."""
    X, y = data(n=9, net=net)
    w = np.array([1, 0, 2, 3, 1, 1, 0, 2, 1])
    kw = dict(epochs=2, learning_rate=0.01, shuffle=False, alpha=0.3, optimizer="adam",
              progress=False)
    weighted = MLP(**NETS[net], backend=_backend(backend), dtype="float64", seed=5)
    hw = weighted.fit(X, y, batch_size=9, sample_weight=w, **kw)
    repeated = MLP(**NETS[net], backend=_backend(backend), dtype="float64", seed=5)
    rows = np.repeat(np.arange(9), w)
    hr = repeated.fit(X[rows], y[rows], batch_size=len(rows), **kw)
    for a, b in zip(weighted.weights + weighted.biases, repeated.weights + repeated.biases):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hw.batch_loss, hr.batch_loss, rtol=1e-12)
    np.testing.assert_allclose(hw.epoch_loss, hr.epoch_loss, rtol=1e-12)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"], ids=str)
@pytest.mark.parametrize("net", ["sigmoid-softmax", "regression", "multilabel"])
def test_weighted_minibatches_match_numpy(backend, net):
    X, y = data(n=47, net=net)
    w = np.random.default_rng(2).uniform(0, 3, 47)
    w[:5] = 0.0
    _trains_as_numpy(backend, net, X, y, dict(epochs=2, batch_size=10, learning_rate=0.05,
                                              momentum=0.9, nesterov=True, alpha=0.1,
                                              sample_weight=w, progress=False), seed=6)


def _trains_as_numpy(backend, net, X, y, kw, seed):
    """The same fit on the NumPy backend and on `backend`: weights and minibatch losses
    equal to 1e-12 (float64)."""
    ref = MLP(**NETS[net], backend="numpy", dtype="float64", seed=seed)
    h_ref = ref.fit(X, y, **kw)
    got = MLP(**NETS[net], backend=_backend(backend), dtype="float64", seed=seed)
    h_got = got.fit(X, y, **kw)
    for a, b in zip(got.weights + got.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_got.batch_loss, h_ref.batch_loss, rtol=1e-12)


def test_evaluate_takes_weighted_means():
    X, y = data(n=30, c=4)
    w = np.random.default_rng(3).uniform(0, 2, 30)
    model = MLP(**NETS["sigmoid-softmax"], backend="numpy", dtype="float64", seed=1)
    proba = model.predict_proba(X)
    rows = -np.log(np.maximum(proba[np.arange(30), y], np.finfo(float).eps))
    result = model.evaluate(X, y, sample_weight=w)
    assert result["loss"] == pytest.approx(np.sum(w * rows) / np.sum(w), rel=1e-12)
    right = np.argmax(proba, axis=1) == y
    assert result["accuracy"] == pytest.approx(np.sum(w[right]) / np.sum(w), rel=1e-12)


@pytest.mark.parametrize("w,match", [
    (-np.ones(10), ">= 0"), (np.full(10, np.nan), "NaN or inf"), (np.ones(9), r"shape \(10,\)"),
    (np.zeros(10), "all zero"), (np.array(["a"] * 10), "numbers"),
])
def test_bad_sample_weights_are_refused(w, match):
    X, y = data(n=10)
    model = MLP(**NETS["sigmoid-softmax"], backend="numpy")
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, y, epochs=1, sample_weight=w, progress=False)
