# Which path forms a network's products: the epoch's own GEMM tiles or BLAS.

from math import isqrt

# The default widest layer (units, inputs not counted) that gemm="auto" still trains with the
# tiles, where no measurement of this machine is given (the native backend measures one:
# engine/backends/native_tuning.py). Measured on 2 cores (AMD Zen 3, AVX2), float32: tiles
# ahead of BLAS at 256, 512 and 1024 units (0.70 vs 0.82, 1.54 vs 1.87, 3.85 vs 3.98
# s/epoch), behind at 2048 (3.00 vs 2.73).
TILES_MAX_WIDTH = 1024
GEMM_CHOICES = ("auto", "tiles", "blas")


def tiles_chosen(sizes, str gemm="auto", max_width=None, max_inner_width=None):
    """Whether a network of these widths trains and predicts with the tiles under `gemm`;
    "auto" takes the tiles while no layer has more than max_width units and no layer fed
    by a hidden layer is wider than max_inner_width, as sqrt(n_in * n_out) (both default
    to TILES_MAX_WIDTH)."""
    if gemm not in GEMM_CHOICES:
        raise ValueError(f"gemm must be 'auto', 'tiles' or 'blas'; got {gemm!r}")
    if gemm == "auto":
        limit = TILES_MAX_WIDTH if max_width is None else max_width
        inner = TILES_MAX_WIDTH if max_inner_width is None else max_inner_width
        widest_inner = max((isqrt(a * b) for a, b in zip(sizes[1:-1], sizes[2:])), default=0)
        return (len(sizes) - 1 <= ENG_MAX_LAYERS and max(sizes[1:]) <= limit
                and widest_inner <= inner)
    return gemm == "tiles"
