"""Dropout's masks, drawn from counters (the arithmetic of csrc/runtime.h, in Python): the
same mask on every backend, thread count and SIMD variant, and none stored between the
forward and the backward pass.

A hidden unit j of row r (its place in the minibatch) of layer l is kept when
mix32(row key + j * 0x9E3779B1) >> 8 >= round(rate * 2^24), with row key = mix32(minibatch
key ^ (l << 24) ^ r), minibatch key = the 64-bit mix of (epoch key + minibatch number)
folded to 32 bits, epoch key = mix64(mix64(seed) ^ epoch). Kept units are scaled by
1 / (1 - rate) (inverted dropout), so prediction needs no dropout and no rescaling.
"""
from __future__ import annotations

import math

import numpy as np

MASK64 = (1 << 64) - 1


def mix64(z):
    """splitmix64's finalizer on a Python int (mod 2^64)."""
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def mix32(h):
    """murmur3's finalizer on a uint32 NumPy array (wrapping arithmetic)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def epoch_key(seed, epoch):
    """The key of one epoch's masks, from the model's seed and the epoch's number."""
    return mix64(mix64(int(seed)) ^ int(epoch))


def minibatch_key(epoch_key_, minibatch):
    k = mix64((epoch_key_ + int(minibatch)) & MASK64)
    return (k ^ (k >> 32)) & 0xFFFFFFFF


def threshold(rate):
    return int(math.floor(rate * 16777216.0 + 0.5))


def keep_mask(key, layer, row0, n, c, rate):
    """(n, c) booleans: which units of rows row0 .. row0 + n - 1 of hidden layer `layer`
    are kept in the minibatch whose key is `key`."""
    rows = np.arange(row0, row0 + n, dtype=np.uint32)
    row_keys = mix32(np.uint32(key) ^ np.uint32((layer << 24) & 0xFFFFFFFF) ^ rows)
    units = np.arange(c, dtype=np.uint32) * np.uint32(0x9E3779B1)
    bits = mix32(row_keys[:, None] + units[None, :]) >> np.uint32(8)
    return bits >= np.uint32(threshold(rate))


def rates(dropout, n_layers):
    """Per layer, its outputs' drop rate: `dropout` is one rate for every hidden layer or
    one per hidden layer; the output layer's is 0."""
    n_hidden = n_layers - 1
    if np.ndim(dropout) == 0:
        values = [dropout] * n_hidden
    else:
        values = list(dropout)
        if len(values) != n_hidden:
            raise ValueError(f"dropout must be one rate or one per hidden layer "
                             f"({n_hidden}); got {len(values)}")
    for r in values:
        if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)) \
                or not 0 <= r < 1:
            raise ValueError(f"dropout rates must lie in [0, 1); got {r!r}")
    return [float(r) for r in values] + [0.0]
