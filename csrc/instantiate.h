/* Everything of one dtype, included by kernels.c between dtype_<type>.h and dtype_undef.h:
   the workers of each SIMD variant (workers.h), the table that picks one at run time, and
   the drivers (elementwise.h) and fused epoch (epoch.h) that call through it. */

/* An optimizer step's numbers in this dtype (eng_rule with the step size of this step). */
typedef struct {
    int kind;
    REAL lr, mom, b1, b2, eps, l2;
} FN(eng_step);

static inline FN(eng_step) FN(step_of)(const eng_rule *rule, double lr, double l2) {
    FN(eng_step) st = {rule->kind, (REAL)lr, (REAL)rule->momentum, (REAL)rule->beta1,
                       (REAL)rule->beta2, (REAL)rule->eps, (REAL)l2};
    return st;
}

/* One variant's workers (see workers_elementwise.h and workers_gemm.h for each). */
typedef struct {
    int mr, pw;   /* rows of a GEMM tile; columns of a panel (two vectors) */
    void (*bias_act_rows)(REAL *z, const REAL *b, int64_t n, int64_t c, int act,
                          REAL *slopes);
    void (*act_backward_range)(REAL *d, const REAL *a, int64_t len, int act);
    void (*update_range)(REAL *p, const REAL *g, REAL *s1, REAL *s2, int64_t len, int kind,
                         REAL lr, REAL mom, REAL b1, REAL b2, REAL eps, REAL l2);
    void (*gemm_nn)(const REAL *const *a, int64_t m, int64_t k, const REAL *const *b,
                    const REAL *wp, int w_transposed, int64_t n, REAL *const *c,
                    REAL *scratch);
    void (*gemm_tn_update)(const REAL *const *a, int64_t m, int64_t n_in, int64_t j_lo,
                           int64_t j_hi, const REAL *dp, int64_t stride, int64_t n_out,
                           REAL *wt, REAL *vt, REAL *st, REAL *rw,
                           const FN(eng_step) *step, double *sq_parts, REAL *scratch);
    void (*pack_delta_row)(const REAL *d, int64_t n, int64_t p, int64_t stride, REAL *dp);
    void (*to_panels)(const REAL *w, int64_t n_out, int64_t n_in, REAL *wp);
    void (*from_panels)(const REAL *wp, int64_t n_out, int64_t n_in, int64_t j_lo,
                        int64_t j_hi, REAL *w);
    void (*panel_step)(REAL *wt, REAL *vt, REAL *st, REAL *rw, const REAL *g, int64_t n_out,
                       int64_t n_in, int64_t j_lo, int64_t j_hi, const FN(eng_step) *step);
    double (*fma_loop)(int64_t iters);
    int fma_loop_flops;     /* floating-point operations per iteration of fma_loop */
    void (*dropout_rows)(REAL *a, int64_t rows, int64_t c, int64_t row0, uint32_t key,
                         int layer, uint32_t threshold, REAL scale);
    void (*dropout_backward_rows)(REAL *d, const REAL *a, int64_t rows, int64_t c,
                                  int64_t row0, uint32_t key, int layer, uint32_t threshold,
                                  REAL scale, int act);
} FN(eng_workers);

/* Tile shapes: 6 x 2 vectors fills 12 of the 16 registers of SSE/AVX2; AVX-512's 32
   registers hold 12 x 2 (chosen by measurement, see csrc/README.md). */
#define V base
#define TARGET
#define VBYTES 32
#define MR 6
#include "workers.h"
#include "variant_undef.h"

#define V avx2
#define TARGET ENG_AVX2_TARGET
#define VBYTES 32
#define MR 6
#include "workers.h"
#include "variant_undef.h"

#define V avx512
#define TARGET ENG_AVX512_TARGET
#define VBYTES 64
#define MR ENG_AVX512_MR
#include "workers.h"
#include "variant_undef.h"

#define V avx512_on_avx2
#define TARGET ENG_AVX2_TARGET
#define VBYTES 64
#define MR ENG_AVX512_MR
#include "workers.h"
#include "variant_undef.h"

/* indexed by ENG_SIMD_* */
static const FN(eng_workers) *const FN(workers_table)[ENG_SIMD_COUNT] = {
    &ENG_GLUE(FN(workers), base), &ENG_GLUE(FN(workers), avx2),
    &ENG_GLUE(FN(workers), avx512), &ENG_GLUE(FN(workers), avx512_on_avx2)};

/* the workers of the variant chosen for this CPU (or forced by the tests) */
static inline const FN(eng_workers) *FN(workers)(void) {
    return FN(workers_table)[eng_simd_level()];
}

#include "losses.h"
#include "elementwise.h"
#include "epoch_parts.h"
#include "epoch_tiles.h"
#include "epoch_blas.h"
#include "epoch.h"
#include "peak.h"
#include "table.h"
