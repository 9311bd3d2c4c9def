/* The scalar side of bf16.c: rounding float32 to bfloat16 (round to nearest even, as
   to_bf16 in bf16.h), the portable packers (bf16.h says the layouts; the AVX512-BF16 ones
   are in csrc/bf16_pack_avx512.c) and gemm_bf16. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "bf16.h"

/* The loops below vectorize (to_bf16 is branch free); an AVX-512 and an AVX2 clone chosen
   at load time make them 2-4x faster than the baseline's SSE2: packing X or the operands
   of gemm_bf16 costs about as much as the AMX product itself otherwise. */
#if defined(__x86_64__) && !defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11 && \
    !defined(__SANITIZE_ADDRESS__)
#define CLONED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONED
#endif

CLONED void eng_bf16_round(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = from_bf16(to_bf16(x[i]));
}

CLONED void eng_bf16_rows(const float *src, int64_t rows, int64_t cols, uint16_t *dst,
                          int64_t width) {
    for (int64_t i = 0; i < rows; i++) {
        uint16_t *d = dst + i * width;
        const float *s = src + i * cols;
        for (int64_t k = 0; k < cols; k++) d[k] = to_bf16(s[k]);
        for (int64_t k = cols; k < width; k++) d[k] = 0;
    }
}

/* ------------------------------------------------- the portable packers (bf16.h's table) */
CLONED static void pack_rows(const float *src, int64_t rows, int64_t cols, int64_t ld,
                             uint16_t *dst, int64_t ldd, int64_t kp) {
    for (int64_t i = 0; i < rows; i++) {
        uint16_t *d = dst + i * ldd;
        const float *s = src + i * ld;
        for (int64_t k = 0; k < cols; k++) d[k] = to_bf16(s[k]);
        for (int64_t k = cols; k < kp; k++) d[k] = 0;
    }
}

CLONED static void pack_columns(const float *src, int64_t rows, int64_t cols, uint16_t *dst,
                                int64_t ldd, int64_t kp) {
    for (int64_t j = 0; j < cols; j++)
        for (int64_t k = rows; k < kp; k++) dst[j * ldd + k] = 0;
    for (int64_t k = 0; k < rows; k++)
        for (int64_t j = 0; j < cols; j++) dst[j * ldd + k] = to_bf16(src[k * cols + j]);
}

static inline uint32_t pair(uint16_t even, uint16_t odd) {
    return (uint32_t)even | (uint32_t)odd << 16;
}

CLONED static void pairs_of_rows(const float *src, int64_t k, int64_t n, int64_t ld,
                                 uint32_t *dst, int64_t ldd, int64_t kp) {
    for (int64_t kk = 0; kk < kp; kk += 2) {
        const float *e = kk < k ? src + kk * ld : NULL;
        const float *o = kk + 1 < k ? src + (kk + 1) * ld : NULL;
        uint32_t *d = dst + (kk / 2) * ldd;
        for (int64_t j = 0; j < n; j++)
            d[j] = pair(e ? to_bf16(e[j]) : 0, o ? to_bf16(o[j]) : 0);
        for (int64_t j = n; j < round_up(n, 16); j++) d[j] = 0;
    }
}

CLONED static void pairs_of_bf16_rows(const uint16_t *src, int64_t ld, int64_t k, int64_t n,
                                      uint32_t *dst, int64_t ldd, int64_t kp) {
    for (int64_t kk = 0; kk < kp; kk += 2) {
        const uint16_t *e = kk < k ? src + kk * ld : NULL;
        const uint16_t *o = kk + 1 < k ? src + (kk + 1) * ld : NULL;
        uint32_t *d = dst + (kk / 2) * ldd;
        for (int64_t j = 0; j < round_up(n, 16); j++) d[j] = pair(e ? e[j] : 0, o ? o[j] : 0);
    }
}

/* the pairs of W^T are neighbours in a row of W: each row of W becomes a column of pairs.
   16 rows at a time, a stretch of their inputs is rounded row by row (a loop that
   vectorizes) into `run`, whose 32-bit words are the pairs, then written 16 columns per
   packed row (converting and writing column by column took a tenth of a lecture epoch);
   only the columns [j0, j1) are written (the rest may be another thread's) */
#define PAIRS_PER_RUN 256
CLONED static void pairs_of_columns(const float *w, int64_t k, int64_t j0, int64_t j1,
                                    uint32_t *dst, int64_t ldd) {
    uint32_t run[16][PAIRS_PER_RUN];
    const int64_t pairs = (k + 1) / 2;
    for (int64_t jb = j0 / 16 * 16; jb < j1; jb += 16) {
        const int64_t lo = j0 > jb ? j0 - jb : 0, hi = j1 - jb < 16 ? j1 - jb : 16;
        for (int64_t q0 = 0; q0 < pairs; q0 += PAIRS_PER_RUN) {
            const int64_t nq = pairs - q0 < PAIRS_PER_RUN ? pairs - q0 : PAIRS_PER_RUN;
            const int64_t whole = q0 + nq <= k / 2 ? nq : nq - 1;  /* pairs of 2 inputs */
            for (int64_t j = lo; j < hi; j++) {
                const float *s = w + (jb + j) * k + 2 * q0;
                for (int64_t q = 0; q < whole; q++)
                    run[j][q] = pair(to_bf16(s[2 * q]), to_bf16(s[2 * q + 1]));
                if (whole < nq) run[j][whole] = to_bf16(s[2 * whole]);   /* k odd: the last */
            }
            for (int64_t q = 0; q < nq; q++)
                for (int64_t j = lo; j < hi; j++) dst[(q0 + q) * ldd + jb + j] = run[j][q];
        }
    }
}
#undef PAIRS_PER_RUN

const eng_bf16_packers eng_bf16_packers_portable = {
    pack_rows, pack_columns, pairs_of_rows, pairs_of_bf16_rows, pairs_of_columns};

/* ------------------------------------------------------- c = op(a) . op(b) on a path */
int eng_gemm_bf16(int path, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                  const float *a, const float *b, float *c) {
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) {
        memset(c, 0, (size_t)m * n * sizeof *c);
        return 0;
    }
    if (!eng_bf16_supported(path)) return -2;
    const int64_t mp = round_up(m, MPAD), np = round_up(n, NPAD), kp = round_up(k, KPAD);
    const eng_bf16_packers *pack = eng_bf16_packers_for(path);
    uint16_t *ap = alloc_lines((size_t)mp * A_LD(kp) * sizeof *ap);
    uint32_t *bv = alloc_lines((size_t)(kp / 2) * B_LD(np) * sizeof *bv);
    if (ap == NULL || bv == NULL) {
        free(ap);
        free(bv);
        return -1;
    }
    /* the padding the packers do not write: a's rows past m, b's pair rows past k */
    memset(ap + m * A_LD(kp), 0, (size_t)(mp - m) * A_LD(kp) * sizeof *ap);
    memset(bv, 0, (size_t)(kp / 2) * B_LD(np) * sizeof *bv);
    if (trans_a)                    /* a is k x m */
        pack->columns(a, k, m, ap, A_LD(kp), kp);
    else
        pack->rows(a, m, k, k, ap, A_LD(kp), kp);
    if (trans_b)                    /* b is n x k */
        pack->pairs_of_columns(b, k, 0, n, bv, B_LD(np));
    else
        pack->pairs_of_rows(b, k, n, n, bv, B_LD(np), kp);
    eng_bf16_product(path, ap, A_LD(kp), (const uint16_t *)bv, B_LD(np), c, n, m, n, kp);
    free(ap);
    free(bv);
    return 0;
}
