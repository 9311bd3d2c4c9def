"""Training precision: "float32"/"float64" (the model's dtype throughout) or "bf16-mixed".

bf16-mixed, the NumPy specification the native paths are tested against: master weights,
biases and optimizer state stay float32; X enters the products rounded to bfloat16 (the
native epoch rounds it once per fit into a packed copy; here each product rounds it, which
gives the same numbers); the three products of a training step (forward Z = A W^T,
back-propagation D W, weight gradient D^T A) take operands rounded to bfloat16 and sum in float32; activations, losses, the
output delta, bias gradients and the optimizer step run in float32. The fit's per-epoch
scores take the forward products in bf16 too; `evaluate` and predictions use the float32
master weights in float32.

bfloat16 is float32's top 16 bits (8 exponent bits, 7 of mantissa). Rounding to nearest,
ties to even: add 0x7FFF plus the lowest kept bit, then clear the 16 low bits. The product
of two bfloat16 values is exact in float32 (8 + 8 significant bits <= 24), so only the
order of the float32 additions differs between implementations."""
from __future__ import annotations

import numpy as np

PRECISIONS = ("float32", "float64", "bf16-mixed")
BF16_MIXED = "bf16-mixed"


def round_bf16(x):
    """float32 x rounded to bfloat16 (nearest, ties to even), returned as float32; NaN
    stays NaN, values past bfloat16's range become inf."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) \
        & np.uint32(0xFFFF0000)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    rounded = np.where(nan, (u & np.uint32(0xFFFF0000)) | np.uint32(0x00400000), rounded)
    return rounded.astype(np.uint32).view(np.float32).reshape(np.shape(x))


# the smallest float32 magnitude that rounds to bfloat16's inf: halfway between the largest
# finite bfloat16 (0x7F7F, about 3.39e38) and inf, a tie that rounds up to the even inf
BF16_OVERFLOW = float(np.uint32(0x7F7F8000).view(np.float32))


def check_range(X, name="X"):
    """X (finite float32) unchanged if every value stays finite in bfloat16; else a
    ValueError, which the rounding's inf would otherwise turn into a diverged loss."""
    big = max(float(X.max()), -float(X.min())) if X.size else 0.0   # no |X| copy
    if big >= BF16_OVERFLOW:
        raise ValueError(f"{name} holds values beyond bfloat16's range (largest magnitude "
                         f"{big:.4g}; precision='bf16-mixed' rounds |x| >= "
                         f"{BF16_OVERFLOW:.4g} to inf): scale the features, or train in "
                         f"float32")
    return X


def check(precision, dtype):
    """The precision a model trains in: None means the dtype's own; bf16-mixed needs a
    float32 model (its master weights)."""
    dtype = np.dtype(dtype)
    if precision is None:
        return dtype.name
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} or None; got {precision!r}")
    if precision == BF16_MIXED and dtype != np.float32:
        raise ValueError(f"precision='bf16-mixed' keeps float32 master weights: it needs "
                         f"dtype='float32'; got dtype={dtype.name!r}")
    if precision != BF16_MIXED and precision != dtype.name:
        raise ValueError(f"precision={precision!r} does not match dtype={dtype.name!r}; "
                         f"leave precision out, or use 'bf16-mixed' with float32")
    return precision
