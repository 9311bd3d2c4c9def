/* One SIMD variant of the portable path's product (csrc/bf16_portable.c includes this once
   per variant, with V, TARGET, VBYTES and MR set as instantiate.h sets them).

   c (m x n) = a . b on the packed operands of the other paths (bf16.h): a bf16 value is
   the top half of a float32, so a 16-bit shift (even k of a pair) or a mask (odd k) makes
   it a float, and float32 multiply-adds do the rest. A block of MR rows of a is widened
   once into `af`, ordered pair by pair (MR even values and MR odd values of one pair of k
   in one run), and multiplied with every column block of b: 2 vectors of columns per
   row, so each pair of b loaded and widened serves MR rows. k runs in stretches of
   KC_PAIRS pairs (af then fits on the stack and a stretch of b in L2); the partial sums
   wait in c between stretches, exactly, so the sums are those of one pass over k. */
typedef float VFN(fvec) __attribute__((vector_size(VBYTES)));
typedef uint32_t VFN(uvec) __attribute__((vector_size(VBYTES)));
#define LANES ((int64_t)(VBYTES / 4))

/* sums (MR rows of 2 vectors) += the rows of af times nv vectors of b's columns, over
   every pair of k in order; nv is a constant where this is inlined, so that the sums stay
   in registers */
ENG_INLINE void VFN(block)(const float *af, const uint32_t *b, int64_t ldb, int64_t pairs,
                           int nv, float sums[MR][2 * LANES]) {
    const VFN(uvec) odd_mask = (VFN(uvec)){0} + 0xffff0000u;
    VFN(fvec) acc[MR][2];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < nv; v++) memcpy(&acc[r][v], sums[r] + v * LANES, VBYTES);
    for (int64_t q = 0; q < pairs; q++) {
        VFN(fvec) even[2], odd[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            VFN(uvec) raw;
            memcpy(&raw, b + q * ldb + v * LANES, sizeof raw);
            even[v] = (VFN(fvec))(raw << 16);
            odd[v] = (VFN(fvec))(raw & odd_mask);
        }
        const float *aq = af + q * 2 * MR;
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) {
                acc[r][v] += aq[r] * even[v];
                acc[r][v] += aq[MR + r] * odd[v];
            }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < nv; v++) memcpy(sums[r] + v * LANES, &acc[r][v], VBYTES);
}

TARGET static void VFN(portable_kernel)(const uint16_t *a, int64_t lda, const uint16_t *b,
                                        int64_t ldb, float *c, int64_t ldc, int64_t m,
                                        int64_t n, int64_t kp) {
    float af[KC_PAIRS * 2 * MR];
    const uint32_t *bp = (const uint32_t *)(const void *)b;
    for (int64_t q0 = 0; q0 < kp / 2; q0 += KC_PAIRS) {
        const int64_t pairs = kp / 2 - q0 < KC_PAIRS ? kp / 2 - q0 : KC_PAIRS;
        for (int64_t i0 = 0; i0 < m; i0 += MR) {
            const int64_t rows = m - i0 < MR ? m - i0 : MR;
            for (int r = 0; r < MR; r++) {             /* zeros for the rows past m */
                const uint16_t *ar = a + (i0 + r) * lda + 2 * q0;
                for (int64_t q = 0; q < pairs; q++) {
                    af[q * 2 * MR + r] = r < rows ? from_bf16(ar[2 * q]) : 0.0f;
                    af[q * 2 * MR + MR + r] = r < rows ? from_bf16(ar[2 * q + 1]) : 0.0f;
                }
            }
            for (int64_t j = 0; j < n; j += 2 * LANES) {
                /* b's columns are readable up to round_up(n, 16): a second vector past n
                   only where 2 vectors span more than 16 columns */
                const int nv = 2 * LANES <= 16 || n - j > LANES ? 2 : 1;
                const int64_t cols = n - j < nv * LANES ? n - j : nv * LANES;
                float sums[MR][2 * LANES];
                memset(sums, 0, sizeof sums);
                if (q0 > 0)                                 /* the stretches before */
                    for (int64_t r = 0; r < rows; r++)
                        memcpy(sums[r], c + (i0 + r) * ldc + j, (size_t)cols * sizeof(float));
                if (nv == 2)
                    VFN(block)(af, bp + q0 * ldb + j, ldb, pairs, 2, sums);
                else
                    VFN(block)(af, bp + q0 * ldb + j, ldb, pairs, 1, sums);
                for (int64_t r = 0; r < rows; r++)
                    memcpy(c + (i0 + r) * ldc + j, sums[r], (size_t)cols * sizeof(float));
            }
        }
    }
}

#undef LANES
