"""scikit-learn drop-in: change one import line,

    from engine.sklearn import MLPClassifier, MLPRegressor

and get scikit-learn's estimators (parameters, attributes, methods, numbers) trained by the
engine's backends. Needs scikit-learn (`pip install "engine[sklearn]"`); `import engine`
does not.

estimators.py: the two classes; solvers.py: scikit-learn's stochastic loop and L-BFGS on
the engine; network.py: the engine network behind a fitted estimator; onnx.py: skl2onnx
converters (register_onnx_converters).
"""
try:
    import sklearn  # noqa: F401
except ImportError as exc:          # say what to install, not just what is missing
    raise ImportError("engine.sklearn needs scikit-learn: pip install \"engine[sklearn]\" "
                      "(or pip install scikit-learn)") from exc

from .estimators import MLPClassifier, MLPRegressor
from .onnx import register_if_loaded, register_onnx_converters

register_if_loaded()

__all__ = ["MLPClassifier", "MLPRegressor", "register_onnx_converters"]
