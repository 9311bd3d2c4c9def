/* engine C kernels: float (_f) and double (_d) instances of one generic source.
 *
 * Matrices are row-major and contiguous: (n rows, c columns). No BLAS, no Python.
 * Elementwise kernels give the same result for any number of OpenMP threads.
 */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H

#include <stdint.h>

#include "ops.h"

/* activation codes */
#define ENG_OP_CODE(NAME, code, forward, derivative) ENG_##NAME = code,
enum { ENG_HIDDEN_OPS(ENG_OP_CODE) ENG_SLOPE_OPS(ENG_OP_CODE) ENG_OUTPUT_ONLY_OPS(ENG_OP_CODE) };
#undef ENG_OP_CODE
/* output/loss pairs: their delta and their loss value (csrc/losses.h); the codes are
   engine/ops.py's PAIRS (a test holds them equal) */
enum { ENG_SIGMOID_MSE = 0, ENG_SOFTMAX_CE = 1, ENG_IDENTITY_MSE = 2, ENG_SIGMOID_BCE = 3,
       ENG_EXP_POISSON = 4, ENG_IDENTITY_HALF_MSE = 5 };
/* optimizers */
enum { ENG_SGD = 0, ENG_MOMENTUM = 1, ENG_NESTEROV = 2, ENG_ADAM = 3 };
/* not an optimizer: the update kernels' way of keeping a gradient (p = g), for the fused
   epoch's stored-gradient mode (eng_epoch_plan.reduce) */
enum { ENG_STORE = 4 };

/* One optimizer step's rule. With the gradient g (+ l2 * p for weights):
     ENG_SGD       p -= lr * g
     ENG_MOMENTUM  v = momentum * v - lr * g;  p += v                  (state: v)
     ENG_NESTEROV  v = momentum * v - lr * g;  p += momentum * v - lr * g   (state: v)
     ENG_ADAM      m = b1 m + (1 - b1) g;  s = b2 s + (1 - b2) g^2;
                   p -= lr_t * m / (sqrt(s) + eps),
                   lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)              (state: m, s)
   t counts the steps taken, this one included; a fused epoch advances it per minibatch. */
typedef struct {
    int kind;
    double lr, momentum, beta1, beta2, eps;
    int64_t t;
} eng_rule;

/* the key of minibatch i's dropout masks, from the epoch's key (csrc/runtime.h) */
uint32_t eng_dropout_key(uint64_t epoch_key, int64_t minibatch);

/* lr_t of Adam's step t (lr otherwise) */
double eng_rule_step_size(const eng_rule *rule);

#define ENGINE_DECLARE(REAL, S)                                                             \
/* z[i, j] = act(z[i, j] + b[j]) in place; softmax acts on whole rows; slopes: NULL, or   \
   where the activations of ENG_SLOPE_OPS (csrc/ops.h) keep act'(z) for the backward pass */\
void eng_bias_act_##S(REAL *z, const REAL *b, int64_t n, int64_t c, int act, REAL *slopes); \
/* d[i] *= act'(z[i]), written with the activation output a[i] (the kept slope for        \
   ENG_SLOPE_OPS) */                                                                        \
void eng_act_backward_##S(REAL *d, const REAL *a, int64_t len, int act);                   \
/* row-wise softmax in place, max-subtracted */                                             \
void eng_softmax_rows_##S(REAL *z, int64_t n, int64_t c);                                   \
/* out = dL/dz of the output layer (the 1/n factor lives here); w: per-row sample      \
   weights or NULL (row i then counts w[i] / sum(w) instead of 1/n) */                      \
void eng_output_delta_##S(const REAL *a, const REAL *t, REAL *out, int64_t n, int64_t c,    \
                          int kind, const REAL *w);                                         \
/* the loss value (csrc/losses.h: mse = mean over n*c; ce = -sum t*log(max(a, eps)) / n) */\
double eng_loss_##S(const REAL *a, const REAL *t, int64_t n, int64_t c, int kind,           \
                    const REAL *w);                                                         \
