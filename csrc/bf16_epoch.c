/* The bf16-mixed training epoch (engine/precision.py says what it computes): per minibatch,
   the forward products, the back-propagation and the weight gradients on packed bfloat16
   operands (csrc/bf16.c's AVX512 or AMX kernel), everything else in float32 with the float
   kernels of csrc/elementwise.h, then the optimizer step on the float32 master weights and
   the bf16 copies of the weights packed again.

   Packed operands (bf16.h): A as rows of K padded to 32, B in pairs of k ("VNNI"),
   element (k, j) at [k / 2][j][k % 2]. Per layer l (n_in x n_out, W[o][i]):
     forward      Z_l  = A_{l-1} W_l^T      A: rows of A_{l-1} (X: rows gathered from the
                                           bf16 copy made once per fit); B: W_l^T (fwd[l])
     backprop     D_{l-1} = D_l W_l         A: rows of D_l;  B: W_l (bwd[l])
     gradient     G_l  = D_l^T A_{l-1}      A: rows of D_l^T (dt[l]); B: A_{l-1} in pairs of
                                           rows (pa[l])

   A team shares each minibatch in two phases, a barrier after each:
     rows      each thread takes its 32-row blocks of the minibatch through the forward
               pass, the loss terms, the output delta and the back-propagation, and packs
               its rows' share (columns k) of every dt[l] and pa[l];
     units     each thread takes its 16-unit blocks of every layer's outputs: those rows
               of G_l and W_l (stepped and packed into fwd[l] and bwd[l]) and biases.
   Every number is computed by one thread in a fixed order (a row of a product, a row of G,
   a bias's sum over rows, the loss summed row by row by thread 0), so the result does
   not depend on the number of threads. */
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"
#include "runtime.h"
#include "bf16.h"

/* A team only when a minibatch has at least this many multiply-adds (batch x the sum of
   n_in x n_out), unless the caller names one (plan->team): below it the barriers and the
   data the threads pass each other cost more than the second thread saves. Measured on
   the Xeon of the round-3 notes (2 threads, AMX): 784-100-10 b100 (7.9M) 0.073 s/epoch on
   one thread, 0.117 on two; 784-300-10 b100 (24M) 0.256 -> 0.205; 784-512-512-10 b128
   (84M) 0.654 -> 0.492. */
#define BF16_TEAM_MIN_MACS (1 << 24)
/* On the AVX512 path the products take several times longer than on the tiles, so a team
   pays sooner: on the same Xeon (vdpbf16ps forced) 784-64-10 b100 (5.1M) 0.139 -> 0.107
   s/epoch on two threads, 784-32-10 (2.5M) 0.075 -> 0.068 */
#define BF16_TEAM_MIN_MACS_AVX512 (1 << 22)

/* [*lo, *hi): thread t's share of n in whole blocks of `unit` (empty when nt > blocks) */
static void share(int64_t n, int64_t unit, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t blocks = (n + unit - 1) / unit;
    int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    *lo = b0 * unit < n ? b0 * unit : n;
    *hi = b1 * unit < n ? b1 * unit : n;
}

/* The packers convert with vcvtne2ps2bf16 (round to nearest even like to_bf16, but reading
   subnormal floats as zero: below 1.2e-38 the two differ). Both bf16 product paths run on
   CPUs that have it; elsewhere the fused epoch is not built and reports -2. */
#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 10)
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
   zero past `rows`), row j of the result at dst + j * ldd: 32 rows of src become 16 pairs
   per column, transposed 16 columns at a time */
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
            for (int64_t j = 0; j < 16 && j0 + j < cols; j++)
                _mm512_storeu_si512(dst + (j0 + j) * ldd + k0, r[j]);
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

/* B operand W^T (W: n x k) in pairs, for the outputs (columns) [j0, j1), j0 a multiple
   of 16: 16 rows of W x 32 inputs become 16 x 16 pairs, transposed so that each packed row
   (one pair of inputs) is written 16 outputs at a time */
VEC_TARGET static void pairs_of_columns(const float *w, int64_t k, int64_t j0, int64_t j1,
                                        uint32_t *dst, int64_t ldd) {
    __m512i r[16];
    for (int64_t jb = j0; jb < j1; jb += 16)
        for (int64_t kk = 0; kk < k; kk += 32) {
            for (int j = 0; j < 16; j++)
                r[j] = jb + j < j1 ? cvt32(w + (jb + j) * k + kk, k - kk)
                                   : _mm512_setzero_si512();
            transpose16(r);
            int64_t pairs = (k - kk + 1) / 2 < 16 ? (k - kk + 1) / 2 : 16;
            for (int64_t q = 0; q < pairs; q++)
                _mm512_storeu_si512(dst + (kk / 2 + q) * ldd + jb, r[q]);
        }
}

