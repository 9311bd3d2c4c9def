/* The AMX kernel's one source, included once per instance (csrc/bf16.c: on the tiles;
   csrc/bf16_emulated.c: on tiles emulated in software, for the tests on CPUs without AMX)
   with these set:
     AMX_TARGET           the functions' target attribute
     AMX_NAME(x)          an instance's name for x
     TILE_START(), TILE_END()
                          take and hand back the thread's tiles (all eight 16 rows x 64 bytes)
     TILE_ZERO(t), TILE_LOAD(t, p, stride), TILE_STORE(t, p, stride), TILE_DP(c, a, b)
                          tilezero, tileloadd, tilestored, tdpbf16ps (strides in bytes)
   Packed operands as bf16.h says: a in bf16 rows of kp (a multiple of KPAD), b in pairs of
   k; the rows and columns of a last partial tile are read (the packed buffers are padded
   to whole tiles), never written. */
/* Tile t of c (rows i.., columns j..) into c: straight into c when the whole 16 x 16 tile
   is valid, else through a small buffer (a tile store writes all 16 rows and columns). */
#define STORE_TILE(t, i, j)                                                                 \
    do {                                                                                    \
        if ((i) + 16 <= m && (j) + 16 <= n) {                                               \
            TILE_STORE(t, c + (i) * ldc + (j), ldc * 4);                                    \
        } else if ((i) < m && (j) < n) {                                                    \
            TILE_STORE(t, edge, 64);                                                        \
            for (int64_t r = 0; r < 16 && (i) + r < m; r++)                                 \
                memcpy(c + ((i) + r) * ldc + (j), edge + r * 16,                            \
                       (size_t)((n - (j)) < 16 ? (n - (j)) : 16) * 4);                      \
        }                                                                                   \
    } while (0)

/* One 32 x 32 block of c (fewer where rows2 or cols2 is 0: a last block of 16 rows or
   columns) over k in [k0, k1): four 16 x 16 float32 accumulators (tiles 0-3), two 16 x 32
   bf16 tiles of a (4, 5) and two 16-pair x 16 tiles of b (6, 7) per step of 32 along k.
   The accumulators start at zero (acc NULL on the first stretch of k) or from acc (the
   block's sums so far, 32 floats per row), and end in acc, or in c after the last stretch.
   Called with constant rows2/cols2, so each of the four shapes compiles to its own loop. */
AMX_TARGET __attribute__((always_inline))
static inline void AMX_NAME(amx_block)(const uint16_t *a, int64_t lda, const uint16_t *b,
                                       int64_t ldb, float *c, int64_t ldc, int64_t i,
                                       int64_t j, int64_t m, int64_t n, int64_t k0,
                                       int64_t k1, float *acc, int first, int last,
                                       int rows2, int cols2, float *edge) {
    const size_t a_stride = (size_t)lda * 2, b_stride = (size_t)ldb * 4;
    if (first) {
        TILE_ZERO(0);
        if (cols2) TILE_ZERO(1);
        if (rows2) TILE_ZERO(2);
        if (rows2 && cols2) TILE_ZERO(3);
    } else {
        TILE_LOAD(0, acc, 128);
        if (cols2) TILE_LOAD(1, acc + 16, 128);
        if (rows2) TILE_LOAD(2, acc + 16 * 32, 128);
        if (rows2 && cols2) TILE_LOAD(3, acc + 16 * 32 + 16, 128);
    }
    for (int64_t k = k0; k < k1; k += 32) {
        TILE_LOAD(4, a + i * lda + k, a_stride);
        if (rows2) TILE_LOAD(5, a + (i + 16) * lda + k, a_stride);
        TILE_LOAD(6, b + (k / 2) * ldb * 2 + j * 2, b_stride);
        if (cols2) TILE_LOAD(7, b + (k / 2) * ldb * 2 + (j + 16) * 2, b_stride);
        TILE_DP(0, 4, 6);
        if (cols2) TILE_DP(1, 4, 7);
        if (rows2) TILE_DP(2, 5, 6);
        if (rows2 && cols2) TILE_DP(3, 5, 7);
    }
    if (last) {
        STORE_TILE(0, i, j);
        if (cols2) STORE_TILE(1, i, j + 16);
        if (rows2) STORE_TILE(2, i + 16, j);
        if (rows2 && cols2) STORE_TILE(3, i + 16, j + 16);
    } else {
        TILE_STORE(0, acc, 128);
        if (cols2) TILE_STORE(1, acc + 16, 128);
        if (rows2) TILE_STORE(2, acc + 16 * 32, 128);
        if (rows2 && cols2) TILE_STORE(3, acc + 16 * 32 + 16, 128);
    }
}

/* k per stretch: a 32-column panel of b over one stretch (32 x KC bf16, 16 KB) stays in L1
   while the row blocks of a pass; the partial sums wait in acc between stretches (float32
   stored and loaded exactly, so the sums are those of one unbroken pass) */
#define KC 256

/* c (m x n, row stride ldc) = a . b in 32 x 32 blocks */
AMX_TARGET
static void AMX_NAME(amx_kernel)(const uint16_t *a, int64_t lda, const uint16_t *b,
                                 int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n,
                                 int64_t kp) {
    float edge[256];
    float *sums = kp > KC ? alloc_lines((size_t)round_up(m, 32) * 32 * sizeof(float)) : NULL;
    const int64_t kc = sums != NULL ? KC : kp;       /* out of memory: one stretch */
    TILE_START();
    for (int64_t j = 0; j < n; j += 32) {
        const int cols2 = n - j > 16;
        for (int64_t k0 = 0; k0 < kp; k0 += kc) {
            const int64_t k1 = k0 + kc < kp ? k0 + kc : kp;
            const int first = k0 == 0, last = k1 == kp;
            for (int64_t i = 0; i < m; i += 32) {
                const int rows2 = m - i > 16;
                float *acc = sums != NULL ? sums + i * 32 : NULL;
#define BLOCK(R2, C2) AMX_NAME(amx_block)(a, lda, b, ldb, c, ldc, i, j, m, n, k0, k1, acc, \
                                         first, last, R2, C2, edge)
                if (rows2 && cols2)
                    BLOCK(1, 1);
                else if (rows2)
                    BLOCK(1, 0);
                else if (cols2)
                    BLOCK(0, 1);
                else
                    BLOCK(0, 0);
#undef BLOCK
            }
        }
    }
    TILE_END();
    free(sums);
}

#undef STORE_TILE
#undef KC