/* out[j] = sum_i d[i, j] */                                                                \
void eng_bias_grad_##S(const REAL *d, REAL *out, int64_t n, int64_t c);                     \
/* v = mom*v - lr*g; p += v  (p -= lr*g when v is NULL) */                                  \
void eng_sgd_step_##S(REAL *p, const REAL *g, REAL *v, int64_t len, REAL lr, REAL mom);     \
/* one optimizer step of p (state s1, s2 as the rule needs), gradient g + l2 * p */         \
void eng_optimizer_step_##S(REAL *p, const REAL *g, REAL *s1, REAL *s2, int64_t len,        \
                            const eng_rule *rule, double l2);                               \
/* the same on rows x cols of a matrix with row stride ld */                                 \
void eng_optimizer_step_rows_##S(REAL *p, const REAL *g, REAL *s1, REAL *s2, int64_t rows,  \
                                 int64_t cols, int64_t ld, const eng_rule *rule, double l2); \
/* output delta of n rows of a minibatch whose rows weigh `weight` in all */                \
void eng_output_delta_part_##S(const REAL *a, const REAL *t, REAL *out, int64_t n,          \
                               int64_t c, int kind, double weight);                         \
/* out[i]: row i's summed loss terms; the loss is their sum over eng_loss_divisor */        \
void eng_row_losses_##S(const REAL *a, const REAL *t, int64_t n, int64_t c, int kind,       \
                        double *out);                                                       \
double eng_loss_divisor_##S(int kind, double weight, int64_t c);                            \
/* p += alpha * g */                                                                        \
void eng_axpy_##S(REAL *p, const REAL *g, int64_t len, REAL alpha);                         \
/* x_out = X[idx] (rows of f); t_out = one-hot of y[idx] over c classes */                  \
void eng_gather_##S(const REAL *X, const int64_t *y, const int64_t *idx, int64_t m,         \
                    int64_t f, int64_t c, REAL *x_out, REAL *t_out);                        \
/* x_out = X[idx]; t_out = T[idx] (target rows of c) */                                     \
void eng_gather_rows_##S(const REAL *X, const REAL *T, const int64_t *idx, int64_t m,       \
                         int64_t f, int64_t c, REAL *x_out, REAL *t_out);                   \
/* ask the caches for rows X[idx] ahead of a later gather */                              \
void eng_prefetch_rows_##S(const REAL *X, const int64_t *idx, int64_t m, int64_t f);       \
/* inverted dropout of n rows of c hidden units (row0: the first row's place in the         \
   minibatch; key: eng_dropout_minibatch_key's) at `rate`, and its backward pass, which     \
   also applies act' (taken from the output before dropout) */                              \
void eng_dropout_##S(REAL *a, int64_t n, int64_t c, int64_t row0, uint32_t key, int layer, \
                     double rate);                                                          \
void eng_dropout_backward_##S(REAL *d, const REAL *a, int64_t n, int64_t c, int64_t row0,  \
                              uint32_t key, int layer, double rate, int act);               \
/* alive[j] = 1 if some a[i, j] > 0 */                                                      \
void eng_alive_units_##S(const REAL *a, int64_t n, int64_t c, uint8_t *alive);              \
/* entries within 1 - thr of the activation's bound (sigmoid |2a-1|>thr, tanh |a|>thr) */  \
int64_t eng_saturated_count_##S(const REAL *a, int64_t len, int act, REAL thr);             \
/* sum of squares, accumulated in double */                                                 \
double eng_sq_norm_##S(const REAL *x, int64_t len);

/* GFLOP/s of `threads` threads each running `iters` rounds of register-only FMAs in the
   SIMD variant in use: the machine's peak, for reporting fractions of it */
double eng_fma_gflops_f(int threads, int64_t iters);
double eng_fma_gflops_d(int threads, int64_t iters);

/* most layers the fused epoch takes */
#define ENG_MAX_LAYERS 64

