"""The NumPy backend: the executable specification of every kernel.

Every other backend is tested against these definitions. Keep them short and
obvious; speed is the other backends' business.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from .. import dropout, ops
from ..precision import round_bf16
from .base import batch_weight
from .host import HostBackend


def _softmax_(z):
    z -= z.max(axis=1, keepdims=True)      # exp never overflows
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)


def _exp_(z):            # the argument capped where the result still fits the dtype
    np.minimum(z, ops.EXP_CAP[z.dtype.name], out=z)
    np.exp(z, out=z)


# activation(z) in place, and delta *= activation'(z) written with the output a; for the
# activations of ops.KEEPS_SLOPE, activation'(z) written with z (SLOPES), which the forward
# pass keeps and the backward pass multiplies by (a is then that slope).
ACTIVATIONS = {
    "exp": _exp_,
    "identity": lambda z: None,
    "sigmoid": lambda z: expit(z, out=z),    # stable for any |z|
    "tanh": lambda z: np.tanh(z, out=z),
    "relu": lambda z: np.maximum(z, 0, out=z),
    "leaky_relu": lambda z: np.multiply(z, np.where(z > 0, 1, ops.LEAKY_SLOPE), out=z),
    "silu": lambda z: np.multiply(z, expit(z), out=z),
    "softmax": _softmax_,
}
SLOPES = {"silu": lambda z: expit(z) * (1 + z * (1 - expit(z)))}


def _mul_(delta, factor):
    delta *= factor


DERIVATIVES = {
    "identity": lambda d, a: None,
    "sigmoid": lambda d, a: _mul_(d, a * (1 - a)),
    "tanh": lambda d, a: _mul_(d, 1 - a * a),
    "relu": lambda d, a: _mul_(d, a > 0),
    "leaky_relu": lambda d, a: _mul_(d, np.where(a > 0, 1, ops.LEAKY_SLOPE).astype(a.dtype)),
    "silu": _mul_,
}


def _eps(a):
    return np.finfo(a.dtype).eps


def _xlogy(x, y):
    return np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))


def _clipped(a):
    return np.clip(a, _eps(a), 1 - _eps(a))


# dL/dz of the output layer; n rows (or the sum of their sample weights), c outputs. The 1/n
# lives here. Each is the gradient of its loss below.
OUTPUT_DELTAS = {
    ("sigmoid", "mse"): lambda a, t, n, c: (2.0 / (n * c)) * (a - t) * a * (1 - a),
    ("softmax", "cross_entropy"): lambda a, t, n, c: (a - t) / n,
    ("identity", "mse"): lambda a, t, n, c: (2.0 / (n * c)) * (a - t),
    ("sigmoid", "binary_cross_entropy"): lambda a, t, n, c: (a - t) / n,
    ("exp", "poisson"): lambda a, t, n, c: (a - t) / n,
    ("identity", "squared_error"): lambda a, t, n, c: (a - t) / n,   # c times the gradient
}

# Each row's loss term. The reported loss is their mean over the batch (with sample weights:
# sum(w_i row_i) / sum(w_i)), divided by the c outputs too for the mean squared errors.
# cross-entropy: -log p(label), p clipped at the dtype's eps; binary cross-entropy:
# -sum(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps] (as scikit-learn clips);
# poisson: sum(t log(t / a) - t + a), half the Poisson deviance (scikit-learn's form).
ROW_LOSSES = {
    "mse": lambda a, t: np.sum((a - t) ** 2, axis=1),
    "squared_error": lambda a, t: 0.5 * np.sum((a - t) ** 2, axis=1),
    "cross_entropy": lambda a, t: -np.sum(t * np.log(np.maximum(a, _eps(a))), axis=1),
    "binary_cross_entropy": lambda a, t: -np.sum(_xlogy(t, _clipped(a))
                                                 + _xlogy(1 - t, 1 - _clipped(a)), axis=1),
    "poisson": lambda a, t: np.sum(_xlogy(t, t) - _xlogy(t, np.maximum(a, np.finfo(
        a.dtype).tiny)) - t + a, axis=1),
}
PER_ELEMENT = ("mse", "squared_error")     # losses averaged over the outputs as well


class NumpyBackend(HostBackend):
    name = "numpy"

    @classmethod
    def availability(cls):
        return True, f"NumPy {np.__version__}"

    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if beta == 0.0:
            np.matmul(a, b, out=out)
            if alpha != 1.0:
                out *= alpha
        else:
            out *= beta
            out += alpha * (a @ b)

    def gemm_bf16(self, a, b, out, trans_a=False, trans_b=False):
        a, b = round_bf16(a), round_bf16(b)      # exact products; float32 sums
        np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)

    def bias_act_(self, z, bias, activation, slope=None):
        z += bias
        if slope is not None and activation in SLOPES:
            slope[...] = SLOPES[activation](z)
        ACTIVATIONS[activation](z)

    def act_backward_(self, delta, a, activation):
        DERIVATIVES[activation](delta, a)

    def output_delta(self, a, t, out, output, loss, weights=None):
        n, c = a.shape
        out[...] = OUTPUT_DELTAS[output, loss](a, t, batch_weight(weights, n), c)
        if weights is not None:
            out *= weights[:, None]

    def loss(self, a, t, output, loss, weights=None):
        rows = ROW_LOSSES[loss](a, t)
        total = float(np.sum(rows if weights is None else weights * rows))
        n = batch_weight(weights, a.shape[0])
        return total / (n * a.shape[1] if loss in PER_ELEMENT else n)

    def take_(self, values, index, out):
        np.take(values, index, out=out)

    def dropout_(self, a, rate, key, layer, row0=0):
        keep = dropout.keep_mask(key, layer, row0, a.shape[0], a.shape[1], rate)
        scale = a.dtype.type(1.0 / (1.0 - rate))
        a[...] = np.where(keep, a * scale, 0)

    def dropout_backward_(self, delta, a, activation, rate, key, layer, row0=0):
        keep = dropout.keep_mask(key, layer, row0, a.shape[0], a.shape[1], rate)
        scale = a.dtype.type(1.0 / (1.0 - rate))
        # the output before dropout (a kept slope was never scaled)
        u = a if activation in ops.KEEPS_SLOPE else a * (a.dtype.type(1) / scale)
        grad = np.ones_like(u)
        DERIVATIVES[activation](grad, u)
        delta[...] = np.where(keep, delta * scale * grad, 0)

    def bias_grad(self, delta, out):
        np.sum(delta, axis=0, out=out)

    def optimizer_step_(self, param, grad, state, rule, l2=0.0):
        g = grad + l2 * param if l2 else grad
        lr = rule.step_size()
        if rule.kind == "sgd":
            param -= lr * g
        elif rule.kind in ("momentum", "nesterov"):
            (v,) = state
            v *= rule.momentum
            v -= lr * g
            param += rule.momentum * v - lr * g if rule.kind == "nesterov" else v
        else:  # adam
            m1, m2 = state
            m1 *= rule.beta_1
            m1 += (1 - rule.beta_1) * g
            m2 *= rule.beta_2
            m2 += (1 - rule.beta_2) * (g * g)
            param -= lr * m1 / (np.sqrt(m2) + rule.epsilon)

    def gather_(self, X, y, index, x_out, t_out):
        if x_out is not None:
            np.take(X, index, axis=0, out=x_out)
        if y.ndim == 2:                      # target rows
            np.take(y, index, axis=0, out=t_out)
            return
        t_out[...] = 0
        t_out[np.arange(len(index)), y[index]] = 1

    def alive_units(self, a):
        return np.any(a > 0, axis=0).astype(np.uint8)

    def saturated_count(self, a, activation, threshold=0.95):
        if activation == "sigmoid":
            return int(np.count_nonzero(np.abs(2 * a - 1) > threshold))
        if activation == "tanh":
            return int(np.count_nonzero(np.abs(a) > threshold))
        return 0

    def sq_norm(self, x):
        return float(np.vdot(x, x))
