"""A 2-2-2 network by hand: every intermediate value written out."""
import numpy as np
import pytest

from engine import MLP


def test_one_sgd_step_by_hand(backend):
    model = MLP([2, 2, 2], "relu", "softmax", "cross_entropy", dtype="float64",
                backend=backend.name)
    W1 = np.array([[1.0, -1.0], [0.5, 2.0]])
    b1 = np.array([0.0, -1.0])
    W2 = np.array([[1.0, 0.0], [0.0, 1.0]])
    b2 = np.array([0.0, 0.0])
    model.set_weights([W1, W2], [b1, b2])
    X = np.array([[1.0, 1.0]])
    y = np.array([1])
    # z1 = X W1^T + b1 = [1 - 1 + 0, 0.5 + 2 - 1] = [0, 1.5]; a1 = relu = [0, 1.5]
    # z2 = a1 W2^T + b2 = [0, 1.5]; p = softmax = [1, e^1.5] / (1 + e^1.5)
    e = np.exp(1.5)
    p = np.array([1.0, e]) / (1.0 + e)                     # [0.18243, 0.81757]
    loss, gw, gb = model.loss_and_gradients(X, y)
    assert loss == pytest.approx(-np.log(p[1]), rel=1e-12)  # 0.20141
    # delta2 = (p - onehot) / n = [0.18243, -0.18243]
    d2 = p - np.array([0.0, 1.0])
    np.testing.assert_allclose(gb[1], d2, rtol=1e-12)
    # dW2 = delta2^T a1 = [[0, 1.5 * 0.18243], [0, -1.5 * 0.18243]]
    np.testing.assert_allclose(gw[1], np.outer(d2, [0.0, 1.5]), rtol=1e-12, atol=1e-15)
    # delta1 = (delta2 W2) * (a1 > 0) = [0.18243, -0.18243] * [0, 1] = [0, -0.18243]
    d1 = d2 * np.array([0.0, 1.0])
    np.testing.assert_allclose(gb[0], d1, rtol=1e-12, atol=1e-15)
    # dW1 = delta1^T X = [[0, 0], [-0.18243, -0.18243]]
    np.testing.assert_allclose(gw[0], np.outer(d1, [1.0, 1.0]), rtol=1e-12, atol=1e-15)
    # one SGD step with lr 0.5 moves W1[1] by +0.5 * 0.18243
    model.fit(X, y, epochs=1, batch_size=1, learning_rate=0.5, shuffle=False, progress=False)
    np.testing.assert_allclose(model.weights[0], W1 - 0.5 * np.outer(d1, [1.0, 1.0]),
                               rtol=1e-12)
    np.testing.assert_allclose(model.biases[1], b2 - 0.5 * d2, rtol=1e-12)
