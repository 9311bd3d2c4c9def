"""Whole training runs: every fast backend gives the NumPy backend's weights."""
import numpy as np
import pytest

from engine import MLP

from helpers import FAST

# rerun by .ci/run against the debug build of the extension
pytestmark = pytest.mark.native


@pytest.fixture(params=FAST)
def fast_name(request):
    return request.param


ARCHS = [
    ([784, 100, 10], "sigmoid", "softmax", "cross_entropy", 0.0),
    ([784, 100, 10], "sigmoid", "sigmoid", "mse", 0.0),
    ([784, 32, 32, 32, 10], "relu", "softmax", "cross_entropy", 0.9),
    ([784, 40, 20, 10], "tanh", "sigmoid", "mse", 0.5),
]


@pytest.mark.parametrize("sizes,hidden,output,loss,momentum", ARCHS)
def test_three_epochs_on_the_sample_match_numpy_float64(fast_name, sample64, sizes, hidden,
                                                         output, loss, momentum):
    X, y, _, _ = sample64
    X, y = X[:1030], y[:1030]            # 1030 rows: the last batch of each epoch is partial
    runs = {}
    for name in ("numpy", fast_name):
        model = MLP(sizes, hidden, output, loss, dtype="float64", backend=name, seed=11)
        hist = model.fit(X, y, epochs=3, batch_size=100, learning_rate=0.1, momentum=momentum,
                         progress=False)
        runs[name] = (model, hist)
    ref, got = runs["numpy"], runs[fast_name]
    for w_ref, w in zip(ref[0].weights + ref[0].biases, got[0].weights + got[0].biases):
        np.testing.assert_allclose(w, w_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[1].batch_loss, ref[1].batch_loss, rtol=1e-10)
    assert len(got[1].batch_loss) == 3 * 11


def test_float32_training_stays_close_to_numpy(fast_name, sample):
    X, y, Xt, yt = sample
    accs = {}
    for name in ("numpy", fast_name):
        model = MLP([784, 64, 10], dtype="float32", backend=name, seed=2)
        model.fit(X, y, epochs=2, progress=False)
        accs[name] = model.evaluate(Xt, yt)["accuracy"]
        w = model.weights[0]
        accs[name + "_w"] = w
    np.testing.assert_allclose(accs[fast_name + "_w"], accs["numpy_w"], rtol=1e-3, atol=1e-4)
    assert abs(accs[fast_name] - accs["numpy"]) <= 0.01
