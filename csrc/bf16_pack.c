/* The scalar side of bf16.c: rounding float32 to bfloat16 (round to nearest even, as
   to_bf16 in bf16.h) and the packers of gemm_bf16's operands (bf16.h says the layouts;
   the fused epoch has AVX512-BF16 packers of its own, csrc/bf16_epoch.c). */
#include <stdint.h>
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

/* ------------------------------------------------------- packing (bf16.h says the layouts) */
/* dst (rows_p x kp) = bf16 of src (rows x cols, row stride ld), zero padded */
CLONED void eng_bf16_pack_rows(const float *src, int64_t rows, int64_t cols, int64_t ld,
                        uint16_t *dst, int64_t rows_p, int64_t kp) {
    for (int64_t i = 0; i < rows; i++) {
        uint16_t *d = dst + i * A_LD(kp);
        const float *s = src + i * ld;
        for (int64_t k = 0; k < cols; k++) d[k] = to_bf16(s[k]);
        memset(d + cols, 0, (size_t)(kp - cols) * sizeof *d);
    }
    memset(dst + rows * A_LD(kp), 0, (size_t)(rows_p - rows) * A_LD(kp) * sizeof *dst);
}

/* dst (cols_p x kp) = bf16 of src^T (src: rows x cols): row j of dst is column j of src */
CLONED void eng_bf16_pack_cols(const float *src, int64_t rows, int64_t cols, uint16_t *dst,
                        int64_t cols_p, int64_t kp) {
    memset(dst, 0, (size_t)cols_p * A_LD(kp) * sizeof *dst);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * A_LD(kp) + i] = to_bf16(src[i * cols + j]);
}

/* dst (kp x np in pairs of k) = bf16 of src (k x n, row stride ld): (kk, j) = src[kk][j] */
CLONED void eng_bf16_pairs_of_rows(const float *src, int64_t k, int64_t n, int64_t ld,
                            uint16_t *dst, int64_t kp, int64_t np) {
    memset(dst, 0, (size_t)kp * B_LD(np) * sizeof *dst);
    for (int64_t kk = 0; kk < k; kk++) {
        uint16_t *d = dst + (kk / 2) * B_LD(np) * 2 + (kk & 1);
        const float *s = src + kk * ld;
        for (int64_t j = 0; j < n; j++) d[2 * j] = to_bf16(s[j]);
    }
}

/* dst (kp x np in pairs of k) = bf16 of W^T (W: n x k): (kk, j) = W[j][kk]; the pairs of
   W^T are neighbours in a row of W, so each row of W becomes one column of 32-bit pairs */
CLONED void eng_bf16_pairs_of_columns(const float *w, int64_t k, int64_t n, uint16_t *dst,
                               int64_t kp, int64_t np) {
    memset(dst, 0, (size_t)kp * B_LD(np) * sizeof *dst);
    for (int64_t j = 0; j < n; j++) {
        const float *s = w + j * k;
        for (int64_t kk = 0; kk < k; kk++)
            dst[(kk / 2) * B_LD(np) * 2 + j * 2 + (kk & 1)] = to_bf16(s[kk]);
    }
}