/* Everything the team shares: the plan and the packed operands (widths rounded: kp* to
   32 for K, n* to 16 for columns of B; ld* in bf16 for A operands, in pairs for B) */
typedef struct {
    const eng_bf16_plan *p;
    int64_t bp;                          /* batch rounded up to 32 */
    uint16_t *xa, *ar;                   /* gathered X rows; other A operands by rows */
    int64_t ldx, ldr;
    uint16_t *dt[ENG_MAX_LAYERS];        /* D_l^T: round_up(n_out, 16) rows of bp */
    uint32_t *pa[ENG_MAX_LAYERS];        /* A_{l-1} in pairs of rows: bp / 2 pair rows */
    uint32_t *fwd[ENG_MAX_LAYERS];       /* W_l^T: kp(n_in) / 2 pair rows */
    uint32_t *bwd[ENG_MAX_LAYERS];       /* W_l: kp(n_out) / 2 pair rows (l > 0) */
    int64_t ldd, lda[ENG_MAX_LAYERS + 1], ldf[ENG_MAX_LAYERS];
    double *row_loss;
} team_buffers;

static int64_t kp_of(int64_t n) { return round_up(n, 32); }

static void free_buffers(team_buffers *tb) {
    free(tb->xa);
    free(tb->ar);
    free(tb->row_loss);
    for (int l = 0; l < tb->p->n_layers; l++) {
        free(tb->dt[l]);
        free(tb->pa[l]);
        free(tb->fwd[l]);
        free(tb->bwd[l]);
    }
}

static void *zeroed(size_t bytes) {
    void *b = alloc_lines(bytes);
    if (b) memset(b, 0, (bytes + 63) / 64 * 64);
    return b;
}

static int alloc_buffers(team_buffers *tb, const eng_bf16_plan *p) {
    const int L = p->n_layers;
    const int *s = p->sizes;
    memset(tb, 0, sizeof *tb);
    tb->p = p;
    tb->bp = round_up(p->batch, 32);
    int64_t widest = 0;
    for (int l = 0; l <= L; l++) widest = s[l] > widest ? s[l] : widest;
    tb->ldx = A_LD(kp_of(s[0]));
    tb->ldr = A_LD(kp_of(widest));
    tb->ldd = A_LD(tb->bp);
    int ok = (tb->xa = zeroed((size_t)tb->bp * tb->ldx * 2)) != NULL &&
             (tb->ar = zeroed((size_t)tb->bp * tb->ldr * 2)) != NULL &&
             (tb->row_loss = zeroed((size_t)tb->bp * sizeof(double))) != NULL;
    for (int l = 0; l < L && ok; l++) {
        const int64_t n_in = s[l], n_out = s[l + 1];
        tb->lda[l] = B_LD(round_up(n_in, 16));       /* pairs per row of pa[l], bwd[l] */
        tb->ldf[l] = B_LD(round_up(n_out, 16));      /* of fwd[l] */
        ok = (tb->dt[l] = zeroed((size_t)round_up(n_out, 16) * tb->ldd * 2)) != NULL &&
             (tb->pa[l] = zeroed((size_t)(tb->bp / 2) * tb->lda[l] * 4)) != NULL &&
             (tb->fwd[l] = zeroed((size_t)(kp_of(n_in) / 2) * tb->ldf[l] * 4)) != NULL &&
             (l == 0 ||
              (tb->bwd[l] = zeroed((size_t)(kp_of(n_out) / 2) * tb->lda[l] * 4)) != NULL);
        if (ok) {
            pairs_of_columns(p->W[l], n_in, 0, n_out, tb->fwd[l], tb->ldf[l]);
            if (l > 0)
                pairs_of_rows(p->W[l], n_out, n_in, n_in, tb->bwd[l], tb->lda[l],
                              kp_of(n_out));
        }
    }
    return ok;
}

