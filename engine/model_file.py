"""The model file format: a portable .npz of the weights, biases and a JSON metadata blob,
written atomically and read without pickle."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import warnings
import zipfile

import numpy as np

from .backends.base import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .errors import ModelFileError
from .io import atomic_write_bytes
from .optimizers import OPTIMIZERS

# 4: as 3, and the digest covers the metadata too (its canonical JSON without "sha256"):
# an edited activation, loss or epoch count fails the check like an edited weight.
# 3: as 2, and meta["sha256"], the SHA-256 of every other array's name, dtype, shape and
# bytes, in name order, checked at load.
# 1: weights, biases, metadata. 2: also the optimizer (its constants, step count, samples
# seen and state arrays: V<i> velocities or Adam's first moments, M<i> Adam's second
# moments, per parameter, weights first), the shuffle RNG's state and the row order the
# last epoch used ("order"), so that a loaded model trains on exactly as the saved one would.
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
# formats whose content no digest covers whole: loaded only with verify=False, and a warning
UNVERIFIED_VERSIONS = (1, 2, 3)
# most units per layer and weights in all that a model file may declare: a few-kilobyte file
# must not make load allocate gigabytes before it finds out that the arrays do not fit
MAX_LAYER_UNITS = 1 << 24
MAX_PARAMETERS = 1 << 31


class UnverifiedModelWarning(UserWarning):
    """A model file was loaded with verify=False: nothing guarantees its content."""


def _digest(arrays, meta=None):
    """SHA-256 over the arrays by name (name, dtype, shape, bytes), then (format 4) over
    the metadata's canonical JSON without its own "sha256" entry."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    if meta is not None:
        rest = {k: v for k, v in meta.items() if k != "sha256"}
        h.update(b"meta|" + json.dumps(rest, sort_keys=True, allow_nan=True).encode())
    return h.hexdigest()


# what a checkpoint's own arrays are named: early stopping's best weights, the distributed
# fit's row order of every rank, the history's long lists (minibatch losses)
CHECKPOINT_ARRAYS = ("best_", "shard_order", "history_")