/* What the fused epoch (eng_fused_epoch_*) needs of a network and its workspace; the
   bindings fill it once per plan. Widths: sizes[0] inputs, sizes[l + 1] outputs of layer l. */
typedef struct {
    int n_layers;
    int64_t batch;
    const int *sizes;
    const int *acts;              /* activation code per layer */
    int loss_kind;                /* ENG_SIGMOID_MSE ... */
    void **W, **B;                /* weights (sizes[l+1] x sizes[l]) and biases */
    void **VW, **VB;              /* optimizer state: velocity or Adam's m; NULL for SGD */
    void **MW, **MB;              /* Adam's second moments; NULL for the others */
    void **A, **D;                /* (batch x sizes[l+1]) activations and deltas */
    void **SL;                    /* per layer, the slopes an ENG_SLOPE_OPS activation keeps
                                     (as A), NULL for the others; NULL: no such layer */
    void **GB;                    /* bias gradients (sizes[l+1]) */
    void **WT, **VT, **ST;        /* room for W, VW, MW in panels (eng_epoch_panel_elements) */
    double *l2_parts;             /* eng_epoch_l2_parts entries: squares of W per tile */
    void **rows;                  /* room for the row pointers (eng_epoch_row_count) */
    double *row_loss;             /* batch entries */
    void *delta_panels;           /* eng_epoch_delta_panel_bytes: every layer's deltas in
                                     panels, formed by the rows phase, read by all threads'
                                     gradient tiles */
    void *scratch;                /* threads * scratch_per_thread bytes */
    int64_t scratch_per_thread;
    int threads;                  /* most threads the scratch has room for */
    int team;                     /* threads wanted; 0: eng_get_epoch_threads() */
    const double *dropout;        /* per layer, the hidden units' drop rate; NULL: none */
    uint64_t dropout_key;         /* the epoch's key of the dropout masks */
    /* NULL: each gradient tile is applied as soon as it is formed. Otherwise the stored-
       gradient mode: every gradient is formed first (GW and GB, in the caller's layout, so
       that every rank of a data-parallel fit reduces the same layout whatever its CPU),
       thread 0 calls reduce(reduce_ctx, i, &loss, &weight) with minibatch i's loss (no L2
       term) and its rows or sample-weight sum (0 when all its weights are 0), which may
       rewrite GW and GB and returns 0 with the loss and weight to step with, or nonzero
       to end the epoch before that step. */
    int (*reduce)(void *ctx, int64_t i, double *loss, double *weight);
    void *reduce_ctx;
    void **GW;                    /* with reduce, or on BLAS: weight gradients (sizes[l+1] x
                                     sizes[l]) */
    void **GT;                    /* with reduce: the gradient tiles' panels (as WT) */
    /* NULL: the products on the tiles. Otherwise BLAS's gemm of the plan's dtype (Fortran
       sgemm/dgemm arguments) makes them, on whole minibatches gathered into x (batch x
       sizes[0]), the weights kept in the caller's layout (csrc/epoch_blas.h). */
    void (*blas_gemm)(void);
    void *x;
    void **RW, **RA, **RD;        /* bf16-mixed (float only): the products' operands rounded
                                     to bfloat16 per layer: W (on the tiles, its panels, as
                                     WT), A and D; NULL: none. X comes rounded on the tiles
                                     (epoch_tiles.h), is rounded as gathered on BLAS */
    double *grad_norms;           /* BLAS: per layer, each minibatch's |dL/dW| is added; NULL:
                                     none (the diagnostics) */
} eng_epoch_plan;

/* Train one epoch over X[order[:count]] (targets: labels y, or the rows of T when y is
   NULL; sample weights SW, or NULL) in minibatches of plan->batch (the last one may be
   shorter) on plan->team threads (or eng_get_epoch_threads()), at most plan->threads, on
   the tiles (or on BLAS, one thread, when plan->blas_gemm is set), each step by `rule`
   (rule->t is the steps taken before the epoch), with the L2 penalty alpha (loss += alpha/2 |W|^2 / m, gradient += alpha W / m); returns the
   minibatches trained, fewer than all when a stop was requested (eng_request_stop);
   losses[i] gets minibatch i's loss, before its update. */
