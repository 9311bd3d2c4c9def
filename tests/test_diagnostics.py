"""Training diagnostics on tiny networks where the answer is known, and the experiments."""
import numpy as np
import pytest

from engine import MLP
from engine.apps.experiments import EXPERIMENTS, run_experiment


def _data(n=40, f=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, f)), rng.integers(0, c, n)


def test_relu_layer_with_bias_minus_100_is_all_dead(backend):
    X, y = _data()
    model = MLP([6, 5, 3], "relu", dtype="float64", backend=backend.name)
    model.set_weights(model.weights, [np.full(5, -100.0), np.zeros(3)])
    hist = model.fit(X, y, epochs=1, batch_size=10, progress=False, diagnostics=True)
    d = hist.diagnostics[0]
    assert d["dead_fraction"][0] == 1.0
    assert d["grad_norm"][0] == 0.0            # a dead layer gets no gradient at all
    assert np.isnan(d["saturated_fraction"][0])


def test_sigmoid_layer_fed_huge_inputs_is_saturated(backend):
    X, y = _data()
    model = MLP([6, 5, 3], "sigmoid", dtype="float64", backend=backend.name)
    model.set_weights([w * 1000 for w in model.weights[:1]] + model.weights[1:], model.biases)
    hist = model.fit(X * 100, y, epochs=1, batch_size=10, learning_rate=1e-9, progress=False,
                     diagnostics=True)
    d = hist.diagnostics[0]
    assert d["saturated_fraction"][0] > 0.95
    assert np.isnan(d["dead_fraction"][0])


def test_healthy_layers_are_neither_dead_nor_saturated(backend):
    X, y = _data()
    model = MLP([6, 8, 3], "tanh", dtype="float64", backend=backend.name, init_scale=0.1)
    d = model.fit(X, y, epochs=1, progress=False, diagnostics=True).diagnostics[0]
    assert d["saturated_fraction"][0] == 0.0


def test_gradient_and_weight_norms_equal_a_direct_computation(backend):
    X, y = _data(n=30)
    kw = dict(dtype="float64", backend=backend.name, seed=5)
    model = MLP([6, 4, 4, 3], "relu", **kw)
    twin = MLP([6, 4, 4, 3], "relu", **kw)
    hist = model.fit(X, y, epochs=1, batch_size=10, shuffle=False, progress=False,
                     diagnostics=True)
    # replay the epoch: mean over minibatches of ||dL/dW_l|| before each update
    norms = np.zeros(3)
    for start in (0, 10, 20):
        _, gw, gb = twin.loss_and_gradients(X[start:start + 10], y[start:start + 10])
        norms += [np.sqrt(np.sum(g * g)) for g in gw]
        twin.set_weights([w - 0.1 * g for w, g in zip(twin.weights, gw)],
                        [b - 0.1 * g for b, g in zip(twin.biases, gb)])
    d = hist.diagnostics[0]
    np.testing.assert_allclose(d["grad_norm"], norms / 3, rtol=1e-10)
    np.testing.assert_allclose(d["weight_norm"], [np.linalg.norm(w) for w in twin.weights],
                               rtol=1e-10)
    # diagnostics do not change the training itself
    np.testing.assert_allclose(model.weights[0], twin.weights[0], rtol=1e-12)


def test_plot_diagnostics(tmp_path, backend):
    X, y = _data()
    hist = MLP([6, 5, 3], "relu", backend=backend.name).fit(X, y, epochs=2, progress=False,
                                                             diagnostics=True)
    hist.plot_diagnostics(tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    plain = MLP([6, 5, 3], backend=backend.name).fit(X, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="diagnostics=True"):
        plain.plot_diagnostics(tmp_path / "e.png")


SMALL = {"depth": dict(max_depth=2, width=16), "wide-vs-deep": dict(wide=32),
         "dead-relu": dict(rates=[0.1, 1.0], biases=[0.0, -3.0]), "loss-activation": {}}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_runs_end_to_end_on_the_sample(tmp_path, name):
    rows, md = run_experiment(name, out=str(tmp_path), epochs=1, data="sample",
                              backend="native" if _has_native() else "numpy", **SMALL[name])
    assert rows and "|" in md
    for f in ("results.md", "meta.json"):
        assert (tmp_path / f).stat().st_size > 0
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_unknown_experiment(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        run_experiment("nope", out=str(tmp_path))


def _has_native():
    try:
        from engine import _native  # noqa: F401
        return True
    except ImportError:
        return False
