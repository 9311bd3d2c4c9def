"""The model file format: a portable .npz of the weights, biases and a JSON metadata blob,
written atomically and read without pickle."""
from __future__ import annotations

import io
import json

import numpy as np

from .io import atomic_write_bytes

FORMAT_VERSION = 1


def save_model(model, path):
    """Write `model` (an MLP) to path: arrays W0.., b0.. and `meta`."""
    arrays = {"meta": np.frombuffer(json.dumps(model._meta()).encode(), dtype=np.uint8)}
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_model(path):
    """(meta dict, weights, biases) of a file written by save_model."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(bytes(f["meta"]).decode())
            n = len(meta["layer_sizes"]) - 1
            weights = [f[f"W{l}"] for l in range(n)]
            biases = [f[f"b{l}"] for l in range(n)]
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a model saved by engine.MLP.save ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {meta.get('format_version')!r}; "
                         f"this engine reads version {FORMAT_VERSION}")
    return meta, weights, biases