#define ENGINE_DECLARE_EPOCH(REAL, S)                                                       \
int64_t eng_fused_epoch_##S(const eng_epoch_plan *plan, const REAL *X, const int64_t *y,        \
                         const REAL *T, const REAL *SW, const int64_t *order,               \
                         int64_t count, const eng_rule *rule, double alpha,                 \
                         double *losses);                                            \
/* benchmarks only: a plain-SGD epoch's BLAS products alone (plan->blas_gemm), no gather, \
   activation, loss or step, over count rows of whatever the plan's buffers hold */       \
int64_t eng_gemm_floor_##S(const eng_epoch_plan *plan, int64_t count);                    \
/* out[l] (n x sizes[l+1]) = every layer's output for the rows x (n x sizes[0]), by the   \
   same tiles on the epoch's threads; bf16 (float only): the products' operands (W, x and \
   each layer's input) rounded to bfloat16, as the tiles' bf16-mixed epoch reads them;    \
   0, or -1 when memory ran out or n_layers is out of range (1..ENG_MAX_LAYERS) */         \
int eng_tiled_forward_##S(int n_layers, const int *sizes, const int *acts,                 \
                          const REAL *const *W, const REAL *const *B, const REAL *x,       \
                          int64_t n, REAL *const *out, int bf16);

ENGINE_DECLARE(float, f)
ENGINE_DECLARE(double, d)
ENGINE_DECLARE_EPOCH(float, f)
ENGINE_DECLARE_EPOCH(double, d)

/* Every kernel above for one dtype, with untyped array pointers and double scalars:
   eng_kernels_f or eng_kernels_d, chosen once by the arrays' dtype. */
typedef struct {
    int itemsize;
    void (*bias_act)(void *z, const void *b, int64_t n, int64_t c, int act, void *slopes);
    void (*act_backward)(void *d, const void *a, int64_t len, int act);
    void (*softmax_rows)(void *z, int64_t n, int64_t c);
    void (*output_delta)(const void *a, const void *t, void *out, int64_t n, int64_t c,
                         int kind, const void *w);
    double (*loss)(const void *a, const void *t, int64_t n, int64_t c, int kind,
                   const void *w);
    void (*bias_grad)(const void *d, void *out, int64_t n, int64_t c);
    void (*sgd_step)(void *p, const void *g, void *v, int64_t len, double lr, double mom);
    void (*optimizer_step)(void *p, const void *g, void *s1, void *s2, int64_t len,
                           const eng_rule *rule, double l2);
    void (*gather)(const void *X, const int64_t *y, const int64_t *idx, int64_t m, int64_t f,
                   int64_t c, void *x_out, void *t_out);
    void (*gather_rows)(const void *X, const void *T, const int64_t *idx, int64_t m,
                        int64_t f, int64_t c, void *x_out, void *t_out);
    void (*dropout)(void *a, int64_t n, int64_t c, int64_t row0, uint32_t key, int layer,
                    double rate);
    void (*dropout_backward)(void *d, const void *a, int64_t n, int64_t c, int64_t row0,
                             uint32_t key, int layer, double rate, int act);
    void (*alive_units)(const void *a, int64_t n, int64_t c, uint8_t *alive);
    int64_t (*saturated_count)(const void *a, int64_t len, int act, double thr);
    double (*sq_norm)(const void *x, int64_t len);
    int64_t (*fused_epoch)(const eng_epoch_plan *plan, const void *X, const int64_t *y,
                           const void *T, const void *SW, const int64_t *order,
                           int64_t count, const eng_rule *rule, double alpha,
                           double *losses);
    int64_t (*gemm_floor)(const eng_epoch_plan *plan, int64_t count);
    int (*tiled_forward)(int n_layers, const int *sizes, const int *acts, void *const *W,
                         void *const *B, const void *x, int64_t n, void *const *out,
                         int bf16);
} eng_kernel_table;

