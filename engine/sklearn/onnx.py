"""skl2onnx converters for engine.sklearn's estimators: they keep scikit-learn's fitted
attributes (coefs_, intercepts_, activation, out_activation_, classes_), so skl2onnx's own
MLP converters and shape calculators serve them, registered under the engine's classes.

    import engine.sklearn                # registers them when skl2onnx is already imported
    engine.sklearn.register_onnx_converters()   # or explicitly, in any order
    onx = skl2onnx.to_onnx(estimator, X[:1].astype(np.float32))
"""
from __future__ import annotations

import sys

_registered = False


def register_onnx_converters():
    """Make skl2onnx.to_onnx convert engine.sklearn.MLPClassifier and MLPRegressor
    (idempotent).

    Raises
    ------
    ImportError
        skl2onnx is missing (naming the [onnx] extra).

    Examples
    --------
    >>> import skl2onnx                                             # doctest: +SKIP
    >>> register_onnx_converters()                                  # doctest: +SKIP
    >>> onx = skl2onnx.to_onnx(fitted_classifier, X[:1])            # doctest: +SKIP
    """
    global _registered
    if _registered:
        return
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.operator_converters.multilayer_perceptron import (
            convert_sklearn_mlp_classifier, convert_sklearn_mlp_regressor)
        from skl2onnx.shape_calculators.linear_classifier import (
            calculate_linear_classifier_output_shapes)
        from skl2onnx.shape_calculators.linear_regressor import (
            calculate_linear_regressor_output_shapes)
    except ImportError:
        raise ImportError("ONNX conversion of engine.sklearn estimators needs skl2onnx: "
                          "pip install \"engine[onnx]\"") from None
    from .estimators import MLPClassifier, MLPRegressor
    update_registered_converter(
        MLPClassifier, "EngineMLPClassifier", calculate_linear_classifier_output_shapes,
        convert_sklearn_mlp_classifier,
        options={"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                 "nocl": [True, False]})
    update_registered_converter(
        MLPRegressor, "EngineMLPRegressor", calculate_linear_regressor_output_shapes,
        convert_sklearn_mlp_regressor)
    _registered = True


def register_if_loaded():
    """Register now when skl2onnx has been imported already (importing it costs ~1.7 s,
    which `import engine.sklearn` does not pay)."""
    if "skl2onnx" in sys.modules:
        register_onnx_converters()
