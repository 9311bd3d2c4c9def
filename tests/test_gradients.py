"""Backprop against float64 central differences, for every architecture the API offers."""
import numpy as np
import pytest

from engine.backends.base import HIDDEN_ACTIVATIONS

from engine import MLP

from helpers import pair_targets

# rerun by .ci/run against the debug build of the extension
pytestmark = pytest.mark.native

PAIRS = [("sigmoid", "mse"), ("softmax", "cross_entropy"), ("identity", "mse"),
         ("sigmoid", "binary_cross_entropy"), ("exp", "poisson"), ("identity", "squared_error")]
# scikit-learn's squared_error reports half the mean over rows x outputs but steps with the
# delta (a - y)/n: c times the gradient of what it reports
STEP_OVER_GRADIENT = {"squared_error": lambda c: c}


def targets(rng, output, loss, n, c):
    return pair_targets(rng, output, loss, n, c, mean_count=2.0)


def _numeric_grads(model, X, y, eps=1e-6):
    weights, biases = model.weights, model.biases
    params = weights + biases

    def loss_at():
        model.set_weights(params[:len(weights)], params[len(weights):])
        return model.loss_and_gradients(X, y)[0]

    grads = []
    for p in params:
        g = np.zeros_like(p)
        it = np.nditer(p, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = p[i]
            p[i] = old + eps
            up = loss_at()
            p[i] = old - eps
            down = loss_at()
            p[i] = old
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    model.set_weights(params[:len(weights)], params[len(weights):])
    return grads


@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("output,loss", PAIRS)
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_backprop_matches_central_differences(backend, hidden, output, loss, depth):
    rng = np.random.default_rng(depth)
    sizes = [5] + [4] * depth + [3]
    # binary cross-entropy is computed from a (clipped, as scikit-learn does), so log(1 - a)
    # keeps only |log(1 - a)| * 1e-16 / (1 - a) of absolute precision: near a = 1 the central
    # differences, not the gradient, go wrong. exp outputs grow fast with the weights, and
    # the loss with them. Smaller weights keep both in the range the differences resolve.
    scale = 0.3 if loss in ("binary_cross_entropy", "poisson") else 0.8
    model = MLP(sizes, hidden, output, loss, dtype="float64", backend=backend.name, seed=7,
                init="normal", init_scale=scale)
    # non-zero biases so relu kinks and sigmoid midpoints are not special
    model.set_weights(model.weights, [rng.normal(0, 0.3, b.shape) for b in model.biases])
    X = rng.normal(size=(6, 5))
    y = targets(rng, output, loss, 6, 3)
    _, gw, gb = model.loss_and_gradients(X, y)
    factor = STEP_OVER_GRADIENT.get(loss, lambda c: 1)(3)
    numeric = [factor * g for g in _numeric_grads(model, X, y)]
    for analytic, num in zip(gw + gb, numeric):
        assert analytic.shape == num.shape
        np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=1e-9)


def test_gradient_of_mse_is_the_gradient_of_the_reported_mean():
    """mse is the mean over batch x classes: doubling the classes halves the output delta."""
    X = np.eye(2)
    y = np.array([0, 1])
    model = MLP([2, 2], "sigmoid", "sigmoid", "mse", dtype="float64", backend="numpy")
    model.set_weights([np.zeros((2, 2))], [np.zeros(2)])
    loss, gw, gb = model.loss_and_gradients(X, y)
    # a = 0.5 everywhere; (a - t)^2 = 0.25 everywhere -> mean 0.25
    assert loss == pytest.approx(0.25)
    # dL/dz = 2 (a - t) / (n c) * a (1 - a) = 2 * (+-0.5) / 4 * 0.25 = +-0.0625
    np.testing.assert_allclose(gb, [[0.0, 0.0]])         # one row +, one row - per column
    np.testing.assert_allclose(gw, [[[-0.0625, 0.0625], [0.0625, -0.0625]]])


def _check_objective_gradient(make_model, weights, biases, X, y, kw):
    """The whole training objective (the reported loss of one whole-set minibatch at
    learning rate 0) differentiated by central differences, against the step that plain
    SGD with learning rate 1 takes from the same weights. make_model(ws, bs): a fresh
    model holding them."""
    stepped = make_model(weights, biases)
    stepped.fit(X, y, learning_rate=1.0, **kw)
    analytic = [p - q for p, q in zip(weights + biases, stepped.weights + stepped.biases)]
    params = [p.copy() for p in weights + biases]
    n_w = len(weights)

    def objective():
        return make_model(params[:n_w], params[n_w:]).fit(X, y, learning_rate=0.0,
                                                           **kw).batch_loss[0]
    for p, g in zip(params, analytic):
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = objective()
            p[i] = old - 1e-6
            down = objective()
            p[i] = old
            assert (up - down) / 2e-6 == pytest.approx(g[i], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("output,loss", PAIRS)
def test_gradient_with_l2_and_sample_weights_matches_central_differences(backend, output,
                                                                          loss):
    """L2 term and sample weights included in the objective (with one output where the
    step is not the objective's gradient for more)."""
    rng = np.random.default_rng(11)
    c = 1 if loss in STEP_OVER_GRADIENT else 3
    X = rng.normal(size=(7, 4))
    y = targets(rng, output, loss, 7, c)
    w = rng.uniform(0, 2, 7)
    w[2] = 0.0
    scale = 0.3 if loss in ("binary_cross_entropy", "poisson") else 0.8
    start = MLP([4, 3, c], "tanh", output, loss, dtype="float64", backend=backend.name,
                seed=3, init_scale=scale)

    def make_model(ws, bs):
        model = MLP([4, 3, c], "tanh", output, loss, dtype="float64", backend=backend.name)
        model.set_weights(ws, bs)
        return model
    _check_objective_gradient(make_model, start.weights, start.biases, X, y,
                              dict(epochs=1, batch_size=7, shuffle=False, alpha=0.7,
                                   sample_weight=w, progress=False))


@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_gradient_with_dropout_under_a_fixed_mask(backend, hidden):
    """Dropout's masks depend only on the seed, epoch, minibatch, row and unit, so with
    them fixed the training objective is a plain function of the weights."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(8, 4))
    y = rng.integers(0, 3, 8)
    sizes = [4, 6, 5, 3]
    start = MLP(sizes, hidden, "softmax", "cross_entropy", dtype="float64",
                backend=backend.name, seed=3, init_scale=0.8)
    # non-zero biases: a row whose units are all dropped would otherwise sit exactly at
    # relu's kink in the next layer, where central differences see half a slope
    biases = [rng.normal(0, 0.3, b.shape) for b in start.biases]

    def make_model(ws, bs):
        model = MLP(sizes, hidden, "softmax", "cross_entropy", dtype="float64",
                    backend=backend.name, seed=3)
        model.set_weights(ws, bs)
        return model
    _check_objective_gradient(make_model, start.weights, biases, X, y,
                              dict(epochs=1, batch_size=8, shuffle=False,
                                   dropout=[0.4, 0.25], progress=False))
