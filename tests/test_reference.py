"""The textbook drop-in: initial values, forward/backward, and its training loop."""
import numpy as np
import pytest

import engine
from engine import reference as ref

DROPINS = [ref.NeuralNetMLP, engine.NeuralNetMLP]


@pytest.mark.parametrize("cls", DROPINS)
def test_initial_weights_are_bit_identical_to_the_recipe(cls):
    model = cls(num_features=7, num_hidden=5, num_classes=3, random_seed=42)
    rng = np.random.RandomState(42)
    w_h = rng.normal(loc=0.0, scale=0.1, size=(5, 7))
    w_out = rng.normal(loc=0.0, scale=0.1, size=(3, 5))
    for got, want in [(model.weight_h, w_h), (model.weight_out, w_out),
                      (model.bias_h, np.zeros(5)), (model.bias_out, np.zeros(3))]:
        assert got.dtype == np.float64 and got.shape == want.shape
        assert np.array_equal(got, want)
    assert model.num_classes == 3


def _independent(x, y, w_h, b_h, w_o, b_o):
    """Forward and backward written element by element (no shared code with the module)."""
    n, c = x.shape[0], w_o.shape[0]
    sig = lambda v: np.array([[1.0 / (1.0 + np.exp(-u)) for u in row] for row in v])  # noqa: E731
    a_h = sig(np.einsum("nf,hf->nh", x, w_h) + b_h)
    a_o = sig(np.einsum("nh,ch->nc", a_h, w_o) + b_o)
    t = np.zeros((n, c))
    for i, label in enumerate(y):
        t[i, label] = 1.0
    d_o = 2.0 * (a_o - t) / n * a_o * (1.0 - a_o)
    d_h = np.einsum("nc,ch->nh", d_o, w_o) * a_h * (1.0 - a_h)
    return (a_h, a_o), (np.einsum("nc,nh->ch", d_o, a_h), d_o.sum(0),
                        np.einsum("nh,nf->hf", d_h, x), d_h.sum(0))


@pytest.mark.parametrize("cls", DROPINS)
def test_forward_backward_match_an_independent_computation(cls):
    rng = np.random.default_rng(0)
    model = cls(num_features=13, num_hidden=6, num_classes=4, random_seed=1)
    model.bias_h = rng.normal(size=6)
    model.bias_out = rng.normal(size=4)
    x = rng.normal(size=(9, 13))
    y = rng.integers(0, 4, size=9)
    a_h, a_out = model.forward(x)
    grads = model.backward(x, a_h, a_out, y)
    (want_h, want_o), want_grads = _independent(x, y, model.weight_h, model.bias_h,
                                                model.weight_out, model.bias_out)
    np.testing.assert_allclose(a_h, want_h, rtol=1e-12)
    np.testing.assert_allclose(a_out, want_o, rtol=1e-12)
    assert len(grads) == 4
    for got, want in zip(grads, want_grads):
        assert got.shape == want.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls", DROPINS)
def test_in_place_updates_are_seen_by_the_next_call(cls):
    model = cls(4, 3, 2)
    x = np.ones((2, 4))
    before = model.forward(x)[1].copy()
    model.weight_out -= 1.0
    model.bias_out += 0.5
    after = model.forward(x)[1]
    assert not np.allclose(before, after)
    model.weight_h = np.zeros((3, 4))      # rebinding works as well
    np.testing.assert_allclose(model.forward(x)[0], 0.5)


def test_helpers():
    onehot = ref.int_to_onehot(np.array([2, 0]), 3)
    assert onehot.dtype == np.float64
    np.testing.assert_array_equal(onehot, [[0, 0, 1], [1, 0, 0]])
    assert ref.sigmoid(np.array([0.0]))[0] == 0.5
    assert ref.mse_loss(np.array([0]), np.array([[1.0, 0.0]]), num_labels=2) == 0.0
    assert ref.accuracy(np.array([1, 2, 3]), np.array([1, 2, 0])) == pytest.approx(2 / 3)
    X, y = np.arange(10)[:, None], np.arange(10)
    np.random.seed(0)
    batches = list(ref.minibatch_generator(X, y, 3))
    assert [len(b[1]) for b in batches] == [3, 3, 3]      # the partial batch is dropped
    seen = np.concatenate([b[1] for b in batches])
    assert len(set(seen.tolist())) == 9
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)