extern const eng_kernel_table eng_kernels_f, eng_kernels_d;

/* scratch bytes one thread of the fused epoch needs, and the row pointers it keeps */
int64_t eng_epoch_scratch_bytes(int n_layers, int64_t batch, const int *sizes);
int64_t eng_epoch_row_count(int n_layers, int64_t batch);
/* entries of plan->l2_parts: one per GEMM tile of inputs of every layer */
int64_t eng_epoch_l2_parts(int n_layers, const int *sizes);
/* bytes of plan->delta_panels: batch rows of every layer's outputs, in panels of two
   vectors (room for the widest SIMD variant's and the widest dtype) */
int64_t eng_epoch_delta_panel_bytes(int n_layers, int64_t batch, const int *sizes);
/* elements of the epoch's own copy of an (n_out x n_in) weight matrix, in panels of two
   vectors, and a copy of a narrow last panel's rows (room for the widest SIMD variant's) */
int64_t eng_epoch_panel_elements(int64_t n_out, int64_t n_in, int itemsize);
/* threads of the fused epoch: the setting, or (setting 0, the default) OpenMP's team size
   when asked (the cores, OMP_NUM_THREADS or omp_set_num_threads) capped at the usable
   CPUs; always 1 without OpenMP */
int eng_get_epoch_threads(void);
void eng_set_epoch_threads(int n);      /* n in 1..ENG_MAX_EPOCH_THREADS, or 0: OpenMP's */
#define ENG_MAX_EPOCH_THREADS 1024
int eng_usable_cpus(void);              /* CPUs in this process's affinity mask, >= 1 */
int eng_op_code(const char *name);     /* ops.h's code of an activation ("LEAKY_RELU"), or -1 */
int eng_op_keeps_slope(int code);      /* 1 for the activations of ENG_SLOPE_OPS */

/* bf16-mixed products (csrc/bf16.c): the paths, best last */
enum { ENG_BF16_PORTABLE = 0, ENG_BF16_AVX512 = 1, ENG_BF16_AMX = 2, ENG_BF16_PATHS = 3 };
/* out[i] = x[i] rounded to bfloat16 (nearest even), as a float */
void eng_bf16_round(const float *x, float *out, int64_t n);
/* dst (rows x width, uint16) = the bfloat16 bits of src (rows x cols), each row zero padded
   from cols to width: X of a bf16-mixed fit as the fused epoch reads it */
void eng_bf16_rows(const float *src, int64_t rows, int64_t cols, uint16_t *dst, int64_t width);
/* c (m x n) = op(a) . op(b), operands rounded to bf16, float32 accumulation, on a path; 0,
   -1 out of memory, -2 a path this CPU cannot run */
int eng_gemm_bf16(int path, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                  const float *a, const float *b, float *c);
int eng_bf16_path(void);                /* the path in use: the best supported, or forced */
int eng_bf16_force(int path);           /* -1: the best again; -1 returned if unsupported */
int eng_bf16_supported(int path);      /* runs here: natively, or emulated (below) */
/* tests: on (1), the AVX512-BF16 (on a CPU with AVX2) and AMX paths that the CPU lacks run on
   their kernels emulated in software where named or forced, never by default; off (0) again */
void eng_bf16_emulate(int on);
const char *eng_bf16_name(int path);
const char *eng_bf16_reason(int path);  /* why a path runs here, or why not */
/* GFLOP/s of a register-only loop of the path's bf16 dot product on one thread (0: none) */
double eng_bf16_peak_gflops(int path, int64_t iters);
/* vdpbf16ps's rate over float32 FMAs' (one thread each; 0 without AVX512-BF16 code): below
   1.2 the AVX512 path is not chosen unless forced */
