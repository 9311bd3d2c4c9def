/* The bf16-mixed training epoch (engine/precision.py says what it computes): per minibatch,
   the forward products, the back-propagation and the weight gradients on packed bfloat16
   operands (csrc/bf16.c's AVX512 or AMX product), everything else in float32 with the
   float kernels of csrc/elementwise.h, then the optimizer step on the float32 master
   weights and the bf16 copies of the weights packed again. One thread: AMX runs a core at
   ~1.5 TFLOP/s, and the packing, not the products, is where the time goes.

   Packed operands (bf16.h): A as rows of K padded to 32, B in pairs of k ("VNNI"),
   element (k, j) at [k / 2][j][k % 2]. Per layer l (n_in x n_out, W[o][i]):
     forward      Z_l  = A_{l-1} W_l^T      A: rows of A_{l-1} (X: pre-packed once per fit)
                                           B: W_l^T, packed after every step (wt[l])
     backprop     D_{l-1} = D_l W_l         A: rows of D_l;  B: W_l, packed after every step
     gradient     G_l  = D_l^T A_{l-1}      A: rows of D_l^T; B: A_{l-1} in pairs of rows */
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels.h"
#include "bf16.h"

/* The same packers with AVX512-BF16 conversions (vcvtne2ps2bf16 rounds to nearest even
   like to_bf16, but reads subnormal floats as zero: below 1.2e-38 the two differ). Both
   bf16 product paths run on CPUs that have these instructions. */
#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 10)
#define VEC_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* 32 floats from src (n of them valid) as 32 bf16 */
VEC_TARGET static inline __m512i cvt32(const float *src, int64_t n) {
    if (n <= 0) return _mm512_setzero_si512();
    __mmask16 lo = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    __mmask16 hi = n >= 32 ? 0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
    __m512 a = _mm512_maskz_loadu_ps(lo, src), b = _mm512_maskz_loadu_ps(hi, src + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

VEC_TARGET static void pack_rows_v(const float *src, int64_t rows, int64_t cols, int64_t ld,
                                   uint16_t *dst, int64_t rows_p, int64_t kp) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = 0; k < kp; k += 32)
            _mm512_storeu_si512(dst + i * A_LD(kp) + k, cvt32(src + i * ld + k, cols - k));
    memset(dst + rows * A_LD(kp), 0, (size_t)(rows_p - rows) * A_LD(kp) * sizeof *dst);
}

