"""Whole-data-set passes of a trained MLP: loss and accuracy, predictions, and the
per-layer diagnostics (dead and saturated units) gathered along the way."""
from __future__ import annotations

import numpy as np

# rows per forward pass when evaluating whole data sets: as many as keep each layer's
# outputs within EVAL_ELEMENTS numbers, from EVAL_CHUNK to EVAL_MAX_CHUNK (fewer, larger
# passes: 30 bf16 lecture epochs 3.4 -> 3.1 s)
EVAL_CHUNK = 2000
EVAL_MAX_CHUNK = 16384
EVAL_ELEMENTS = 1 << 21


def forward_chunks(model, Xb, bf16=False):
    """Yield (start, stop, workspace, output activations per layer) over row chunks of the
    backend array Xb; bf16: the products on bf16 operands (a bf16-mixed fit's own scores)."""
    be, net = model.backend, model.state.net
    n = Xb.shape[0]
    rows_fit = EVAL_ELEMENTS // max(1, sum(model.layer_sizes[1:]))
    # a power of two for small sets: predictions on many batch sizes share a few workspaces
    chunk = min(max(EVAL_CHUNK, rows_fit), EVAL_MAX_CHUNK, 1 << max(0, n - 1).bit_length())
    ws = model.state.workspace(chunk, "eval")
    # the training rows already in bf16 (packed for the fit's epochs): the same products,
    # half the bytes to read; other rows (validation data, scored every epoch) packed
    # once, into the evaluation workspace, which the fit's end clears (where the backend
    # keeps a bf16 form of rows: Backend.bf16_rows)
    rows = model.state.data_copy(Xb) if bf16 else None
    if bf16 and rows is None:
        rows = ws.copy_of(Xb, be.bf16_rows)
    rows = Xb if rows is None else rows
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        acts = [a[:stop - start] for a in ws.a]
        be.forward(net, rows[start:stop], acts, bf16=bf16)
        yield start, stop, ws, acts


def evaluate(model, Xb, yb, stats=None, weights=None, bf16=False):
    """(mean loss, accuracy) over a whole data set held in backend arrays; with per-row
    weights (a NumPy array), their weighted means; bf16: the forward products in bf16-mixed
    precision, as a bf16-mixed fit scores its epochs (Lightning's validation under autocast
    does the same); the model's own evaluate and predict stay in its dtype.

    With `stats` (a dict), also records each hidden layer's dead-unit and saturated-
    activation fractions over the pass."""
    be, net = model.backend, model.state.net
    n = Xb.shape[0]
    total_loss, correct = 0.0, 0
    total_weight = n if weights is None else float(np.sum(weights, dtype=np.float64))
    n_hidden = len(net.weights) - 1
    # class numbers as given: no argmax over one-hot rows to find them again
    labels = be.to_numpy(yb) if len(yb.shape) == 1 and model.target_kind == "labels" \
        else None
    dead = [None] * n_hidden
    saturated = np.zeros(n_hidden)
    for start, stop, ws, acts in forward_chunks(model, Xb, bf16):
        m = stop - start
        idx = be.asarray(np.arange(start, stop))
        be.gather_(Xb, yb, idx, None, ws.t[:m])       # the targets only
        if weights is None:
            total_loss += be.loss(acts[-1], ws.t[:m], net.output, net.loss) * m
            correct += _correct(model.target_kind, be.to_numpy(acts[-1]),
                                be.to_numpy(ws.t[:m]) if labels is None else
                                labels[start:stop])
        else:
            w = weights[start:stop]
            chunk_weight = float(np.sum(w, dtype=np.float64))
            if chunk_weight > 0:
                total_loss += be.loss(acts[-1], ws.t[:m], net.output, net.loss,
                                      be.asarray(w)) * chunk_weight
            correct += _correct(model.target_kind, be.to_numpy(acts[-1]),
                                be.to_numpy(ws.t[:m]) if labels is None else
                                labels[start:stop], w)
        if stats is not None:
            for l in range(n_hidden):
                is_dead = be.to_numpy(be.alive_units(acts[l])) == 0
                dead[l] = is_dead if dead[l] is None else dead[l] & is_dead
                saturated[l] += be.saturated_count(acts[l], net.activations[l])
    if stats is not None:
        sizes = model.layer_sizes
        stats["dead_fraction"] = [
            float(np.mean(dead[l])) if net.activations[l] == "relu" else float("nan")
            for l in range(n_hidden)] + [float("nan")]
        stats["saturated_fraction"] = [
            float(saturated[l] / (n * sizes[l + 1]))
            if net.activations[l] in ("sigmoid", "tanh") else float("nan")
            for l in range(n_hidden)] + [float("nan")]
    return total_loss / total_weight, correct / total_weight


def _correct(kind, out, t, weights=None):
    """Rows predicted right (their weights, with weights): the top class (labels: t one-hot
    rows or the class numbers), every label (indicators); nan for regression, where
    counting exact hits means nothing."""
    if kind == "labels":
        right = np.argmax(out, axis=1) == (np.argmax(t, axis=1) if t.ndim == 2 else t)
    elif kind == "indicators":
        right = np.all((out > 0.5) == (t > 0.5), axis=1)
    else:
        return float("nan")
    return int(np.sum(right)) if weights is None else float(np.sum(weights[right]))


def predict_proba(model, X):
    """Output activations of checked NumPy rows X, as a NumPy array."""
    out = np.empty((X.shape[0], model.layer_sizes[-1]), dtype=model.dtype)
    for start, stop, _, acts in forward_chunks(model, model.backend.asarray(X)):
        out[start:stop] = model.backend.to_numpy(acts[-1])
    return out
