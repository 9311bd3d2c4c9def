"""Dropout (engine/dropout.py): masks keyed by epoch, minibatch, layer and row; training
with it on every backend against the NumPy backend; prediction without it."""
import numpy as np
import pytest

from engine import MLP

from test_optimizers import BACKENDS, NETS, OPTIMIZERS, _trains_as_numpy, data


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"], ids=str)
@pytest.mark.parametrize("net", ["relu-mse", "regression", "multilabel"])
@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_dropout_training_matches_numpy(backend, net, opt):
    X, y = data(n=41, net=net)
    _trains_as_numpy(backend, net, X, y, dict(epochs=2, batch_size=12, learning_rate=0.05,
                                              dropout=0.3, progress=False, **OPTIMIZERS[opt]),
                     seed=8)


def test_dropout_masks_keep_the_expected_share_and_vary():
    from engine import dropout as masks
    a = masks.keep_mask(masks.minibatch_key(masks.epoch_key(1, 0), 0), 0, 0, 200, 300, 0.3)
    assert abs(a.mean() - 0.7) < 0.01
    b = masks.keep_mask(masks.minibatch_key(masks.epoch_key(1, 0), 1), 0, 0, 200, 300, 0.3)
    c = masks.keep_mask(masks.minibatch_key(masks.epoch_key(1, 1), 0), 0, 0, 200, 300, 0.3)
    d = masks.keep_mask(masks.minibatch_key(masks.epoch_key(1, 0), 0), 1, 0, 200, 300, 0.3)
    for other in (b, c, d):                   # another minibatch, epoch, layer
        assert 0.35 < np.mean(a == other) < 0.75
    # rows are keyed by their place in the minibatch: a slice draws the same mask
    e = masks.keep_mask(masks.minibatch_key(masks.epoch_key(1, 0), 0), 0, 50, 20, 300, 0.3)
    np.testing.assert_array_equal(e, a[50:70])


def test_dropout_leaves_prediction_alone_and_checks_its_rates():
    X, y = data(n=30, net="relu-mse")
    model = MLP(**NETS["relu-mse"], backend="numpy", dtype="float64", seed=2)
    hist = model.fit(X, y, epochs=1, dropout=[0.5, 0.2], progress=False)
    assert hist.meta["dropout"] == [0.5, 0.2, 0.0]
    twin = MLP(**NETS["relu-mse"], backend="numpy", dtype="float64", seed=2)
    twin.set_weights(model.weights, model.biases)
    np.testing.assert_array_equal(model.predict_proba(X), twin.predict_proba(X))
    for bad in (1.0, -0.1, [0.1], "half"):
        with pytest.raises(ValueError, match="dropout"):
            model.fit(X, y, epochs=1, dropout=bad, progress=False)
