/* The packers of the AVX512-BF16 and AMX paths (bf16.h says the layouts and the table):
   they convert with vcvtne2ps2bf16, which rounds to nearest even like to_bf16 but reads
   subnormal floats as zero (below 1.2e-38 the two differ); both paths run on CPUs that
   have it. Where this is not an x86-64 build with GCC 10+, there is no table. */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "bf16.h"

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 10)
#include <immintrin.h>
#define VEC_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

static inline __mmask16 first(int64_t n) {
    return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* 32 floats from src (n of them valid) as 32 bf16 */
VEC_TARGET static inline __m512i cvt32(const float *src, int64_t n) {
    __m512 a = _mm512_maskz_loadu_ps(first(n), src);
    __m512 b = _mm512_maskz_loadu_ps(first(n - 16), src + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

/* 16 floats of two rows e and o (n valid, NULL: zeros) as 16 pairs (e[j], o[j]) */
VEC_TARGET static inline __m512i pairs16(const float *e, const float *o, int64_t n) {
    const __m512i mix = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
        23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 ev = e ? _mm512_maskz_loadu_ps(first(n), e) : _mm512_setzero_ps();
    __m512 ov = o ? _mm512_maskz_loadu_ps(first(n), o) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(mix, (__m512i)_mm512_cvtne2ps_pbh(ov, ev));
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

/* A operand: rows of src (rows x cols, row stride ld) as bf16 rows of kp, ldd apart */
VEC_TARGET static void pack_rows(const float *src, int64_t rows, int64_t cols, int64_t ld,
                                 uint16_t *dst, int64_t ldd, int64_t kp) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = 0; k < kp; k += 32)
            _mm512_storeu_si512(dst + i * ldd + k, cvt32(src + i * ld + k, cols - k));
}

/* A operand: src^T (src: rows x cols, contiguous) as bf16 rows of kp (k = the rows of src,
   zero past `rows`; kp even), row j of the result at dst + j * ldd: 32 rows of src become
   16 pairs per column, transposed 16 columns at a time */
VEC_TARGET static void pack_columns(const float *src, int64_t rows, int64_t cols,
                                    uint16_t *dst, int64_t ldd, int64_t kp) {
    __m512i r[16];
    for (int64_t k0 = 0; k0 < kp; k0 += 32)
        for (int64_t j0 = 0; j0 < cols; j0 += 16) {
            for (int q = 0; q < 16; q++) {
                int64_t e = k0 + 2 * q;
                r[q] = pairs16(e < rows ? src + e * cols + j0 : NULL,
                               e + 1 < rows ? src + (e + 1) * cols + j0 : NULL, cols - j0);
            }
            transpose16(r);
            /* exactly kp: the epoch's threads pack neighbouring stretches of k */
            const __mmask32 keep = kp - k0 >= 32 ? ~0u : (1u << (kp - k0)) - 1;
            for (int64_t j = 0; j < 16 && j0 + j < cols; j++)
                _mm512_mask_storeu_epi16(dst + (j0 + j) * ldd + k0, keep, r[j]);
        }
}

/* B operand: src (k x n, row stride ld) in pairs of rows, ldd pairs per packed row; kp rows
   (zero past k), round_up(n, 16) columns (zero past n) */
VEC_TARGET static void pairs_of_rows(const float *src, int64_t k, int64_t n, int64_t ld,
                                     uint32_t *dst, int64_t ldd, int64_t kp) {
    for (int64_t kk = 0; kk < kp; kk += 2) {
        const float *e = kk < k ? src + kk * ld : NULL;
        const float *o = kk + 1 < k ? src + (kk + 1) * ld : NULL;
        for (int64_t j = 0; j < n; j += 16)
            _mm512_storeu_si512(dst + (kk / 2) * ldd + j,
                                pairs16(e ? e + j : NULL, o ? o + j : NULL, n - j));
    }
}

/* B operand from bf16 rows (src: k rows of at least round_up(n, 16), ld apart) */
VEC_TARGET static void pairs_of_bf16_rows(const uint16_t *src, int64_t ld, int64_t k,
                                          int64_t n, uint32_t *dst, int64_t ldd, int64_t kp) {
    const __m512i mix = _mm512_set_epi16(
        47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
        39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    for (int64_t kk = 0; kk < kp; kk += 2) {
        const uint16_t *e = kk < k ? src + kk * ld : NULL;
        const uint16_t *o = kk + 1 < k ? src + (kk + 1) * ld : NULL;
        for (int64_t j = 0; j < n; j += 16) {
            __m512i ev = e ? _mm512_castsi256_si512(_mm256_loadu_si256((const void *)(e + j)))
                           : _mm512_setzero_si512();
            __m512i ov = o ? _mm512_castsi256_si512(_mm256_loadu_si256((const void *)(o + j)))
                           : _mm512_setzero_si512();
            _mm512_storeu_si512(dst + (kk / 2) * ldd + j,
                                _mm512_permutex2var_epi16(ev, mix, ov));
        }
    }
}

/* B operand W^T (W: n x k) in pairs, for the outputs (columns) [j0, j1): 16 rows of W x 32
   inputs become 16 x 16 pairs, transposed so that each packed row (one pair of inputs) is
   written 16 outputs at a time; lanes outside [j0, j1) (another thread's columns) are
   masked */
VEC_TARGET static void pairs_of_columns(const float *w, int64_t k, int64_t j0, int64_t j1,
                                        uint32_t *dst, int64_t ldd) {
    __m512i r[16];
    for (int64_t jb = j0 / 16 * 16; jb < j1; jb += 16) {
        const int64_t lo = j0 > jb ? j0 - jb : 0, hi = j1 - jb < 16 ? j1 - jb : 16;
        const __mmask16 lanes = (__mmask16)(first(hi) & ~first(lo));
        for (int64_t kk = 0; kk < k; kk += 32) {
            for (int j = 0; j < 16; j++)
                r[j] = j >= lo && j < hi ? cvt32(w + (jb + j) * k + kk, k - kk)
                                         : _mm512_setzero_si512();
            transpose16(r);
            int64_t pairs = (k - kk + 1) / 2 < 16 ? (k - kk + 1) / 2 : 16;
            for (int64_t q = 0; q < pairs; q++)
                _mm512_mask_storeu_epi32(dst + (kk / 2 + q) * ldd + jb, lanes, r[q]);
        }
    }
}

const eng_bf16_packers eng_bf16_packers_avx512 = {
    pack_rows, pack_columns, pairs_of_rows, pairs_of_bf16_rows, pairs_of_columns};
#else
const eng_bf16_packers eng_bf16_packers_avx512 = {NULL, NULL, NULL, NULL, NULL};
#endif