/* Phase 1 for rows [r0, r1) of a minibatch of m rows (rows: their indices in X) */
VEC_TARGET static void rows_phase(const team_buffers *tb, const uint16_t *X, int64_t x_stride,
                                  const int64_t *y, const float *T, const int64_t *rows,
                                  int64_t m, int64_t r0, int64_t r1) {
    const eng_bf16_plan *p = tb->p;
    const int L = p->n_layers, path = p->path, c = p->sizes[L];
    const int *s = p->sizes;
    const int64_t mt = r1 - r0;
    if (mt <= 0) return;
    for (int64_t i = r0; i < r1; i++) {
        memcpy(tb->xa + i * tb->ldx, X + rows[i] * x_stride, (size_t)kp_of(s[0]) * 2);
        if (T != NULL) {
            memcpy(p->t + i * c, T + rows[i] * c, (size_t)c * 4);
        } else {
            memset(p->t + i * c, 0, (size_t)c * 4);
            p->t[i * c + y[rows[i]]] = 1.0f;
        }
    }
    for (int l = 0; l < L; l++) {
        const uint16_t *a = tb->xa + r0 * tb->ldx;
        int64_t lda = tb->ldx;
        if (l > 0) {
            pack_rows(p->A[l - 1] + r0 * s[l], mt, s[l], s[l], tb->ar + r0 * tb->ldr, tb->ldr,
                      kp_of(s[l]));
            a = tb->ar + r0 * tb->ldr;
            lda = tb->ldr;
        }
        float *z = p->A[l] + r0 * s[l + 1];
        eng_bf16_kernel(path, a, lda, (const uint16_t *)tb->fwd[l], tb->ldf[l], z, s[l + 1],
                        mt, s[l + 1], kp_of(s[l]));
        eng_bias_act_f(z, p->B[l], mt, s[l + 1], p->acts[l],
                       p->SL != NULL && p->SL[l] != NULL ? p->SL[l] + r0 * s[l + 1] : NULL);
    }
    const float *out = p->A[L - 1] + r0 * c, *t = p->t + r0 * c;
    eng_row_losses_f(out, t, mt, c, p->loss_kind, tb->row_loss + r0);
    eng_output_delta_part_f(out, t, p->D[L - 1] + r0 * c, mt, c, p->loss_kind, (double)m);
    const int64_t kt = round_up(mt, 32);         /* this share's columns of dt, rows of pa */
    for (int l = L - 1; l >= 0; l--) {
        const float *d = p->D[l] + r0 * s[l + 1];
        pack_columns(d, mt, s[l + 1], tb->dt[l] + r0, tb->ldd, kt);
        if (l == 0)
            pairs_of_bf16_rows(tb->xa + r0 * tb->ldx, tb->ldx, mt, s[0],
                               tb->pa[0] + (r0 / 2) * tb->lda[0], tb->lda[0], kt);
        else
            pairs_of_rows(p->A[l - 1] + r0 * s[l], mt, s[l], s[l],
                          tb->pa[l] + (r0 / 2) * tb->lda[l], tb->lda[l], kt);
        if (l > 0) {
            pack_rows(d, mt, s[l + 1], s[l + 1], tb->ar + r0 * tb->ldr, tb->ldr,
                      kp_of(s[l + 1]));
            float *prev = p->D[l - 1] + r0 * s[l];
            eng_bf16_kernel(path, tb->ar + r0 * tb->ldr, tb->ldr, (const uint16_t *)tb->bwd[l],
                            tb->lda[l], prev, s[l], mt, s[l], kp_of(s[l + 1]));
            const float *slopes = p->SL != NULL ? p->SL[l - 1] : NULL;   /* ENG_SLOPE_OPS */
            eng_act_backward_f(prev, (slopes != NULL ? slopes : p->A[l - 1]) + r0 * s[l],
                               mt * (int64_t)s[l], p->acts[l - 1]);
        }
    }
}

/* Phase 2 for thread t of nt: its 16-unit blocks of every layer's outputs: their rows of
   the weight gradient and their bias gradients, the step of those weights and biases, and
   their packed copies (each thread writes whole rows of W, GW and the optimizer state) */
