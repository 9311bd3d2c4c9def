"""Input validation at the API boundary: clear errors before any training step."""
from __future__ import annotations

import numbers

import numpy as np

from .backends.base import DTYPES, HIDDEN_ACTIVATIONS, LOSSES, OUTPUT_ACTIVATIONS

# the output activation each loss is defined for
LOSS_OUTPUT = {"mse": "sigmoid", "cross_entropy": "softmax"}


def choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def dtype(value):
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64'; got {value!r}") from None
    if dt.name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dt.name!r}")
    return dt


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def non_negative_float(name, value, *, upper=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or value < 0 or (upper is not None and value >= upper):
        bound = f" and < {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be a finite number >= 0{bound}; got {value!r}")
    return float(value)


def layer_sizes(sizes):
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"layer_sizes must be a sequence of ints; got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least an input and an output size; got {sizes!r}")
    for s in sizes:
        positive_int("every entry of layer_sizes", s)
    return [int(s) for s in sizes]


def architecture(hidden_activation, output_activation, loss):
    choice("hidden_activation", hidden_activation, HIDDEN_ACTIVATIONS)
    choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
    choice("loss", loss, LOSSES)
    if LOSS_OUTPUT[loss] != output_activation:
        raise ValueError(f"loss {loss!r} needs output_activation={LOSS_OUTPUT[loss]!r}; "
                         f"got {output_activation!r} (supported pairs: sigmoid+mse, "
                         f"softmax+cross_entropy)")


def features(X, n_features, dt, name="X"):
    """X as a C-contiguous 2-D array of dtype dt, after shape and finiteness checks."""
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, {n_features}); got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} columns (the input layer's size); "
                         f"got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=dt)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf")
    return X


def labels(y, n_samples, n_classes, name="y"):
    """Integer class labels as int64, each in [0, n_classes)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels of length {n_samples}; "
                         f"got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {n_samples} rows")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class labels; got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} labels must lie in [0, {n_classes}) (the output layer's "
                         f"size); got values from {y.min()} to {y.max()}")
    return np.ascontiguousarray(y, dtype=np.int64)
