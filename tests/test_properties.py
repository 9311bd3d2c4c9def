"""Property-based checks (hypothesis, fixed seed, bounded examples): random networks train
the same on the native backend as on the NumPy spec; random bad arguments raise
ValueError/TypeError and nothing else; damaged model files raise ModelFileError."""
import numpy as np
import pytest

from engine.backends.base import HIDDEN_ACTIVATIONS

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from engine import MLP, ModelFileError  # noqa: E402

from helpers import AVAILABLE, pair_targets  # noqa: E402

SETTINGS = dict(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PAIRS = [("softmax", "cross_entropy"), ("sigmoid", "mse"), ("identity", "mse"),
         ("sigmoid", "binary_cross_entropy"), ("exp", "poisson")]


@st.composite
def networks(draw):
    depth = draw(st.integers(1, 4))
    # widths from 1 to 1100: both sides of the tiles/BLAS cut and of every tile size
    widths = draw(st.lists(st.one_of(st.integers(1, 40), st.integers(1000, 1100)),
                           min_size=depth, max_size=depth))
    inputs, outputs = draw(st.integers(1, 30)), draw(st.integers(1, 6))
    pair = draw(st.sampled_from(PAIRS))
    if pair[1] == "cross_entropy":
        outputs = max(outputs, 2)
    return dict(sizes=[inputs] + widths[:-1] + [outputs], pair=pair,
                hidden=draw(st.sampled_from(HIDDEN_ACTIVATIONS)),
                dtype=draw(st.sampled_from(["float32", "float64"])),
                rows=draw(st.integers(1, 30)), batch=draw(st.integers(1, 12)),
                layout=draw(st.sampled_from(["c", "strided", "fortran", "big-endian"])),
                seed=draw(st.integers(0, 2 ** 16)))


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
@settings(**SETTINGS)
@given(networks())
def test_native_trains_random_networks_as_numpy_does(net):
    rng = np.random.default_rng(net["seed"])
    sizes, (output, loss) = net["sizes"], net["pair"]
    X = rng.normal(size=(net["rows"], sizes[0]))
    y = pair_targets(rng, output, loss, net["rows"], sizes[-1])
    X = {"c": X, "strided": np.repeat(X, 2, axis=1)[:, ::2], "fortran": np.asfortranarray(X),
         "big-endian": X.astype(">f8")}[net["layout"]]
    results = []
    for backend in ("numpy", "native"):
        model = MLP(sizes, net["hidden"], output, loss, dtype=net["dtype"], backend=backend,
                    seed=net["seed"], init_scale=0.3)
        # a diverging run is not an error here: it is filtered out just below
        with np.errstate(all="ignore"):
            model.fit(X, y, epochs=1, batch_size=net["batch"], learning_rate=0.005,
                      on_divergence="continue", progress=False)
        results.append(model.weights + model.biases)
        # random networks include unstable ones (wide linear layers at a fixed learning
        # rate): their weights explode, and any two implementations drift apart by
        # rounding alone. Compare the runs that stayed in range.
        hypothesis.assume(all(np.all(np.abs(p) < 50) for p in results[-1]))   # nan fails too
    # rounding grows with the reduction length (the widest layer) and the steps taken
    steps = -(-net["rows"] // net["batch"])
    eps = np.finfo(net["dtype"]).eps
    tol = max(1e-10 if net["dtype"] == "float64" else 2e-4, 8 * eps * max(sizes) * steps)
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


BAD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                       st.lists(st.integers(-2, 3), max_size=3))


@settings(**SETTINGS)
@given(st.dictionaries(st.sampled_from(["epochs", "batch_size", "learning_rate", "momentum",
                                        "optimizer", "alpha", "schedule", "dropout",
                                        "beta_1", "epsilon", "tol", "n_iter_no_change",
                                        "validation_fraction", "early_stopping",
                                        "nesterov", "sample_weight"]),
                       BAD_VALUES, min_size=1, max_size=3))
def test_random_arguments_raise_value_or_type_errors_only(kwargs):
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.arange(12) % 2
    model = MLP([3, 4, 2], backend="numpy", seed=1)
    try:
        model.fit(X, y, progress=False, **{"epochs": 1, **kwargs})
    except (ValueError, TypeError):
        pass


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("file") / "m.npz"
    model = MLP([4, 3, 2], backend="numpy", dtype="float64", seed=1)
    model.fit(np.ones((6, 4)), np.arange(6) % 2, epochs=1, optimizer="adam", progress=False)
    model.save(path)
    return path.read_bytes(), model


@settings(**SETTINGS)
@given(st.data())
def test_damaged_model_files_raise_model_file_error(model_bytes, tmp_path_factory, data):
    raw, model = model_bytes
    damaged = bytearray(raw)
    if data.draw(st.booleans()):
        damaged = damaged[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        damaged[i] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path_factory.mktemp("bad") / "m.npz"
    path.write_bytes(bytes(damaged))
    try:
        loaded = MLP.load(path, backend="numpy")
    except ModelFileError:
        return
    for a, b in zip(loaded.weights + loaded.biases, model.weights + model.biases):
        np.testing.assert_array_equal(a, b)     # a harmless flip (zip metadata) only
