"""Input validation at the API boundary: clear errors before any training step."""
from __future__ import annotations

import numbers

import numpy as np

from .backends.base import DTYPES, HIDDEN_ACTIVATIONS, LOSSES, OUTPUT_ACTIVATIONS
from .ops import PAIRS

# the output activations each loss is defined for
LOSS_OUTPUTS = {loss: tuple(out for out, of in PAIRS if of == loss) for loss in LOSSES}


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
    if output_activation not in LOSS_OUTPUTS[loss]:
        pairs = ", ".join(f"{o}+{l}" for l, outs in LOSS_OUTPUTS.items() for o in outs)
        raise ValueError(f"loss {loss!r} needs output_activation "
                         f"{' or '.join(map(repr, LOSS_OUTPUTS[loss]))}; got "
                         f"{output_activation!r} (supported pairs: {pairs})")


def _finite_as(a, dt, name):
    """a as a C-contiguous array of dtype dt whose values are all finite. A finite value
    too large for dt (float64's 1e39 in a float32 model) is told apart from NaN or inf."""
    with np.errstate(over="ignore"):          # the overflow is reported below, not warned
        out = np.ascontiguousarray(a, dtype=dt)
    if not np.isfinite(out).all():
        if a.dtype != out.dtype and np.isfinite(a).all():
            raise ValueError(f"{name} holds values beyond {out.dtype.name}'s range (largest "
                             f"magnitude {float(np.max(np.abs(a))):.4g}, the most "
                             f"{out.dtype.name} holds {float(np.finfo(out.dtype).max):.4g}): "
                             f"scale them, or use dtype='float64'")
        raise ValueError(f"{name} contains NaN or inf")
    return out


def features(X, n_features, dt, name="X"):
    """X as a C-contiguous 2-D array of dtype dt, after shape and finiteness checks."""
    if hasattr(X, "tocsr"):         # SciPy sparse: np.asarray would make a 0-d object array
        raise TypeError(f"{name} is a sparse matrix ({type(X).__name__}); MLP takes dense "
                        f"arrays: pass {name}.toarray(), or use engine.sklearn's estimators, "
                        f"which train on sparse X a block of rows at a time")
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
    X = _finite_as(X, dt, name)
    return X


def labels(y, n_samples, n_classes, name="y"):
    """Integer class labels as int64, each in [0, n_classes)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels of length {n_samples}; "
                         f"got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {n_samples} rows")
    if y.dtype.kind == "b":         # two classes as False/True
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class labels; got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} labels must lie in [0, {n_classes}) (the output layer's "
                         f"size); got values from {y.min()} to {y.max()}")
    return np.ascontiguousarray(y, dtype=np.int64)


def targets(y, n_samples, n_outputs, kind, dt, name="y", non_negative=False):
    """Real-valued targets ("values") or 0/1 indicators ("indicators") as a C-contiguous
    (n_samples, n_outputs) array of dtype dt; (n_samples,) is taken for one output."""
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got dtype {y.dtype}")
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    what = "0/1 indicators" if kind == "indicators" else "target values"
    if y.ndim != 2 or y.shape[1] != n_outputs:
        want = f"({n_samples}, {n_outputs})" + (f" or ({n_samples},)" if n_outputs == 1 else "")
        raise ValueError(f"{name} must hold {what} of shape {want} (one column per output "
                         f"unit); got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} rows but X has {n_samples}")
    y = _finite_as(y, dt, name)
    if kind == "indicators" and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 indicators for binary_cross_entropy (one "
                         f"column per label); got values other than 0 and 1")
    if non_negative and np.any(y < 0):
        raise ValueError(f"{name} must be >= 0 (counts) for the poisson loss; got a minimum "
                         f"of {y.min()}")
    return y


def sample_weight(w, n_samples, dt, name="sample_weight"):
    """Per-row weights as a C-contiguous (n_samples,) array of dtype dt: finite, >= 0, and
    not all zero; None stays None."""
    if w is None:
        return None
    w = np.asarray(w)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got dtype {w.dtype}")
    if w.shape != (n_samples,):
        raise ValueError(f"{name} must have shape ({n_samples},), one weight per row of X; "
                         f"got shape {w.shape}")
    w = _finite_as(w, dt, name)
    if np.any(w < 0):
        raise ValueError(f"{name} must be >= 0; got a minimum of {w.min()}")
    if not np.any(w > 0):
        raise ValueError(f"{name} is all zero: nothing would be learned")
    # a minibatch's loss and gradient are sums of w_i * (row terms), scaled by 1 / sum(w):
    # with sums near the dtype's limit the sums overflow (NumPy) or the scale underflows
    # to 0 (the native epoch took no step). The square root of the largest finite value
    # leaves the row terms that much room; the weighted means do not change with the scale.
    limit = float(np.sqrt(np.finfo(dt).max))
    total = float(np.sum(w, dtype=np.float64))
    if total > limit:
        raise ValueError(f"{name} sums to {total:.3g}, more than {np.dtype(dt).name} "
                         f"training can carry (at most {limit:.3g}); divide the weights by a "
                         f"common factor (the weighted means do not change)")
    return w