static void units_phase(const team_buffers *tb, const eng_rule *r, double alpha, int64_t m,
                        int t, int nt) {
    const eng_bf16_plan *p = tb->p;
    const int L = p->n_layers;
    const int *s = p->sizes;
    for (int l = 0; l < L; l++) {
        const int64_t n_in = s[l], n_out = s[l + 1];
        int64_t o0, o1;
        share(n_out, 16, t, nt, &o0, &o1);
        if (o1 <= o0) continue;
        const int64_t at = o0 * n_in, len = (o1 - o0) * n_in;
        eng_bf16_kernel(p->path, tb->dt[l] + o0 * tb->ldd, tb->ldd, (const uint16_t *)tb->pa[l],
                        tb->lda[l], p->GW[l] + at, n_in, o1 - o0, n_in, round_up(m, 32));
        eng_optimizer_step_f(p->W[l] + at, p->GW[l] + at, p->S1 ? p->S1[l] + at : NULL,
                             p->S2 ? p->S2[l] + at : NULL, len, r, alpha / (double)m);
        pairs_of_columns(p->W[l], n_in, o0, o1, tb->fwd[l], tb->ldf[l]);
        if (l > 0)              /* the last share also rewrites the zero pairs past n_out */
            pairs_of_rows(p->W[l] + at, o1 - o0, n_in, n_in, tb->bwd[l] + (o0 / 2) * tb->lda[l],
                          tb->lda[l], o1 == n_out ? kp_of(n_out) - o0 : o1 - o0);
        float *gb = p->GB[l];
        const float *d = p->D[l];
        for (int64_t j = o0; j < o1; j++) {
            float sum = 0;
            for (int64_t i = 0; i < m; i++) sum += d[i * n_out + j];
            gb[j] = sum;
        }
        eng_optimizer_step_f(p->B[l] + o0, gb + o0, p->S1 ? p->S1[L + l] + o0 : NULL,
                             p->S2 ? p->S2[L + l] + o0 : NULL, o1 - o0, r, 0.0);
    }
}

int64_t eng_bf16_epoch(const eng_bf16_plan *p, const uint16_t *X, int64_t x_stride,
                       const int64_t *y, const float *T, const int64_t *order, int64_t count,
                       const eng_rule *rule, double alpha, double *losses) {
    const int L = p->n_layers;
    const int *s = p->sizes;
    const int64_t batch = p->batch;
    if (p->path != ENG_BF16_AVX512 && p->path != ENG_BF16_AMX) return -2;
    if (!eng_bf16_supported(p->path)) return -2;
    team_buffers tb;
    if (!alloc_buffers(&tb, p)) {
        free_buffers(&tb);
        return -1;
    }
    int64_t work = 0;
    for (int l = 0; l < L; l++) work += (int64_t)s[l] * s[l + 1];
    /* set_epoch_threads caps the team; it does not ask for one where one is slower (the
       benchmarks' 2 threads made the lecture epoch 0.090 s instead of 0.070) */
    int threads = p->team > 0 ? p->team
                : batch * work >= (p->path == ENG_BF16_AMX ? BF16_TEAM_MIN_MACS
                                                           : BF16_TEAM_MIN_MACS_AVX512)
                ? eng_get_epoch_threads() : 1;
    threads = eng_team(threads);
    eng_barrier barrier;
    eng_barrier_init(&barrier, threads);
    int64_t done = 0;
    int stop = eng_stop_requested();
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        if (nt != barrier.n) {      /* OpenMP gave fewer threads than asked for */
            #pragma omp barrier
            if (t == 0) eng_barrier_init(&barrier, nt);
            #pragma omp barrier
        }
        int64_t i = 0;
        for (int64_t start = 0; start < count && !stop; start += batch, i++) {
            const int64_t m = count - start < batch ? count - start : batch;
            int64_t r0, r1;
            share(m, 32, t, nt, &r0, &r1);
            rows_phase(&tb, X, x_stride, y, T, order + start, m, r0, r1);
            double penalty = 0.0;
            if (t == 0 && alpha > 0) {        /* before any thread steps a weight */
                for (int l = 0; l < L; l++)
                    penalty += eng_sq_norm_f(p->W[l], (int64_t)s[l + 1] * s[l]);
                penalty *= 0.5 * alpha / (double)m;
            }
            eng_barrier_wait(&barrier);
            if (t == 0) {
                double acc = 0.0;
                for (int64_t k = 0; k < m; k++) acc += tb.row_loss[k];
                losses[i] = acc / eng_loss_divisor_f(p->loss_kind, (double)m, s[L]) + penalty;
            }
            eng_rule r = *rule;
            r.t = rule->t + i + 1;            /* Adam counts this minibatch's step */
            units_phase(&tb, &r, alpha, m, t, nt);
            if (t == 0) {
                done = i + 1;
                stop = eng_stop_requested();   /* read by all after the barrier below */
            }
            eng_barrier_wait(&barrier);
        }
    }
    free_buffers(&tb);
    return done;
}
#else
int64_t eng_bf16_epoch(const eng_bf16_plan *p, const uint16_t *X, int64_t x_stride,
                       const int64_t *y, const float *T, const int64_t *order, int64_t count,
                       const eng_rule *rule, double alpha, double *losses) {
    (void)p, (void)X, (void)x_stride, (void)y, (void)T, (void)order, (void)count, (void)rule,
        (void)alpha, (void)losses;
    return -2;
}
#endif
