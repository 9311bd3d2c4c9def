/* One bf16 product kernel, for one path and SIMD variant (csrc/bf16_kernels.c includes this
   once per instance, with V, TARGET, VBYTES and MR set as instantiate.h sets them, and
   DOT_BF16 1 for vdpbf16ps, 0 for the portable path's float32 multiply-adds; with
   DOT_BF16, DPBF16(acc, x, y) is vdpbf16ps on 64-byte vectors, or its emulation).

   c (m x n) = a . b on the packed operands (bf16.h): a in bf16 rows, b in pairs of k. A
   block of MR rows of a is multiplied with every column block of b: 2 vectors of columns
   per row, so each pair of b loaded serves MR rows, and the MR x 2 sums stay in registers.
     portable  a bf16 value is the top half of a float32: the block's rows of a are widened
               once per stretch of k into a stage (per row, its even k then its odd k, so
               one pointer and constant offsets reach every row), b's pairs become floats
               by a 16-bit shift (even k) or a mask (odd k), and FMAs add them (exact
               products);
     DOT_BF16  vdpbf16ps takes a's pairs as they are, straight from a's rows: one per row
               and vector adds a pair's two products.
   k runs in stretches of KC_PAIRS pairs (the stage fits on the stack, a stretch of b in
   L2); the partial sums wait in c between stretches, exactly, so the sums are those of one
   pass over k, in order. */
typedef float VFN(fvec) __attribute__((vector_size(VBYTES)));
typedef uint32_t VFN(uvec) __attribute__((vector_size(VBYTES)));
#define LANES ((int64_t)(VBYTES / 4))
#if DOT_BF16
typedef uint32_t VFN(staged);                   /* what the block reads of a */
#else
typedef float VFN(staged);
#endif

/* A row of the sums to or from c: whole vectors straight, a last partial block of columns
   element by element (a conditional copy, which GCC does not turn into a memcpy call: a
   call per row of the lecture's last 4 outputs cost 5% of its epoch) */
TARGET ENG_INLINE void VFN(load_row)(const float *c, int64_t cols, int nv, VFN(fvec) *acc) {
    if (cols == nv * LANES) {
        for (int v = 0; v < nv; v++) memcpy(&acc[v], c + v * LANES, VBYTES);
    } else {
        float row[2 * LANES];
        for (int64_t k = 0; k < 2 * LANES; k++) row[k] = k < cols ? c[k] : 0.0f;
        for (int v = 0; v < nv; v++) memcpy(&acc[v], row + v * LANES, VBYTES);
    }
}
TARGET ENG_INLINE void VFN(store_row)(float *c, int64_t cols, int nv, const VFN(fvec) *acc) {
    if (cols == nv * LANES) {
        for (int v = 0; v < nv; v++) memcpy(c + v * LANES, &acc[v], VBYTES);
    } else {
        float row[2 * LANES];
        for (int v = 0; v < nv; v++) memcpy(row + v * LANES, &acc[v], VBYTES);
        for (int64_t k = 0; k < 2 * LANES; k++)
            if (k < cols) c[k] = row[k];
    }
}

/* c's block (rows x cols, the first `rows` of mr) (+)= a's rows times nv vectors of b's
   columns, over every pair of k in order, starting from zero or (more) from c. a's rows:
   for vdpbf16ps its pairs, st_ld pairs apart; for the portable path the stage. nv and mr
   (MR, MR / 2 or MR / 4 for a last block of few rows) are constants where this is inlined, so
   that the mr x nv sums stay in registers */
TARGET ENG_INLINE void VFN(block)(const VFN(staged) *st, int64_t st_ld, const uint32_t *b,
                                  int64_t ldb, int64_t pairs, int nv, int mr, float *c,
                                  int64_t ldc, int64_t rows, int64_t cols, int more) {
    VFN(fvec) acc[MR][2];
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) {
        acc[r][0] = acc[r][1] = (VFN(fvec)){0};
        if (more && r < rows) VFN(load_row)(c + r * ldc, cols, nv, acc[r]);
    }
    for (int64_t q = 0; q < pairs; q++) {
        VFN(uvec) raw[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) memcpy(&raw[v], b + q * ldb + v * LANES, VBYTES);
        const VFN(staged) *sq = st + q;
#if DOT_BF16
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
            const VFN(uvec) pair = (VFN(uvec)){0} + sq[r * st_ld];
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) acc[r][v] = DPBF16(acc[r][v], pair, raw[v]);
        }
