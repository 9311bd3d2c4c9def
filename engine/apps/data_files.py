"""Your own data for the command line: .npz (arrays X, y, optional X_test, y_test), a pair of
.npy files ("X.npy,y.npy"), or .csv (one row per sample, the target in --target COLUMN, a
header line optional). Every problem is a ValueError in one line that names the file."""
from __future__ import annotations

import csv
import os
import zipfile

import numpy as np

HELD_OUT = 0.1          # the share held out for testing when a file has no test arrays


def is_file_spec(spec):
    """Whether a --data value names files rather than a built-in data set."""
    return spec.endswith((".npz", ".npy", ".csv")) or "," in spec or os.path.exists(spec)


def load_features_and_target(spec, target=None, need_target=True):
    """(X, y, X_test, y_test) of a data file; the test arrays are None when the file has
    none. y is None when need_target is False and the file has no target. X (and X_test)
    are 2-D, y (and y_test) have one entry or row per row of X; a column vector y is
    taken as 1-D."""
    X, y, X_test, y_test = _arrays(spec, target, need_target)
    for name, features, targets in (("X", X, y), ("X_test", X_test, y_test)):
        if features is None:
            continue
        if np.ndim(features) != 2:
            raise ValueError(f"{spec}: {name} must be 2-D (one row per sample, one column "
                             f"per feature); got shape {np.shape(features)}")
        if name == "X_test" and np.shape(features)[1] != np.shape(X)[1]:
            raise ValueError(f"{spec}: X_test has {np.shape(features)[1]} columns but X "
                             f"has {np.shape(X)[1]}")
        if targets is not None and len(targets) != len(features):
            raise ValueError(f"{spec}: {name} has {len(features)} rows but its targets "
                             f"(y{name[1:]}) have {len(targets)}")
    return X, _column(y), X_test, _column(y_test)


def _column(y):
    return y.reshape(-1) if y is not None and np.ndim(y) == 2 and np.shape(y)[1] == 1 else y


def _arrays(spec, target, need_target):
    if "," in spec and spec.split(",")[0].endswith(".npy"):
        paths = spec.split(",")
        if len(paths) != 2:
            raise ValueError(f"--data {spec!r}: a pair of .npy files is 'X.npy,y.npy'")
        X = _npy(paths[0])
        return X, _npy(paths[1]), None, None
    if not os.path.exists(spec):
        raise ValueError(f"{spec!r}: no such file")
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
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a .npy array file ({exc})") from None


def _npz(path, need_target):
    try:    # our own handle: np.load leaves its file open when the zip is cut off
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    if "X" not in arrays or (need_target and "y" not in arrays):
        raise ValueError(f"{path}: expected arrays 'X' and 'y' (and optionally 'X_test', "
                         f"'y_test'); it holds {sorted(arrays)}")
    has_test = "X_test" in arrays and "y_test" in arrays
    return (arrays["X"], arrays.get("y"), arrays["X_test"] if has_test else None,
            arrays["y_test"] if has_test else None)


def _csv(path, target, need_target):
    try:    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first name
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {exc.start} is not text); "
                         f"--data reads comma-separated values") from None
    try:    # commas, or the semicolons and tabs that some locales' spreadsheets write
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(text.splitlines(), dialect) if r]
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
    except ValueError:
        if col is not None:
            label = next((r[col] for r in rows if not _is_number(r[col])), None)
            if label is not None:
                raise ValueError(f"{path}: the target column {target!r} holds text "
                                 f"({label!r}): class labels must be the numbers 0..k-1 of "
                                 f"the classes; number them first") from None
        i, j = next((i, j) for i, r in enumerate(rows) for j, v in enumerate(r)
                    if not _is_number(v))
        name = repr(header[j]) if header is not None else j
        what = "is empty" if not rows[i][j].strip() else f"is {rows[i][j]!r}, not a number"
        raise ValueError(f"{path}: data row {i + 1}, column {name} {what}") from None
    if col is None:
        return values, None
    X = np.delete(values, col, axis=1)
    y = values[:, col]
    if np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return X, y


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def outputs_for(y, y_test, kind, spec, sizes_given=False):
    """The output layer's size for these targets: one unit per class of integer labels
    0..k-1 ("labels"), else one per target column. Refused: targets that are not whole
    numbers for a loss that wants labels, and, unless the layer sizes are given, labels
    that leave most of 0..max unused (a stray 1000000 among 0, 1, 2 would build a network
    with a million outputs)."""
    both = np.concatenate([np.asarray(y), np.asarray(y_test)]) if y_test is not None \
        else np.asarray(y)
    if both.dtype.kind not in "biuf":
        what = "text" if both.dtype.kind in "USO" else "values that are not real numbers"
        raise ValueError(f"{spec}: the target holds {what} ({both.dtype}): class labels must "
                         f"be the integers 0..k-1, other targets real numbers")
    if kind != "labels":
        return 1 if np.ndim(y) == 1 else int(np.shape(y)[1])
    if both.ndim == 1 and both.dtype.kind == "f":
        odd = both[both != np.round(both)]
        if odd.size:
            raise ValueError(f"{spec}: the target holds values that are not whole numbers "
                             f"(such as {odd[0]:g}); class labels must be the integers "
                             f"0..k-1. For real-valued targets (regression) train with "
                             f"--output-activation identity --loss mse")
    if both.ndim != 1:
        raise ValueError(f"{spec}: class labels are one column (one label per row); got "
                         f"shape {np.shape(y)}")
    if both.size == 0:
        return None       # the model's own check says what is wrong
    if both.min() < 0:
        raise ValueError(f"{spec}: class labels number the classes 0..k-1; got {both.min():g}")
    classes = int(both.max()) + 1
    distinct = np.unique(both)
    if classes > 2 and 2 * distinct.size < classes and not sizes_given:
        shown = ", ".join(str(int(v)) for v in distinct[:6]) + (", ..." if distinct.size > 6
                                                               else "")
        raise ValueError(f"{spec}: the class labels run up to {classes - 1} but only "
                         f"{distinct.size} distinct values occur ({shown}): labels number "
                         f"the classes 0..k-1, so this would be a {classes}-output network; "
                         f"number the classes 0..{distinct.size - 1}, or give --layers "
                         f"ending in {classes} to train that network anyway")
    return classes


def split_off_test(X, y, seed):
    """(X, y, X_test, y_test): HELD_OUT of the rows, drawn with `seed`, held out."""
    n = len(X)
    if n < 2:
        raise ValueError(f"the data has {n} row(s); it needs at least 2 to hold one out")
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(HELD_OUT * n)))
    test, train = order[:k], order[k:]
    return X[train], y[train], X[test], y[test]