/* rows kk and kk + 1 of src, 16 columns at a time, interleaved into 16 pairs */
VEC_TARGET static void pairs_of_rows_v(const float *src, int64_t k, int64_t n, int64_t ld,
                                       uint16_t *dst, int64_t kp, int64_t np) {
    const __m512i mix = _mm512_set_epi16(
        47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
        39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    for (int64_t kk = 0; kk < kp; kk += 2) {
        uint16_t *d = dst + (kk / 2) * B_LD(np) * 2;
        for (int64_t j = 0; j < np; j += 16) {
            int64_t valid = n - j < 0 ? 0 : n - j;
            __m512i even = kk < k ? cvt32(src + kk * ld + j, valid < 16 ? valid : 16)
                                  : _mm512_setzero_si512();
            __m512i odd = kk + 1 < k ? cvt32(src + (kk + 1) * ld + j, valid < 16 ? valid : 16)
                                     : _mm512_setzero_si512();
            _mm512_storeu_si512(d + j * 2, _mm512_permutex2var_epi16(even, mix, odd));
        }
    }
}

/* pairs of bf16 rows rows[kk], rows[kk + 1] of the pre-packed X, interleaved */
VEC_TARGET static void pairs_of_bf16_rows_v(const uint16_t *src, const int64_t *rows,
                                            int64_t k, int64_t n, int64_t ld, uint16_t *dst,
                                            int64_t kp, int64_t np) {
    const __m512i mix = _mm512_set_epi16(
        47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
        39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    (void)n;                                      /* X rows are zero padded to ld >= np */
    for (int64_t kk = 0; kk < kp; kk += 2) {
        uint16_t *d = dst + (kk / 2) * B_LD(np) * 2;
        const uint16_t *e = kk < k ? src + rows[kk] * ld : NULL;
        const uint16_t *o = kk + 1 < k ? src + rows[kk + 1] * ld : NULL;
        for (int64_t j = 0; j < np; j += 16) {
            __m512i even = e ? _mm512_castsi256_si512(_mm256_loadu_si256((const void *)(e + j)))
                             : _mm512_setzero_si512();
            __m512i odd = o ? _mm512_castsi256_si512(_mm256_loadu_si256((const void *)(o + j)))
                            : _mm512_setzero_si512();
            _mm512_storeu_si512(d + j * 2, _mm512_permutex2var_epi16(even, mix, odd));
        }
    }
}

/* rows r[0..15] (16 dwords each) transposed in place into columns: r[q][j] <- r[j][q].
   32-bit then 64-bit interleaves inside 128-bit lanes leave, in lane L of b[4i + c], rows
   4i..4i+3 of column 4L + c; two rounds of lane shuffles gather the four groups. */
VEC_TARGET static inline void transpose16(__m512i r[16]) {
    __m512i a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        b[4 * i + 0] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i e0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x44);
        __m512i e1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xEE);
        __m512i f0 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x44);
        __m512i f1 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(e0, f0, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(e0, f0, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(e1, f1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(e1, f1, 0xDD);
    }
}

/* W^T in pairs: 16 rows of W x 32 inputs become 16 x 16 pairs, transposed so that each
   packed row (one pair of inputs) is written 16 outputs at a time. Only the valid region
   is written: the padding was zeroed when the buffer was first packed (pairs_of_columns). */
VEC_TARGET static void pairs_of_columns_v(const float *w, int64_t k, int64_t n, uint16_t *dst,
                                          int64_t kp, int64_t np) {
    (void)kp;
    int *base = (int *)dst;                      /* one int per pair: [kk / 2][j] */
    __m512i r[16];
    for (int64_t j0 = 0; j0 < n; j0 += 16)
        for (int64_t kk = 0; kk < k; kk += 32) {
            for (int j = 0; j < 16; j++)
                r[j] = j0 + j < n ? cvt32(w + (j0 + j) * k + kk, k - kk)
                                  : _mm512_setzero_si512();
            transpose16(r);
            int64_t pairs = (k - kk + 1) / 2 < 16 ? (k - kk + 1) / 2 : 16;
            for (int64_t q = 0; q < pairs; q++)
                _mm512_storeu_si512(base + (kk / 2 + q) * B_LD(np) + j0, r[q]);
        }
}
#define HAVE_VEC_PACKERS 1
#else
#define HAVE_VEC_PACKERS 0

/* pairs of rows of the pre-packed X (bf16 rows, row stride ld): (kk, j) = X[rows[kk]][j] */
static void pairs_of_bf16_rows(const uint16_t *src, const int64_t *rows, int64_t k,
                               int64_t n, int64_t ld, uint16_t *dst, int64_t kp, int64_t np) {
    memset(dst, 0, (size_t)kp * B_LD(np) * sizeof *dst);
    for (int64_t kk = 0; kk < k; kk++) {
        uint16_t *d = dst + (kk / 2) * B_LD(np) * 2 + (kk & 1);
        const uint16_t *s = src + rows[kk] * ld;
        for (int64_t j = 0; j < n; j++) d[2 * j] = s[j];
    }
}
#endif

#if HAVE_VEC_PACKERS
#define PACK_ROWS pack_rows_v
#define PAIRS_OF_ROWS pairs_of_rows_v
#define PAIRS_OF_BF16_ROWS pairs_of_bf16_rows_v
#define PAIRS_OF_COLUMNS pairs_of_columns_v
#else
#define PACK_ROWS eng_bf16_pack_rows
#define PAIRS_OF_ROWS eng_bf16_pairs_of_rows
#define PAIRS_OF_BF16_ROWS pairs_of_bf16_rows
#define PAIRS_OF_COLUMNS eng_bf16_pairs_of_columns
#endif

int64_t eng_bf16_epoch(const eng_bf16_plan *p, const uint16_t *X, int64_t x_stride,
                       const int64_t *y, const float *T, const int64_t *order, int64_t count,
                       const eng_rule *rule, double alpha, double *losses) {
    const int L = p->n_layers, path = p->path;
    const int *s = p->sizes;
    const int64_t batch = p->batch, bp = round_up(batch, MPAD);
    if (path != ENG_BF16_AVX512 && path != ENG_BF16_AMX) return -2;
    if (!eng_bf16_supported(path)) return -2;
    /* scratch: the largest A, B and C operands of any product of a full minibatch */
    int64_t widest = 0;
    for (int l = 0; l <= L; l++) widest = s[l] > widest ? s[l] : widest;
    const int64_t wp = round_up(widest, 32), most = bp > wp ? bp : wp;
    /* a: rows x A_LD(k); b: k x B_LD(n) pairs, both with every dimension <= most */
    const int64_t ld = A_LD(most) > B_LD(most) ? A_LD(most) : B_LD(most);
    const int64_t big = most * ld;
    uint16_t *apack = alloc_lines((size_t)big * 2), *bpack = alloc_lines((size_t)big * 2);
    uint16_t *fwd[ENG_MAX_LAYERS], *bwd[ENG_MAX_LAYERS];   /* W^T and W, in pairs */
    int ok = apack && bpack;
    for (int l = 0; l < L; l++) {
        const int64_t ip = round_up(s[l], 32), op = round_up(s[l + 1], 32);
        fwd[l] = ok ? alloc_lines((size_t)ip * B_LD(op) * 2) : NULL;
        bwd[l] = ok && l > 0 ? alloc_lines((size_t)op * B_LD(ip) * 2) : NULL;
        ok = ok && fwd[l] && (l == 0 || bwd[l]);
        if (fwd[l]) eng_bf16_pairs_of_columns(p->W[l], s[l], s[l + 1], fwd[l], ip, op);
        if (bwd[l]) PAIRS_OF_ROWS(p->W[l], s[l + 1], s[l], s[l], bwd[l], op, ip);
    }
    int64_t done = 0;
    if (!ok) {
        done = -1;
        goto out;
    }
    const int64_t n_params = 2 * (int64_t)L;
    for (int64_t start = 0; start < count; start += batch, done++) {
        if (eng_stop_requested()) break;
        const int64_t m = count - start < batch ? count - start : batch, mp = round_up(m, MPAD);
        const int64_t *rows = order + start;
        const int c = s[L];
        /* targets: one-hot labels or target rows */
        if (T != NULL) {
            for (int64_t i = 0; i < m; i++)
                memcpy(p->t + i * c, T + rows[i] * c, (size_t)c * 4);
        } else {
            memset(p->t, 0, (size_t)m * c * 4);
            for (int64_t i = 0; i < m; i++) p->t[i * c + y[rows[i]]] = 1.0f;
        }
        /* forward */
        const int64_t kp0 = round_up(s[0], 32);
        for (int64_t i = 0; i < m; i++)
            memcpy(apack + i * A_LD(kp0), X + rows[i] * x_stride, (size_t)kp0 * 2);
        memset(apack + m * A_LD(kp0), 0, (size_t)(mp - m) * A_LD(kp0) * 2);
        for (int l = 0; l < L; l++) {
            const int64_t ip = round_up(s[l], 32), op = round_up(s[l + 1], 32);
            if (l > 0) PACK_ROWS(p->A[l - 1], m, s[l], s[l], apack, mp, ip);
            eng_bf16_product(path, apack, fwd[l], p->A[l], s[l + 1], m, s[l + 1], op, ip);
            eng_bias_act_f(p->A[l], p->B[l], m, s[l + 1], p->acts[l]);
        }
        double penalty = 0.0;
        if (alpha > 0) {
            for (int l = 0; l < L; l++)
                penalty += eng_sq_norm_f(p->W[l], (int64_t)s[l + 1] * s[l]);
            penalty *= 0.5 * alpha / (double)m;
        }
        losses[done] = eng_loss_f(p->A[L - 1], p->t, m, c, p->loss_kind, NULL) + penalty;
        eng_output_delta_f(p->A[L - 1], p->t, p->D[L - 1], m, c, p->loss_kind, NULL);
        /* backward */
        const int64_t kpm = round_up(m, 32);
        for (int l = L - 1; l >= 0; l--) {
            const int64_t ip = round_up(s[l], 32), op = round_up(s[l + 1], 32);
            eng_bf16_pack_cols(p->D[l], m, s[l + 1], apack, op, kpm);
            if (l == 0)
                PAIRS_OF_BF16_ROWS(X, rows, m, s[0], x_stride, bpack, kpm, ip);
            else
                PAIRS_OF_ROWS(p->A[l - 1], m, s[l], s[l], bpack, kpm, ip);
            eng_bf16_product(path, apack, bpack, p->GW[l], s[l], s[l + 1], s[l], ip, kpm);
            eng_bias_grad_f(p->D[l], p->GB[l], m, s[l + 1]);
            if (l > 0) {
                PACK_ROWS(p->D[l], m, s[l + 1], s[l + 1], apack, mp, op);
                eng_bf16_product(path, apack, bwd[l], p->D[l - 1], s[l], m, s[l], ip, op);
                eng_act_backward_f(p->D[l - 1], p->A[l - 1], m * (int64_t)s[l], p->acts[l - 1]);
            }
        }
        /* the step, weights then biases (as Backend.apply_gradients), then the bf16 copies */
        eng_rule r = *rule;
        r.t = rule->t + done + 1;
        for (int64_t i = 0; i < n_params; i++) {
            const int l = (int)(i % L), weight = i < L;
            float *param = weight ? p->W[l] : p->B[l];
            const float *grad = weight ? p->GW[l] : p->GB[l];
            int64_t len = weight ? (int64_t)s[l + 1] * s[l] : s[l + 1];
            eng_optimizer_step_f(param, grad, p->S1 ? p->S1[i] : NULL, p->S2 ? p->S2[i] : NULL,
                                 len, &r, weight ? alpha / (double)m : 0.0);
        }
        for (int l = 0; l < L; l++) {
            const int64_t ip = round_up(s[l], 32), op = round_up(s[l + 1], 32);
            PAIRS_OF_COLUMNS(p->W[l], s[l], s[l + 1], fwd[l], ip, op);
            if (l > 0) PAIRS_OF_ROWS(p->W[l], s[l + 1], s[l], s[l], bwd[l], op, ip);
        }
    }
out:
    for (int l = 0; l < L; l++) {
        free(fwd[l]);
        free(bwd[l]);
    }
    free(apack);
    free(bpack);
    return done;
}
