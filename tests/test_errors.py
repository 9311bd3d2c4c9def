"""Bad input gets a clear ValueError/TypeError naming the argument, before any training."""
import numpy as np
import pytest

from engine import MLP

X = np.random.default_rng(0).random((8, 4)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])


def model(**kw):
    return MLP([4, 5, 3], backend="numpy", **kw)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(hidden_activation="swish"), ValueError, "hidden_activation"),
    (dict(output_activation="linear"), ValueError, "output_activation"),
    (dict(loss="hinge"), ValueError, "loss"),
    (dict(output_activation="sigmoid", loss="cross_entropy"), ValueError, "needs output_activation"),
    (dict(output_activation="softmax", loss="mse"), ValueError, "needs output_activation"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(dtype="int32"), ValueError, "dtype"),
    (dict(init="zeros"), ValueError, "init"),
    (dict(init_scale=-1.0), ValueError, "init_scale"),
    (dict(seed=-3), ValueError, "seed"),
    (dict(backend="tpu"), ValueError, "backend"),
])
def test_constructor_errors(kwargs, exc, match):
    args = dict(hidden_activation="sigmoid", output_activation="softmax", loss="cross_entropy")
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        MLP([4, 5, 3], args.pop("hidden_activation"), args.pop("output_activation"),
            args.pop("loss"), **{"backend": "numpy", **args})


@pytest.mark.parametrize("sizes", [[4], [], [4, 0, 3], [4, 2.5, 3]])
def test_layer_size_errors(sizes):
    with pytest.raises((ValueError, TypeError), match="layer_sizes"):
        MLP(sizes, backend="numpy")


def _nan():
    x = X.copy()
    x[3, 1] = np.nan
    return x


def _inf():
    x = X.copy()
    x[0, 0] = np.inf
    return x


@pytest.mark.parametrize("x,y,kw,exc,match", [
    (X[:, :3], Y, {}, ValueError, "4 columns"),
    (X[0], Y, {}, ValueError, "2-D"),
    (X[:0], Y[:0], {}, ValueError, "empty"),
    (_nan(), Y, {}, ValueError, "NaN"),
    (_inf(), Y, {}, ValueError, "NaN or inf"),
    (X.astype(str), Y, {}, TypeError, "numbers"),
    (X, Y[:5], {}, ValueError, "5 labels"),
    (X, Y + 1, {}, ValueError, r"\[0, 3\)"),
    (X, -Y, {}, ValueError, r"\[0, 3\)"),
    (X, Y + 0.5, {}, TypeError, "integer"),
    (X, Y[:, None], {}, ValueError, "1-D"),
    (X, Y, dict(batch_size=0), ValueError, "batch_size"),
    (X, Y, dict(epochs=0), ValueError, "epochs"),
    (X, Y, dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (X, Y, dict(momentum=1.0), ValueError, "momentum"),
    (X, Y, dict(validation_data=X), TypeError, "validation_data"),
    (X, Y, dict(validation_data=(X[:, :2], Y)), ValueError, r"validation_data\[0\]"),
])
def test_fit_errors_come_before_any_step(x, y, kw, exc, match):
    m = model()
    before = m.weights[0].copy()
    with pytest.raises(exc, match=match):
        m.fit(x, y, progress=False, **kw)
    np.testing.assert_array_equal(m.weights[0], before)


def test_float_labels_that_are_integers_are_accepted():
    model().fit(X, Y.astype(float), epochs=1, progress=False)


def test_predict_and_evaluate_check_input():
    m = model()
    with pytest.raises(ValueError, match="4 columns"):
        m.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        m.evaluate(_nan(), Y)


def test_values_too_large_for_the_models_dtype_are_told_apart_from_inf():
    """float64 1e39 is finite; in a float32 model it would be inf. The message says which
    it was (and NumPy's overflow warning is not let through on top of it)."""
    import warnings
    big = X.astype(np.float64)
    big[2, 3] = -1e39
    regression = MLP([4, 2], "relu", "identity", "mse", backend="numpy")
    cases = [(model(), dict(x=big, y=Y), "X"),
             (model(), dict(x=X, y=Y, sample_weight=np.full(8, 1e39)), "sample_weight"),
             (regression, dict(x=X, y=np.full((8, 2), 1e39)), "y")]
    for m, kw, name in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=rf"^{name} holds values beyond float32's range "
                                                 r"\(largest magnitude 1e\+39"):
                m.fit(kw.pop("x"), kw.pop("y"), progress=False, **kw)
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        model().fit(np.where(np.isfinite(big), big, 0) * np.inf, Y, progress=False)
    model(dtype="float64").fit(big, Y, epochs=1, progress=False)      # float64 holds it


def test_a_sparse_matrix_is_refused_with_what_to_do_and_bool_labels_are_two_classes():
    sparse = pytest.importorskip("scipy.sparse")
    for fmt in ("csr_matrix", "csc_matrix", "coo_matrix"):
        with pytest.raises(TypeError, match=r"X is a sparse matrix .*X\.toarray\(\)"):
            model().fit(getattr(sparse, fmt)(X), Y, progress=False)
    with pytest.raises(TypeError, match="X is a sparse matrix"):
        model().predict(sparse.csr_matrix(X))
    m = MLP([4, 3, 2], backend="numpy", seed=0)
    as_ints = MLP([4, 3, 2], backend="numpy", seed=0)
    m.fit(X, Y > 0, epochs=2, progress=False)
    as_ints.fit(X, (Y > 0).astype(int), epochs=2, progress=False)
    np.testing.assert_array_equal(m.weights[0], as_ints.weights[0])