#else
        const VFN(uvec) odd_mask = (VFN(uvec)){0} + 0xffff0000u;
        VFN(fvec) even[2], odd[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            even[v] = (VFN(fvec))(raw[v] << 16);
            odd[v] = (VFN(fvec))(raw[v] & odd_mask);
        }
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) {
                acc[r][v] += sq[r * 2 * KC_PAIRS] * even[v];
                acc[r][v] += sq[r * 2 * KC_PAIRS + KC_PAIRS] * odd[v];
            }
#endif
    }
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++)
        if (r < rows) VFN(store_row)(c + r * ldc, cols, nv, acc[r]);
}

#if !DOT_BF16
/* rows [i0, i0 + rows) of a, pairs [q0, q0 + pairs), widened into the stage: per row, its
   even values of the stretch then its odd ones, KC_PAIRS apart (zeros past the rows); a
   row at a time, so the loop vectorizes */
TARGET ENG_INLINE void VFN(stage)(const uint16_t *a, int64_t lda, int64_t i0, int64_t rows,
                                  int64_t q0, int64_t pairs, float *st) {
    for (int r = 0; r < MR; r++) {
        float *even = st + r * 2 * KC_PAIRS, *odd = even + KC_PAIRS;
        if (r >= rows) {
            memset(even, 0, 2 * KC_PAIRS * sizeof(float));
            continue;
        }
        const uint32_t *ar = (const uint32_t *)(const void *)(a + (i0 + r) * lda) + q0;
        for (int64_t q = 0; q < pairs; q++) {
            const uint32_t e = ar[q] << 16, o = ar[q] & 0xffff0000u;
            memcpy(even + q, &e, 4);
            memcpy(odd + q, &o, 4);
        }
    }
}
#endif

/* The last n % 16 columns of c, when they are few (TAIL_MAX at most): as 16 whole lanes of
   a block they would cost as much as 16 columns (a fifth of the lecture's forward product
   for its last 4 outputs). Each is a dot product along k instead: the columns' pairs are
   gathered from b once per stretch, and 16 lanes (pair q in lane q % 16, the same lanes in
   every SIMD variant) sum a row's pairs against each; a row's 16 pairs are loaded once for
   all the tail's columns, and the lanes are added as a tree (halves, then quarters, ...)
   rather than as a chain of 16 dependent additions per row and column. */
