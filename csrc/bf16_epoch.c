/* The bf16-mixed training epoch (engine/precision.py says what it computes): per minibatch,
   the forward products, the back-propagation and the weight gradients on packed bfloat16
   operands (the path's kernel: csrc/bf16.c, bf16_kernels.c), everything else in float32
   with the float kernels of csrc/elementwise.h, then the optimizer step on the float32
   master weights and the bf16 copies of the weights packed again.

   Packed operands (bf16.h): A as rows of K padded to 32, B in pairs of k ("VNNI"),
   element (k, j) at [k / 2][j][k % 2]. Per layer l (n_in x n_out, W[o][i]):
     forward      Z_l  = A_{l-1} W_l^T      A: rows of A_{l-1} (X: rows gathered from the
                                           bf16 copy made once per fit); B: W_l^T (fwd[l])
     backprop     D_{l-1} = D_l W_l         A: rows of D_l;  B: W_l (bwd[l])
     gradient     G_l  = D_l^T A_{l-1}      A: rows of D_l^T (dt[l]); B: A_{l-1} in pairs of
                                           rows (pa[l])

   A team shares each minibatch in two phases, a barrier after each:
     rows      each thread takes its share of the minibatch's rows (whole `unit`s: 16 on
               AMX, pairs otherwise) through the forward pass, the loss terms, the output
               delta and the back-propagation, and packs its rows' share (columns k) of
               every dt[l] and pa[l];
     units     each thread takes its share of every layer's outputs (units): those rows
               of G_l and W_l (stepped and packed into fwd[l] and bwd[l]) and biases.
   Every number is computed by one thread in a fixed order (a row of a product, a row of G,
   a bias's sum over rows, the loss summed row by row by thread 0), so the result does
   not depend on the number of threads. */
#include <stdlib.h>
#include <string.h>
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
/* On the AVX512 and portable paths the products take several times longer than on the
   tiles, so a team pays sooner: on the same Xeon (vdpbf16ps forced) 784-64-10 b100 (5.1M)
   0.139 -> 0.107 s/epoch on two threads, 784-32-10 (2.5M) 0.075 -> 0.068; on an AMD Zen 4
   (AVX512-BF16, register-blocked kernel) 784-32x6-10 b100 (3.1M) 0.116 -> 0.105 */
#define BF16_TEAM_MIN_MACS_SLOWER (1 << 20)

/* [*lo, *hi): thread t's share of n in whole blocks of `unit` (empty when nt > blocks) */
static void share(int64_t n, int64_t unit, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t blocks = (n + unit - 1) / unit;
    int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    *lo = b0 * unit < n ? b0 * unit : n;
    *hi = b1 * unit < n ? b1 * unit : n;
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
    const eng_bf16_packers *pack;        /* the path's (bf16.h) */
    int64_t ks;                          /* what the products' K is rounded to */
    int64_t unit;                        /* the threads' shares of rows and outputs */
} team_buffers;

/* the buffers' K: room for any path's */
static int64_t kp_of(int64_t n) { return round_up(n, KPAD); }
/* a product's K: an AMX tile row of 32 bf16; a pair for vdpbf16ps and the portable
   kernel, which would multiply the zeros past a minibatch of 100 rows to 128 otherwise
   (a fifth of the lecture's weight-gradient product) */
static int64_t k_of(const team_buffers *tb, int64_t n) { return round_up(n, tb->ks); }

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
    tb->pack = eng_bf16_packers_for(p->path);
    tb->bp = round_up(p->batch, 32);
    tb->ks = p->path == ENG_BF16_AMX ? KPAD : 2;
    /* whole tiles of 16 rows for AMX; pairs (the packed rows of pa and bwd) for the others,
       whose blocks of 8, 4 or 2 rows even out: 50 and 50 of 100 rows, not 48 and 52 */
    tb->unit = p->path == ENG_BF16_AMX ? 16 : 2;
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
            tb->pack->pairs_of_columns(p->W[l], n_in, 0, n_out, tb->fwd[l], tb->ldf[l]);
            if (l > 0)
                tb->pack->pairs_of_rows(p->W[l], n_out, n_in, n_in, tb->bwd[l], tb->lda[l],
                                        kp_of(n_out));
        }
    }
    return ok;
}

