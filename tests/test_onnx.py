"""ONNX export: onnxruntime's outputs equal the engine's (float32, 1e-5) for every hidden
activation and output/loss pair (multi-class, binary, multi-label, regression, counts), and
skl2onnx converts engine.sklearn's estimators."""
import warnings

import numpy as np
import pytest

from engine import MLP
from engine.backends.base import HIDDEN_ACTIVATIONS

ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
pytest.importorskip("onnx", reason="the [onnx] extra is not installed")

PAIRS = [("softmax", "cross_entropy", "labels"), ("sigmoid", "mse", "labels"),
         ("sigmoid", "binary_cross_entropy", "binary"),
         ("sigmoid", "binary_cross_entropy", "multilabel"), ("identity", "mse", "regression"),
         ("identity", "squared_error", "regression"), ("exp", "poisson", "counts")]


def _data(kind, rng, n=90, f=6, k=4):
    X = rng.normal(size=(n, f)).astype(np.float32)
    if kind == "labels":
        return X, rng.integers(0, k, n), k
    if kind == "binary":
        return X, rng.integers(0, 2, (n, 1)).astype(float), 1
    if kind == "multilabel":
        return X, rng.integers(0, 2, (n, k)).astype(float), k
    if kind == "counts":
        return X, rng.poisson(1.0, (n, k)).astype(float), k
    return X, rng.normal(size=(n, k)), k


def _run(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X})))


@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("output,loss,kind", PAIRS)
def test_onnxruntime_matches_the_engine(tmp_path, hidden, output, loss, kind):
    rng = np.random.default_rng(3)
    X, y, k = _data(kind, rng)
    model = MLP([X.shape[1], 7, 5, k], hidden, output, loss, backend="numpy", seed=2,
                init="glorot")
    model.fit(X, y, epochs=3, learning_rate=0.05, batch_size=16, progress=False)
    model.export_onnx(tmp_path / "m.onnx")
    got = _run(tmp_path / "m.onnx", X)
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(X), rtol=1e-5,
                               atol=1e-5)
    if kind in ("labels", "binary", "multilabel"):
        np.testing.assert_array_equal(got["label"], model.predict(X))
    else:
        assert "label" not in got


def test_export_refuses_an_old_opset_and_names_the_extra(tmp_path, monkeypatch):
    import sys
    model = MLP([3, 2], backend="numpy")
    with pytest.raises(ValueError, match="opset"):
        model.export_onnx(tmp_path / "m.onnx", opset=9)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"engine\[onnx\]"):
        model.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_skl2onnx_converts_engine_sklearn_estimators():
    skl2onnx = pytest.importorskip("skl2onnx", reason="the [onnx] extra is not installed")
    import engine.sklearn as es
    es.register_onnx_converters()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for est, y in ((es.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
                        rng.integers(0, 3, 120)),
                       (es.MLPClassifier(hidden_layer_sizes=(8,), activation="tanh",
                                         max_iter=30, random_state=0),
                        rng.integers(0, 2, 120)),
                       (es.MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
                        rng.normal(size=120))):
            est.fit(X, y)
            options = {"zipmap": False} if hasattr(est, "classes_") else None
            onx = skl2onnx.to_onnx(est, X[:1], options=options)
            session = ort.InferenceSession(onx.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            out = session.run(None, {session.get_inputs()[0].name: X})
            if hasattr(est, "classes_"):
                np.testing.assert_array_equal(out[0], est.predict(X))
                np.testing.assert_allclose(out[1], est.predict_proba(X), rtol=1e-5,
                                           atol=1e-5)
            else:
                np.testing.assert_allclose(out[0].ravel(), est.predict(X), rtol=1e-5,
                                           atol=1e-5)