def save_model(model, path, extra_meta=None, extra_arrays=None):
    """Write `model` (an MLP) to path: arrays W0.., b0.., the optimizer state, and `meta`;
    a checkpoint adds its own metadata and arrays (named as CHECKPOINT_ARRAYS)."""
    meta = model.metadata(**(extra_meta or {}))
    arrays = dict(extra_arrays or {})
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    opt = model.state.counters
    if opt["optimizer"] is not None:
        meta["optimizer"] = {"t": opt["t"], "samples": opt["samples"],
                             "epochs": opt.get("epochs", 0),
                             **dataclasses.asdict(opt["optimizer"])}
        net, be = model.state.net, model.backend
        for prefix, state in (("V", net.velocities), ("M", net.second_moments)):
            for i, a in enumerate(state or ()):
                arrays[f"{prefix}{i}"] = np.array(be.to_numpy(a))
    meta["shuffle_rng"] = model.state.rng.bit_generator.state
    if model.state.order is not None:
        arrays["order"] = model.state.order
    meta["sha256"] = _digest(arrays, meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_model(path, verify=True):
    """(meta dict, weights, biases, optimizer state arrays {"V": [...], "M": [...]}) of a file
    written by save_model. Every problem raises ModelFileError naming the file; no member
    may declare more bytes than the file holds (model files are written uncompressed, so a
    small file that unpacks into gigabytes is refused before it is unpacked), and shapes
    are checked against the metadata before any array is built from it. Format 4 files
    are checked against their digest, metadata included; older formats (no digest, or
    one that skips the metadata) are read only with verify=False, with a warning."""
    try:
        _check_member_sizes(path)
        # our own handle: np.load leaves its file open when the zip is cut off
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            if "meta" not in f.files:
                raise ModelFileError(f"{path}: no 'meta' entry; not a model saved by "
                                     f"engine.MLP.save")
            meta = json.loads(bytes(f["meta"]).decode())
            sizes = _check_meta(path, meta)
            if meta["format_version"] in UNVERIFIED_VERSIONS:
                if verify:
                    raise ModelFileError(
                        f"{path}: format {meta['format_version']} has no digest of its whole "
                        f"content, so nothing shows whether it was altered; if you trust the "
                        f"file, load it with MLP.load(path, verify=False) and save it again "
                        f"(format {FORMAT_VERSION})")
                warnings.warn(f"{path}: format {meta['format_version']} loaded without "
                              f"verification (verify=False)", UnverifiedModelWarning,
                              stacklevel=3)
            n = len(sizes) - 1
            names = [f"W{l}" for l in range(n)] + [f"b{l}" for l in range(n)]
            names += [f"{p}{i}" for p in ("V", "M") if f"{p}0" in f.files
                      for i in range(2 * n)] + (["order"] if "order" in f.files else [])
            names += sorted(k for k in f.files if k.startswith(CHECKPOINT_ARRAYS))
            missing = [k for k in names if k not in f.files]
            if missing:
                raise ModelFileError(f"{path}: missing arrays {missing}")
            arrays = {k: f[k] for k in names}
    except ModelFileError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (OSError, EOFError, KeyError, ValueError, TypeError, UnicodeDecodeError,
            RecursionError, zipfile.BadZipFile,
            # zipfile on damaged flag bits: "compression method is not supported" and
            # "File ... is encrypted, password required" (found by tests/test_properties.py)
            NotImplementedError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not a model saved by engine.MLP.save "
                             f"({_short(exc)})") from None
    for l in range(n):
        for name, want in ((f"W{l}", (sizes[l + 1], sizes[l])), (f"b{l}", (sizes[l + 1],))):
            if arrays[name].shape != want or arrays[name].dtype.kind != "f":
                raise ModelFileError(f"{path}: {name} has shape {arrays[name].shape} "
                                     f"({arrays[name].dtype}); the layer sizes need {want}")
    version = meta["format_version"]
    if version >= 3 and verify:
        want = _digest(arrays, meta if version >= 4 else None)
        if meta.get("sha256") != want:
            raise ModelFileError(f"{path}: the arrays and metadata do not match the checksum "
                                 f"stored with them (the file was altered or damaged)")
    _check_fields(path, meta)
    weights = [arrays[f"W{l}"] for l in range(n)]
    biases = [arrays[f"b{l}"] for l in range(n)]
    state = {p: [arrays[f"{p}{i}"] for i in range(2 * n)] for p in ("V", "M")
             if f"{p}0" in arrays}
    if "order" in arrays:
        state["order"] = arrays["order"]
    state["extra"] = {k: v for k, v in arrays.items() if k.startswith(CHECKPOINT_ARRAYS)}
    return meta, weights, biases, state


def _short(exc):
    """An exception in a few words: NumPy's advice about pickles is no help here."""
    text = str(exc)
    if "allow_pickle" in text or "pickled" in text:
        text = "it holds pickled objects, which a model file never does"
    return f"{type(exc).__name__}: {text}"


def _check_member_sizes(path):
    """ModelFileError when a member of the archive declares more uncompressed bytes than the
    whole file holds: save_model writes every member uncompressed, so only a forged or
    recompressed file does, and reading it could unpack gigabytes from a few kilobytes."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    if not zipfile.is_zipfile(path):
        return                       # np.load's own error says what the file is
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if info.file_size > size:
                raise ModelFileError(
                    f"{path}: member {info.filename!r} declares {info.file_size} bytes, more "
                    f"than the whole file ({size} bytes); model files are written "
                    f"uncompressed, so this one was forged or recompressed")


def _check_fields(path, meta):
    """ModelFileError naming the first metadata field whose value is out of its range."""
    def bad(field, value, expected):
        raise ModelFileError(f"{path}: metadata {field} = {value!r}; expected {expected}")

    def count(field, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            bad(field, value, "an integer >= 0")

    if meta["dtype"] not in ("float32", "float64"):
        bad("dtype", meta["dtype"], "'float32' or 'float64'")
    for key, allowed in (("hidden_activation", HIDDEN_ACTIVATIONS),
                         ("output_activation", OUTPUT_ACTIVATIONS)):
        if meta[key] not in allowed:
            bad(key, meta[key], f"one of {allowed}")
    if not (math.isfinite(meta["init_scale"]) and meta["init_scale"] >= 0):
        bad("init_scale", meta["init_scale"], "a finite number >= 0")
    if meta.get("precision") not in (None, "float32", "float64", "bf16-mixed"):
        bad("precision", meta.get("precision"), "'float32', 'float64' or 'bf16-mixed'")
    opt = meta.get("optimizer")
    if opt is not None:
        if not isinstance(opt, dict):
            bad("optimizer", opt, "an object")
        if opt.get("name") not in OPTIMIZERS:
            bad("optimizer.name", opt.get("name"), f"one of {OPTIMIZERS}")
        for key in ("t", "samples", "epochs"):
            count(f"optimizer.{key}", opt.get(key, 0))
    progress = meta.get("checkpoint")
    if progress is not None:
        if not isinstance(progress, dict):
            bad("checkpoint", progress, "an object")
        count("checkpoint.epochs_done", progress.get("epochs_done"))


def _check_meta(path, meta):
    """The layer sizes of well-formed metadata (ModelFileError otherwise)."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: the metadata is not a JSON object")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(f"{path}: unsupported format_version "
                             f"{meta.get('format_version')!r}; this engine reads versions "
                             f"{READABLE_VERSIONS}")
    for key, kind in (("layer_sizes", list), ("hidden_activation", str),
                      ("output_activation", str), ("loss", str), ("dtype", str),
                      ("seed", int), ("init", str), ("init_scale", (int, float))):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ModelFileError(f"{path}: metadata entry {key!r} is missing or not a "
                                 f"{kind.__name__ if isinstance(kind, type) else 'number'}")
    sizes = meta["layer_sizes"]
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool)
                                 and 0 < s <= MAX_LAYER_UNITS for s in sizes):
        raise ModelFileError(f"{path}: layer_sizes must be two or more sizes in [1, "
                             f"{MAX_LAYER_UNITS}]; got {sizes!r}")
    if sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])) > MAX_PARAMETERS:
        raise ModelFileError(f"{path}: layer_sizes {sizes} declare more than "
                             f"{MAX_PARAMETERS} parameters")
    return sizes