#define TAIL_MAX 4
typedef float VFN(lanes16) __attribute__((vector_size(64)));
typedef float VFN(lanes8) __attribute__((vector_size(32)));
typedef uint32_t VFN(pairs16) __attribute__((vector_size(64)));
TARGET ENG_INLINE float VFN(lanes_sum)(const VFN(lanes16) *v) {
    VFN(lanes8) lo, hi;
    memcpy(&lo, v, sizeof lo);
    memcpy(&hi, (const char *)v + sizeof lo, sizeof hi);
    lo += hi;
    const float s4[4] = {lo[0] + lo[4], lo[1] + lo[5], lo[2] + lo[6], lo[3] + lo[7]};
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}
TARGET static void VFN(tail_columns)(const uint16_t *a, int64_t lda, const uint32_t *b,
                                     int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t j0,
                                     int64_t tail, int64_t kp) {
    uint32_t col[TAIL_MAX][KC_PAIRS];
    for (int64_t q0 = 0; q0 < kp / 2; q0 += KC_PAIRS) {
        const int64_t pairs = kp / 2 - q0 < KC_PAIRS ? kp / 2 - q0 : KC_PAIRS;
        const int64_t whole = pairs / 16 * 16;
        for (int64_t q = 0; q < round_up(pairs, 16); q++)
            for (int64_t t = 0; t < TAIL_MAX; t++)
                col[t][q] = q < pairs && t < tail ? b[(q0 + q) * ldb + j0 + t] : 0;
        for (int64_t i = 0; i < m; i++) {
            const uint32_t *ar = (const uint32_t *)(const void *)(a + i * lda) + q0;
            VFN(lanes16) acc[TAIL_MAX] = {{0}};
            for (int64_t q = 0; q < pairs; q += 16) {
                VFN(pairs16) x = {0};
                if (q < whole) {
                    memcpy(&x, ar + q, sizeof x);
                } else {            /* a's pairs past kp (K need only be even) are not read */
                    for (int64_t l = 0; l < pairs - q; l++) x[l] = ar[q + l];
                }
#pragma GCC unroll 4
                for (int t = 0; t < TAIL_MAX; t++) {
                    VFN(pairs16) y;
                    memcpy(&y, col[t] + q, sizeof y);
#if DOT_BF16
                    acc[t] = DPBF16(acc[t], x, y);
#else
                    const VFN(pairs16) odd = (VFN(pairs16)){0} + 0xffff0000u;
                    acc[t] += (VFN(lanes16))(x << 16) * (VFN(lanes16))(y << 16);
                    acc[t] += (VFN(lanes16))(x & odd) * (VFN(lanes16))(y & odd);
#endif
                }
            }
            for (int64_t t = 0; t < tail; t++) {
                const float part = VFN(lanes_sum)(&acc[t]);
                c[i * ldc + j0 + t] = q0 > 0 ? c[i * ldc + j0 + t] + part : part;
            }
        }
    }
}

TARGET static void VFN(kernel)(const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                               float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp) {
#if DOT_BF16
    /* vdpbf16ps takes a's pairs as they are: the block reads them from a's rows (at most
       MR past m, which the contract makes readable; their sums are not stored) */
    const int64_t st_ld = lda / 2;
#else
    VFN(staged) st[KC_PAIRS * 2 * MR];
    const int64_t st_ld = 0;                /* unused: the stage's layout is constant */
#endif
    const uint32_t *bp = (const uint32_t *)(const void *)b;
    const int64_t tail = n % 16 <= TAIL_MAX && n > 16 ? n % 16 : 0;
    if (tail > 0) {
        VFN(tail_columns)(a, lda, bp, ldb, c, ldc, m, n - tail, tail, kp);
        n -= tail;
    }
    for (int64_t q0 = 0; q0 < kp / 2; q0 += KC_PAIRS) {
        const int64_t pairs = kp / 2 - q0 < KC_PAIRS ? kp / 2 - q0 : KC_PAIRS;
        for (int64_t i0 = 0; i0 < m; i0 += MR) {
            const int64_t rows = m - i0 < MR ? m - i0 : MR;
#if DOT_BF16
            const VFN(staged) *st = (const uint32_t *)(const void *)(a + i0 * lda) + q0;
#else
            VFN(stage)(a, lda, i0, rows, q0, pairs, st);
#endif
            for (int64_t j = 0; j < n; j += 2 * LANES) {
                /* b's columns are readable up to round_up(n, 16): a second vector past n
                   only where 2 vectors span more than 16 columns */
                const int nv = 2 * LANES <= 16 || n - j > LANES ? 2 : 1;
                const int64_t cols = n - j < nv * LANES ? n - j : nv * LANES;
                float *cb = c + i0 * ldc + j;
                /* after the first stretch, the sums so far from c */
#define BLOCK(NV, ROWS) VFN(block)(st, st_ld, bp + q0 * ldb + j, ldb, pairs, NV, ROWS, cb, \
                                   ldc, rows, cols, q0 > 0)
                if (nv == 2 && rows > MR / 2)
                    BLOCK(2, MR);
                else if (nv == 2 && rows > MR / 4)
                    BLOCK(2, MR / 2);
                else if (nv == 2)
                    BLOCK(2, MR / 4);
                else if (rows > MR / 2)
                    BLOCK(1, MR);
                else
                    BLOCK(1, MR / 2);
#undef BLOCK
            }
        }
    }
}

#undef LANES
#undef TAIL_MAX
