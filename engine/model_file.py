"""The model file format: a portable .npz of the weights, biases and a JSON metadata blob,
written atomically and read without pickle."""
from __future__ import annotations

import dataclasses
import io
import json

import numpy as np

from .io import atomic_write_bytes

# 1: weights, biases, metadata. 2: also the optimizer (its constants, step count, samples
# seen and state arrays: V<i> velocities or Adam's first moments, M<i> Adam's second
# moments, per parameter, weights first), the shuffle RNG's state and the row order the
# last epoch used ("order"), so that a loaded model trains on exactly as the saved one would.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def save_model(model, path):
    """Write `model` (an MLP) to path: arrays W0.., b0.., the optimizer state, and `meta`."""
    meta = model._meta()
    arrays = {}
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    opt = model._opt
    if opt["optimizer"] is not None:
        meta["optimizer"] = {"t": opt["t"], "samples": opt["samples"],
                             "epochs": opt.get("epochs", 0),
                             **dataclasses.asdict(opt["optimizer"])}
        net, be = model._net, model.backend
        for prefix, state in (("V", net.velocities), ("M", net.second_moments)):
            for i, a in enumerate(state or ()):
                arrays[f"{prefix}{i}"] = np.array(be.to_numpy(a))
    meta["shuffle_rng"] = model._shuffle_rng.bit_generator.state
    if getattr(model, "_order", None) is not None:
        arrays["order"] = model._order
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_model(path):
    """(meta dict, weights, biases, optimizer state arrays {"V": [...], "M": [...]}) of a file
    written by save_model (any readable format version)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(bytes(f["meta"]).decode())
            n = len(meta["layer_sizes"]) - 1
            weights = [f[f"W{l}"] for l in range(n)]
            biases = [f[f"b{l}"] for l in range(n)]
            state = {prefix: [f[f"{prefix}{i}"] for i in range(2 * n)]
                     for prefix in ("V", "M") if f"{prefix}0" in f.files}
            if "order" in f.files:
                state["order"] = f["order"]
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a model saved by engine.MLP.save ({exc})") from None
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ValueError(f"{path}: unsupported format_version {meta.get('format_version')!r}; "
                         f"this engine reads versions {READABLE_VERSIONS}")
    return meta, weights, biases, state


def restore_training_state(model, meta, state):
    """Put a loaded model's optimizer state and shuffle RNG back (format 2 and later)."""
    from .optimizers import Optimizer
    if "shuffle_rng" in meta:
        model._shuffle_rng.bit_generator.state = meta["shuffle_rng"]
    if "order" in state:
        order = np.asarray(state["order"], dtype=np.int64)
        if order.ndim != 1 or not np.array_equal(np.sort(order), np.arange(order.size)):
            raise ValueError("the model file's row order is not a permutation")
        model._order = np.ascontiguousarray(order)
    saved = meta.get("optimizer")
    if saved is None:
        return
    opt = Optimizer(**{k: saved[k] for k in ("name", "momentum", "nesterov", "beta_1",
                                             "beta_2", "epsilon")})
    st = model._optimizer_state(opt)
    st["t"], st["samples"] = int(saved["t"]), int(saved["samples"])
    st["epochs"] = int(saved.get("epochs", 0))
    net = model._net
    for prefix, arrays in (("V", net.velocities), ("M", net.second_moments)):
        for i, a in enumerate(arrays or ()):
            if prefix not in state:
                raise ValueError(f"the model file has no {prefix}<i> arrays, which its "
                                 f"{opt.name} optimizer needs")
            values = np.ascontiguousarray(state[prefix][i], dtype=net.dtype)
            if values.shape != tuple(a.shape):
                raise ValueError(f"the model file's {prefix}{i} has shape {values.shape}; "
                                 f"its parameter has {tuple(a.shape)}")
            if hasattr(a, "copy_to_device"):       # a device array
                a.copy_to_device(values)
            else:
                a[...] = values