/* Phase 1 for rows [r0, r1) of a minibatch of m rows (rows: their indices in X) */
static void rows_phase(const team_buffers *tb, const uint16_t *X, int64_t x_stride,
                       const int64_t *y, const float *T, const int64_t *rows,
                       int64_t m, int64_t r0, int64_t r1) {
    const eng_bf16_plan *p = tb->p;
    const int L = p->n_layers, path = p->path, c = p->sizes[L];
    const int *s = p->sizes;
    const int64_t mt = r1 - r0;
    if (mt <= 0) return;
    for (int64_t i = r0; i < r1; i++) {
        memcpy(tb->xa + i * tb->ldx, X + rows[i] * x_stride, (size_t)k_of(tb, s[0]) * 2);
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
            tb->pack->rows(p->A[l - 1] + r0 * s[l], mt, s[l], s[l], tb->ar + r0 * tb->ldr,
                           tb->ldr, k_of(tb, s[l]));
            a = tb->ar + r0 * tb->ldr;
            lda = tb->ldr;
        }
        float *z = p->A[l] + r0 * s[l + 1];
        eng_bf16_kernel(path, a, lda, (const uint16_t *)tb->fwd[l], tb->ldf[l], z, s[l + 1],
                        mt, s[l + 1], k_of(tb, s[l]));
        eng_bias_act_f(z, p->B[l], mt, s[l + 1], p->acts[l],
                       p->SL != NULL && p->SL[l] != NULL ? p->SL[l] + r0 * s[l + 1] : NULL);
    }
    const float *out = p->A[L - 1] + r0 * c, *t = p->t + r0 * c;
    eng_row_losses_f(out, t, mt, c, p->loss_kind, tb->row_loss + r0);
    eng_output_delta_part_f(out, t, p->D[L - 1] + r0 * c, mt, c, p->loss_kind, (double)m);
    /* this share's columns of dt and rows of pa; the last share's reach the padding */
    const int64_t kt = r1 == m ? k_of(tb, m) - r0 : mt;
    for (int l = L - 1; l >= 0; l--) {
        const float *d = p->D[l] + r0 * s[l + 1];
        tb->pack->columns(d, mt, s[l + 1], tb->dt[l] + r0, tb->ldd, kt);
        if (l == 0)
            tb->pack->pairs_of_bf16_rows(tb->xa + r0 * tb->ldx, tb->ldx, mt, s[0],
                                         tb->pa[0] + (r0 / 2) * tb->lda[0], tb->lda[0], kt);
        else
            tb->pack->pairs_of_rows(p->A[l - 1] + r0 * s[l], mt, s[l], s[l],
                                    tb->pa[l] + (r0 / 2) * tb->lda[l], tb->lda[l], kt);
        if (l > 0) {
            tb->pack->rows(d, mt, s[l + 1], s[l + 1], tb->ar + r0 * tb->ldr, tb->ldr,
                           k_of(tb, s[l + 1]));
            float *prev = p->D[l - 1] + r0 * s[l];
            eng_bf16_kernel(path, tb->ar + r0 * tb->ldr, tb->ldr, (const uint16_t *)tb->bwd[l],
                            tb->lda[l], prev, s[l], mt, s[l], k_of(tb, s[l + 1]));
            const float *slopes = p->SL != NULL ? p->SL[l - 1] : NULL;   /* ENG_SLOPE_OPS */
            eng_act_backward_f(prev, (slopes != NULL ? slopes : p->A[l - 1]) + r0 * s[l],
                               mt * (int64_t)s[l], p->acts[l - 1]);
        }
    }
}

/* Phase 2 for thread t of nt: its share of every layer's outputs: their rows of
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
        share(n_out, tb->unit, t, nt, &o0, &o1);
        if (o1 <= o0) continue;
        const int64_t at = o0 * n_in, len = (o1 - o0) * n_in;
        eng_bf16_kernel(p->path, tb->dt[l] + o0 * tb->ldd, tb->ldd, (const uint16_t *)tb->pa[l],
                        tb->lda[l], p->GW[l] + at, n_in, o1 - o0, n_in, k_of(tb, m));
        eng_optimizer_step_f(p->W[l] + at, p->GW[l] + at, p->S1 ? p->S1[l] + at : NULL,
                             p->S2 ? p->S2[l] + at : NULL, len, r, alpha / (double)m);
        tb->pack->pairs_of_columns(p->W[l], n_in, o0, o1, tb->fwd[l], tb->ldf[l]);
        if (l > 0)              /* the last share also rewrites the zero pairs past n_out */
            tb->pack->pairs_of_rows(p->W[l] + at, o1 - o0, n_in, n_in,
                                    tb->bwd[l] + (o0 / 2) * tb->lda[l], tb->lda[l],
                                    o1 == n_out ? k_of(tb, n_out) - o0 : o1 - o0);
        float *gb = p->GB[l];
        const float *d = p->D[l];
        /* each unit's sum over rows in row order, all of the share's units per row (the
           loop vectorizes; unit by unit it read one float per row of D) */
        for (int64_t j = o0; j < o1; j++) gb[j] = 0;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = o0; j < o1; j++) gb[j] += d[i * n_out + j];
        eng_optimizer_step_f(p->B[l] + o0, gb + o0, p->S1 ? p->S1[L + l] + o0 : NULL,
                             p->S2 ? p->S2[L + l] + o0 : NULL, o1 - o0, r, 0.0);
    }
}

int eng_bf16_team(int path, int n_layers, const int *sizes, int64_t batch, int team, int most) {
    if (team > 0) return team;
    int64_t work = 0;
    for (int l = 0; l < n_layers; l++) work += (int64_t)sizes[l] * sizes[l + 1];
    /* set_epoch_threads caps the team; it does not ask for one where one is slower (the
       benchmarks' 2 threads made the lecture epoch 0.090 s instead of 0.070) */
    if (batch * work < (path == ENG_BF16_AMX ? BF16_TEAM_MIN_MACS : BF16_TEAM_MIN_MACS_SLOWER))
        return 1;
    int threads = eng_get_epoch_threads();
    return most > 0 && threads > most ? most : threads;
}

int64_t eng_bf16_epoch(const eng_bf16_plan *p, const uint16_t *X, int64_t x_stride,
                       const int64_t *y, const float *T, const int64_t *order, int64_t count,
                       const eng_rule *rule, double alpha, double *losses) {
    const int L = p->n_layers;
    const int *s = p->sizes;
    const int64_t batch = p->batch;
    if (!eng_bf16_supported(p->path)) return -2;
    team_buffers tb;
    if (!alloc_buffers(&tb, p)) {
        free_buffers(&tb);
        return -1;
    }
    int threads = eng_team(eng_bf16_team(p->path, L, s, batch, p->team, p->most_threads));
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
            share(m, tb.unit, t, nt, &r0, &r1);
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
