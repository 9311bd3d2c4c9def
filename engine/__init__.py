"""engine: a multilayer-perceptron training engine with NumPy, native CPU and CUDA backends.

    import engine
    X, y, Xt, yt = engine.load_mnist()
    model = engine.MLP([784, 100, 10], "sigmoid", "softmax", "cross_entropy")
    history = model.fit(X, y, epochs=10, validation_data=(Xt, yt))
"""
__version__ = "0.1.0"

from . import reference  # noqa: E402
from .backends import available_backends, backend_names, get_backend  # noqa: E402
from .data import DataError, load_mnist, load_mnist_sample  # noqa: E402
from .dropin import NeuralNetMLP  # noqa: E402
from .history import History  # noqa: E402
from .model import MLP  # noqa: E402

__all__ = ["MLP", "History", "NeuralNetMLP", "reference", "load_mnist", "load_mnist_sample",
           "DataError", "get_backend", "available_backends", "backend_names", "__version__"]