@pytest.mark.parametrize("cls", DROPINS)
def test_reference_train_loop_runs_unchanged(cls, sample64, capsys):
    X, y, Xt, yt = sample64
    np.random.seed(123)
    model = cls(num_features=784, num_hidden=50, num_classes=10)
    loss, train_acc, valid_acc = ref.train(model, X[:1000], y[:1000], Xt, yt, num_epochs=3,
                                           learning_rate=0.1)
    assert len(loss) == len(train_acc) == len(valid_acc) == 3
    assert loss[-1] < loss[0]
    assert 10.0 < train_acc[-1] <= 100.0          # percent
    mse, acc = ref.compute_mse_and_acc(model, Xt, yt)
    assert 0 < mse < 0.1 and 0.0 < acc <= 1.0       # a fraction
    assert "Epoch: 003/003" in capsys.readouterr().out


def test_dropin_and_reference_train_identically(sample64):
    """The same seed and global shuffle give the same weights after training (float64)."""
    X, y, Xt, yt = sample64
    results = []
    for cls in DROPINS:
        np.random.seed(5)
        model = cls(784, 30, 10)
        ref.train(model, X[:600], y[:600], Xt[:100], yt[:100], num_epochs=2)
        results.append(model)
    for name in ("weight_h", "bias_h", "weight_out", "bias_out"):
        np.testing.assert_allclose(getattr(results[1], name), getattr(results[0], name),
                                   rtol=1e-10, atol=1e-13)


def test_fused_fit_equals_the_textbook_loop(sample64):
    X, y, Xt, yt = sample64
    np.random.seed(9)
    textbook = ref.NeuralNetMLP(784, 40, 10)
    for _ in range(2):
        for xb, yb in ref.minibatch_generator(X[:777], y[:777], 50):
            a_h, a_out = textbook.forward(xb)
            g = textbook.backward(xb, a_h, a_out, yb)
            textbook.weight_out -= 0.1 * g[0]
            textbook.bias_out -= 0.1 * g[1]
            textbook.weight_h -= 0.1 * g[2]
            textbook.bias_h -= 0.1 * g[3]
    np.random.seed(9)
    fast = engine.NeuralNetMLP(784, 40, 10)
    losses = fast.fit(X[:777], y[:777], num_epochs=2, learning_rate=0.1, minibatch_size=50)
    assert losses.shape == (2 * 15,)
    for name in ("weight_h", "bias_h", "weight_out", "bias_out"):
        np.testing.assert_allclose(getattr(fast, name), getattr(textbook, name), rtol=1e-10,
                                   atol=1e-13)


@pytest.mark.parametrize("backend", ["numpy", None])
def test_step_is_one_textbook_update(backend, sample64):
    X, y, _, _ = sample64
    model = engine.NeuralNetMLP(784, 20, 10, backend=backend)
    twin = ref.NeuralNetMLP(784, 20, 10)
    loss = model.step(X[:64], y[:64], learning_rate=0.3)
    a_h, a_out = twin.forward(X[:64])
    assert loss == pytest.approx(ref.mse_loss(y[:64], a_out), rel=1e-12)
    g = twin.backward(X[:64], a_h, a_out, y[:64])
    np.testing.assert_allclose(model.weight_out, twin.weight_out - 0.3 * g[0], rtol=1e-12)
    np.testing.assert_allclose(model.bias_h, twin.bias_h - 0.3 * g[3], rtol=1e-12, atol=1e-15)


def test_dropin_refuses_a_device_backend():
    from engine.backends.base import Backend

    class Device(Backend):
        name = "cuda"

    with pytest.raises(ValueError, match="host backend"):
        engine.NeuralNetMLP(4, 3, 2, backend=Device())
