"""engine: a multilayer-perceptron training engine with NumPy, native CPU and CUDA backends.

    import engine
    X, y, Xt, yt = engine.load_mnist()
    model = engine.MLP([784, 100, 10], "sigmoid", "softmax", "cross_entropy")
    history = model.fit(X, y, epochs=10, validation_data=(Xt, yt))

Where things are: model.py (the MLP API) with training.py, evaluation.py and model_file.py;
backends/ (the contract in base.py, numpy/native/cuda); data.py; history.py; textbook/ (the
textbook NeuralNetMLP and its drop-in); sklearn/ (scikit-learn's MLPClassifier and
MLPRegressor, trained by the engine); apps/ (the command line, benchmarks, experiments).
"""
import sys

from ._version import __version__
from .backends import available_backends, backend_names, get_backend
from .data import DataError, load_mnist, load_mnist_sample
from .errors import ModelFileError, TrainingDiverged
from .history import History
from .model import MLP
from .textbook import reference
from .textbook.dropin import NeuralNetMLP

# `import engine.reference` and `from engine.reference import ...` keep working
sys.modules[__name__ + ".reference"] = reference

_SKLEARN_NAMES = ("MLPClassifier", "MLPRegressor")


def __getattr__(name):
    """engine.MLPClassifier and engine.MLPRegressor: the scikit-learn drop-ins, imported on
    first use (scikit-learn is an optional extra and slow to import)."""
    if name in _SKLEARN_NAMES:
        from . import sklearn as drop_in       # ImportError naming the extra when absent
        return getattr(drop_in, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["MLP", "History", "NeuralNetMLP", "reference", "load_mnist", "load_mnist_sample",
           "DataError", "ModelFileError", "TrainingDiverged", "get_backend", "available_backends", "backend_names", "__version__"]
