"""Your own data for the command line: .npz (arrays X, y, optional X_test, y_test), a pair of
.npy files ("X.npy,y.npy"), or .csv (one row per sample, the target in --target COLUMN, a
header line optional). Every problem is a ValueError in one line that names the file."""
from __future__ import annotations

import csv
import os

import numpy as np

HELD_OUT = 0.1          # the share held out for testing when a file has no test arrays


def is_file_spec(spec):
    """Whether a --data value names files rather than a built-in data set."""
    return spec.endswith((".npz", ".npy", ".csv")) or "," in spec or os.path.exists(spec)


def load_features_and_target(spec, target=None, need_target=True):
    """(X, y, X_test, y_test) of a data file; the test arrays are None when the file has
    none. y is None when need_target is False and the file has no target."""
    if "," in spec and spec.split(",")[0].endswith(".npy"):
        paths = spec.split(",")
        if len(paths) != 2:
            raise ValueError(f"--data {spec!r}: a pair of .npy files is 'X.npy,y.npy'")
        X = _npy(paths[0])
        return X, _npy(paths[1]), None, None
    if not os.path.exists(spec):
        raise ValueError(f"--data {spec!r}: no such file")
    if spec.endswith(".npy"):
        if need_target:
            raise ValueError(f"--data {spec!r}: one .npy holds X only; give 'X.npy,y.npy'")
        return _npy(spec), None, None, None
    if spec.endswith(".npz"):
        return _npz(spec, need_target)
    if spec.endswith(".csv"):
        return (*_csv(spec, target, need_target), None, None)
    raise ValueError(f"--data {spec!r}: expected a .npz, .npy or .csv file, or 'X.npy,y.npy'")


def _npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a .npy array file ({exc})") from None


def _npz(path, need_target):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    if "X" not in arrays or (need_target and "y" not in arrays):
        raise ValueError(f"{path}: expected arrays 'X' and 'y' (and optionally 'X_test', "
                         f"'y_test'); it holds {sorted(arrays)}")
    has_test = "X_test" in arrays and "y_test" in arrays
    return (arrays["X"], arrays.get("y"), arrays["X_test"] if has_test else None,
            arrays["y_test"] if has_test else None)


def _csv(path, target, need_target):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    header = None
    try:
        [float(v) for v in rows[0]]
    except ValueError:
        header, rows = rows[0], rows[1:]
    if not rows:
        raise ValueError(f"{path}: a header line and no data")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError(f"{path}: rows of different lengths (expected {width} values each)")
    col = None
    if target is not None:
        if header is not None and target in header:
            col = header.index(target)
        else:
            try:
                col = int(target)
            except ValueError:
                raise ValueError(f"{path}: no column {target!r} (header: {header})") from None
            if not -width <= col < width:
                raise ValueError(f"{path}: column {col} is outside its {width} columns")
            col %= width
    elif need_target:
        raise ValueError(f"{path}: say which column is the target with --target NAME or "
                         f"--target INDEX")
    try:
        values = np.array([[float(v) for v in r] for r in rows])
    except ValueError as exc:
        raise ValueError(f"{path}: a value is not a number ({exc})") from None
    if col is None:
        return values, None
    X = np.delete(values, col, axis=1)
    y = values[:, col]
    if np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return X, y


def split_off_test(X, y, seed):
    """(X, y, X_test, y_test): HELD_OUT of the rows, drawn with `seed`, held out."""
    n = len(X)
    if n < 2:
        raise ValueError(f"the data has {n} row(s); it needs at least 2 to hold one out")
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(HELD_OUT * n)))
    test, train = order[:k], order[k:]
    return X[train], y[train], X[test], y[test]
