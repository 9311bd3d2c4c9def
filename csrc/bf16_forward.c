/* The forward pass of a bf16-mixed network over many rows (evaluating a data set during a
   bf16-mixed fit): per layer, the rows of A_{l-1} and W_l^T packed to bfloat16, the product
   on the path with float32 sums, then bias and activation in float32 — the
   forward pass of the fused epoch (csrc/bf16_epoch.c) and of engine/precision.py.

   The weights are packed once per call; the rows go through every layer in blocks of
   BLOCK, so a block's activations are packed for the next layer while still in cache.
   Threads share the blocks; each row is computed whole by one thread, so the results do
   not depend on the number of threads. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"
#include "runtime.h"
#include "bf16.h"

#define BLOCK 64                /* rows per block: 4 tiles of 16 rows */
#define FORWARD_MIN_ROWS 512    /* fewer rows: one thread (a team costs more than it saves) */

/* one block of rows [r0, r0 + mt) through every layer; a: this thread's packing buffer */
static void forward_block(int path, int n_layers, const int *sizes, uint16_t *const *wt,
                          const float *const *B, const int *acts, const float *X,
                          const uint16_t *XP, float *const *out, int64_t r0, int64_t mt,
                          uint16_t *a) {
    for (int l = 0; l < n_layers; l++) {
        const int64_t n_in = sizes[l], n_out = sizes[l + 1], kp = round_up(n_in, KPAD);
        const uint16_t *rows = a;
        int64_t lda = A_LD(kp);
        if (l == 0 && XP != NULL && mt % 16 == 0) {
            rows = XP + r0 * kp;            /* already bf16: the tiles read them in place */
            lda = kp;
        } else if (l == 0 && XP != NULL) {  /* a short last block: padded to whole tiles */
            for (int64_t i = 0; i < round_up(mt, 16); i++) {
                if (i < mt) memcpy(a + i * lda, XP + (r0 + i) * kp, (size_t)kp * 2);
                else memset(a + i * lda, 0, (size_t)kp * 2);
            }
        } else {
            const float *src = l == 0 ? X + r0 * n_in : out[l - 1] + r0 * n_in;
            eng_bf16_packers_for(path)->rows(src, mt, n_in, n_in, a, lda, kp);
            memset(a + mt * lda, 0, (size_t)(round_up(mt, 16) - mt) * lda * 2);
        }
        float *z = out[l] + r0 * n_out;
        eng_bf16_kernel(path, rows, lda, wt[l], B_LD(round_up(n_out, NPAD)), z, n_out, mt,
                        n_out, kp);
        eng_bias_act_f(z, B[l], mt, n_out, acts[l], NULL);
    }
}

int eng_bf16_forward(int path, int n_layers, const int *sizes, const float *const *W,
                     const float *const *B, const int *acts, const float *X,
                     const uint16_t *XP, int64_t n, float *const *out) {
    if (!eng_bf16_supported(path)) return -2;
    if (n <= 0) return 0;
    uint16_t *wt[ENG_MAX_LAYERS];
    int64_t widest = 0;
    int ok = n_layers > 0 && n_layers <= ENG_MAX_LAYERS;
    for (int l = 0; l < n_layers; l++) wt[l] = NULL;
    for (int l = 0; ok && l < n_layers; l++) {
        const int64_t kp = round_up(sizes[l], KPAD), np = round_up(sizes[l + 1], NPAD);
        widest = kp > widest ? kp : widest;
        ok = (wt[l] = alloc_lines((size_t)kp * B_LD(np) * sizeof(uint16_t))) != NULL;
        if (ok) {
            memset(wt[l], 0, (size_t)kp * B_LD(np) * sizeof(uint16_t));
            eng_bf16_packers_for(path)->pairs_of_columns(W[l], sizes[l], 0, sizes[l + 1],
                                                         (uint32_t *)(void *)wt[l], B_LD(np));
        }
    }
    const int64_t blocks = (n + BLOCK - 1) / BLOCK;
    int threads = 1;
    if (ok && n >= FORWARD_MIN_ROWS) {
        threads = eng_get_epoch_threads();
        threads = eng_team(threads < blocks ? threads : (int)blocks);
    }
    int failed = !ok;
    #pragma omp parallel num_threads(threads) if (ok && threads > 1) reduction(|: failed)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        uint16_t *a = ok ? alloc_lines((size_t)BLOCK * A_LD(widest) * sizeof *a) : NULL;
        if (a == NULL) {
            failed = 1;
        } else {
            for (int64_t b = blocks * t / nt; b < blocks * (t + 1) / nt; b++) {
                const int64_t r0 = b * BLOCK, mt = n - r0 < BLOCK ? n - r0 : BLOCK;
                forward_block(path, n_layers, sizes, wt, B, acts, X, XP, out, r0, mt, a);
            }
        }
        free(a);
    }
    for (int l = 0; l < n_layers; l++) free(wt[l]);
    return failed ? -1 : 0;
}
