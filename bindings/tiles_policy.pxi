# Which path forms a network's products: the epoch's own GEMM tiles or BLAS.

# The default widest layer (units, inputs not counted) that gemm="auto" still trains with the
# tiles, where no measurement of this machine is given (the native backend measures one:
# engine/backends/native_tuning.py). Measured on 2 cores (AMD Zen 3, AVX2), float32: tiles
# ahead of BLAS at 256, 512 and 1024 units (0.70 vs 0.82, 1.54 vs 1.87, 3.85 vs 3.98
# s/epoch), behind at 2048 (3.00 vs 2.73).
TILES_MAX_WIDTH = 1024
GEMM_CHOICES = ("auto", "tiles", "blas")


def tiles_chosen(sizes, str gemm="auto", max_width=None):
    """Whether a network of these widths trains and predicts with the tiles under `gemm`;
    "auto" takes the tiles up to max_width units (default TILES_MAX_WIDTH)."""
    if gemm not in GEMM_CHOICES:
        raise ValueError(f"gemm must be 'auto', 'tiles' or 'blas'; got {gemm!r}")
    if gemm == "auto":
        limit = TILES_MAX_WIDTH if max_width is None else max_width
        return len(sizes) - 1 <= ENG_MAX_LAYERS and max(sizes[1:]) <= limit
    return gemm == "tiles"