double eng_bf16_dot_vs_fma(void);

/* The forward pass over n rows of X (n x sizes[0], float32), or of XP (the same rows as
   bf16, each padded to a multiple of 32: eng_bf16_rows) where X is NULL, with the products
   on bf16 operands (csrc/bf16_forward.c): out[l] (n x sizes[l + 1]) = acts[l](out[l-1]
   W[l]^T + B[l]); 0, -1 out of memory, -2 not the AVX512 or AMX path or one this CPU
   cannot run */
int eng_bf16_forward(int path, int n_layers, const int *sizes, const float *const *W,
                     const float *const *B, const int *acts, const float *X,
                     const uint16_t *XP, int64_t n, float *const *out);

/* The bf16-mixed epoch's network and buffers (csrc/bf16_epoch.c): float32 master weights W,
   biases B, their gradients GW, GB; per layer activations A and deltas D (batch rows);
   the targets t (batch x outputs); optimizer state S1, S2 per parameter (weights first, then
   biases) or NULL as the rule needs; SL: as eng_epoch_plan's */
typedef struct {
    int n_layers, loss_kind, path;
    int team;                     /* threads; 0: the epoch's own choice (eng_bf16_team) */
    int most_threads;             /* caps that choice (a backend's `threads`); 0: no cap */
    const int *sizes, *acts;
    int64_t batch;
    float **W, **B, **GW, **GB, **A, **D, **S1, **S2, **SL;
    float *t;
} eng_bf16_plan;
/* One epoch over X[order] in minibatches of plan->batch (the last may be shorter): X holds
   the rows pre-rounded to bf16, x_stride (>= sizes[0] rounded up to 32, zero padded) per
   row; y labels or T target rows (one of them NULL). losses[i]: minibatch i's loss before its
   step (its L2 term included). Returns the minibatches trained (fewer after a stop request),
   -1 when memory ran out, -2 on a path (AVX512 or AMX) that does not run here. */
int64_t eng_bf16_epoch(const eng_bf16_plan *plan, const uint16_t *X, int64_t x_stride,
                       const int64_t *y, const float *T, const int64_t *order, int64_t count,
                       const eng_rule *rule, double alpha, double *losses);
/* The threads that epoch asks for: `team` where it is > 0; else a team of
   eng_get_epoch_threads(), at most `most` (where > 0), for minibatches of enough
   multiply-adds on this path, one thread below that */
int eng_bf16_team(int path, int n_layers, const int *sizes, int64_t batch, int team, int most);
int eng_epoch_threads_setting(void);

/* Ctrl-C during training: install a SIGINT handler that asks a running fused epoch to
   stop at its next minibatch boundary (in place of the handler it saves); remove it again
   (the saved one back); ask for, clear or read that stop directly */
int eng_install_interrupt_handler(void);
void eng_remove_interrupt_handler(void);
void eng_request_stop(void);
void eng_clear_stop(void);
int eng_stop_requested(void);

/* 1 when compiled with OpenMP */
int eng_have_openmp(void);
/* OpenMP threads the kernels' large loops may use (default 1; always 1 without OpenMP) */
int eng_get_num_threads(void);
/* set that thread count (keep 1 while BLAS is multi-threaded: they would fight) */
void eng_set_num_threads(int n);
/* elements below which a kernel stays on one thread */
int64_t eng_parallel_threshold(void);
/* the SIMD variant of the workers that runs now: "baseline", "avx2+fma", "avx512" (or the
   tests' "avx512-on-avx2"); chosen by what the CPU reports at first use */
const char *eng_simd_variant(void);
/* the name of variant number i (0 .. ), NULL past the last; whether it can run here */
const char *eng_simd_variant_name(int i);
int eng_simd_supported(int i);
/* run the named variant from now on (NULL or "": back to the CPU's best); 0 on success,
   -1 for an unknown name, -2 when this CPU cannot run it */
int eng_force_simd(const char *name);

#endif
