# Which path forms a network's products: the epoch's own GEMM tiles or BLAS.

# Widest layer (units, inputs not counted) that gemm="auto" still trains with the tiles.
# Measured on 2 cores (AMD Zen 3, AVX2), float32: tiles ahead of BLAS at 256, 512 and 1024
# units (0.70 vs 0.82, 1.54 vs 1.87, 3.85 vs 3.98 s/epoch), behind at 2048 (3.00 vs 2.73).
TILES_MAX_WIDTH = 1024
GEMM_CHOICES = ("auto", "tiles", "blas")


def tiles_chosen(sizes, str gemm="auto"):
    """Whether a network of these widths trains and predicts with the tiles under `gemm`."""
    if gemm not in GEMM_CHOICES:
        raise ValueError(f"gemm must be 'auto', 'tiles' or 'blas'; got {gemm!r}")
    if gemm == "auto":
        return len(sizes) - 1 <= ENG_MAX_LAYERS and max(sizes[1:]) <= TILES_MAX_WIDTH
    return gemm == "tiles"