def restore_training_state(model, meta, state):
    """Put a loaded model's optimizer state and shuffle RNG back (format 2 and later)."""
    from .optimizers import Optimizer
    if "shuffle_rng" in meta:
        model.state.rng.bit_generator.state = meta["shuffle_rng"]
    if "order" in state:
        order = np.asarray(state["order"], dtype=np.int64)
        if order.ndim != 1 or not np.array_equal(np.sort(order), np.arange(order.size)):
            raise ModelFileError("the model file's row order is not a permutation")
        model.state.order = np.ascontiguousarray(order)
    saved = meta.get("optimizer")
    if saved is None:
        return
    opt = Optimizer(**{k: saved[k] for k in ("name", "momentum", "nesterov", "beta_1",
                                             "beta_2", "epsilon")})
    st = model.state.optimizer_state(opt)
    st["t"], st["samples"] = int(saved["t"]), int(saved["samples"])
    st["epochs"] = int(saved.get("epochs", 0))
    net = model.state.net
    for prefix, arrays in (("V", net.velocities), ("M", net.second_moments)):
        for i, a in enumerate(arrays or ()):
            if prefix not in state:
                raise ModelFileError(f"the model file has no {prefix}<i> arrays, which its "
                                     f"{opt.name} optimizer needs")
            values = np.ascontiguousarray(state[prefix][i], dtype=net.dtype)
            if values.shape != tuple(a.shape):
                raise ModelFileError(f"the model file's {prefix}{i} has shape "
                                     f"{values.shape}; its parameter has {tuple(a.shape)}")
            if hasattr(a, "copy_to_device"):       # a device array
                a.copy_to_device(values)
            else:
                a[...] = values
