/* Instantiates the generic kernels of kernels_impl.h for float and double. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#ifdef _OPENMP
#include <omp.h>
#include <pthread.h>
#endif

/* Threads for the kernels' OpenMP loops. 1 by default: inside training, every kernel
   runs between two BLAS calls, and OpenMP threads spinning beside BLAS's own threads
   make both crawl (measured: an epoch 20x slower on 2 cores). Raise it with
   eng_set_num_threads when BLAS runs single-threaded. Below ENG_PAR_MIN elements a
   loop stays on one thread anyway: forking would cost more than it saves. */
static int eng_threads = 1;

/* Threads of the fused epoch, which calls no BLAS; 0 until first asked for. */
static int eng_epoch_threads = 0;

/* GNU OpenMP cannot run a team in a child forked after the parent ran one (the child's
   pool refers to threads that fork did not copy, and its first parallel region hangs:
   measured with a multiprocessing pool after a fit). Such a child runs on one thread. */
static int eng_team_started = 0;
static int eng_forked_after_team = 0;

#ifdef _OPENMP
static void eng_child_after_fork(void) {
    if (eng_team_started) {
        eng_forked_after_team = 1;
        eng_epoch_threads = 1;
        eng_threads = 1;
    }
}

__attribute__((constructor)) static void eng_register_fork_handler(void) {
    pthread_atfork(NULL, NULL, eng_child_after_fork);
}
#endif

/* The team size a parallel region may use now: n, or 1 in a child forked after a team. */
static inline int eng_team(int n) {
    if (eng_forked_after_team || n < 2) return 1;
    eng_team_started = 1;
    return n;
}

#ifndef ENG_PAR_MIN
#define ENG_PAR_MIN (1 << 18)
#endif
/* elements per unit of work handed to a worker */
#define ENG_CHUNK 16384

/* The elementwise workers are compiled twice: for the x86-64 baseline and for AVX2+FMA,
   and the drivers pick one by what the CPU reports (no -march=native needed). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(ENG_NO_AVX2)
#define ENG_HAVE_AVX2_VARIANT 1
#define ENG_AVX2_TARGET __attribute__((target("avx2,fma")))
#else
#define ENG_HAVE_AVX2_VARIANT 0
#define ENG_AVX2_TARGET
#endif

static int eng_avx2_fma_state = -1;   /* -1: not probed yet */

static inline int eng_cpu_avx2_fma(void) {
    if (eng_avx2_fma_state < 0) {
#if ENG_HAVE_AVX2_VARIANT
        __builtin_cpu_init();
        eng_avx2_fma_state = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        eng_avx2_fma_state = 0;
#endif
    }
    return eng_avx2_fma_state;
}

/* helpers forced inline, so that each clone compiles them for its own target */
#if defined(__GNUC__)
#define ENG_INLINE static inline __attribute__((always_inline))
#else
#define ENG_INLINE static inline
#endif

/* Taylor coefficients 1/k! for the exp polynomials (Horner form) */
#define T2 0.5
#define T3 0.16666666666666666667
#define T4 0.041666666666666666667
#define T5 0.0083333333333333333333
#define T6 0.0013888888888888888889
#define T7 0.00019841269841269841270
#define T8 2.4801587301587301587e-05
#define T9 2.7557319223985890653e-06
#define T10 2.7557319223985890653e-07
#define T11 2.5052108385441718775e-08
#define T12 2.0876756987868098979e-09
#define T13 1.6059043836821614599e-10

/* 32-byte vectors for the GEMM tiles: one AVX register, two SSE ones on the baseline */
typedef float eng_vec_f __attribute__((vector_size(32)));
typedef double eng_vec_d __attribute__((vector_size(32)));

#define REAL float
#define S f
#define VEC eng_vec_f
#define VLEN 8
#define UINT uint32_t
#define MANT_BITS 23
#define EXP_SHIFTER 12582912.0f                /* 1.5 * 2^23 */
#define SHIFTER_BITS 0x4B400000u
#define EXP_MAX 88.0f
#define EXP_MIN -87.0f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
/* degree 7: |error| < 5e-9 on |r| <= ln2/2 */
#define POLY_EXP(r) (1.0f + (r) * (1.0f + (r) * ((float)T2 + (r) * ((float)T3 + (r) * \
    ((float)T4 + (r) * ((float)T5 + (r) * ((float)T6 + (r) * (float)T7)))))))
#define EXP expf
#define LOG logf
#define TANH tanhf
#define FABS fabsf
#define EPS FLT_EPSILON
#include "kernels_instance.h"
#undef REAL
#undef S
#undef VEC
#undef VLEN
#undef UINT
#undef MANT_BITS
#undef EXP_SHIFTER
#undef SHIFTER_BITS
#undef EXP_MAX
#undef EXP_MIN
#undef LN2_HI
#undef LN2_LO
#undef POLY_EXP
#undef EXP
#undef LOG
#undef TANH
#undef FABS
#undef EPS

#define REAL double
#define S d
#define VEC eng_vec_d
#define VLEN 4
#define UINT uint64_t
#define MANT_BITS 52
#define EXP_SHIFTER 6755399441055744.0        /* 1.5 * 2^52 */
#define SHIFTER_BITS 0x4338000000000000ull
#define EXP_MAX 709.0
#define EXP_MIN -708.0
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
/* degree 13: |error| < 1e-17 on |r| <= ln2/2 */
#define POLY_EXP(r) (1.0 + (r) * (1.0 + (r) * (T2 + (r) * (T3 + (r) * (T4 + (r) * (T5 + \
    (r) * (T6 + (r) * (T7 + (r) * (T8 + (r) * (T9 + (r) * (T10 + (r) * (T11 + (r) * \
    (T12 + (r) * T13)))))))))))))
#define EXP exp
#define LOG log
#define TANH tanh
#define FABS fabs
#define EPS DBL_EPSILON
#include "kernels_instance.h"

int eng_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int eng_get_num_threads(void) { return eng_threads; }

void eng_set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) eng_threads = eng_forked_after_team ? 1 : n;
#else
    (void)n;
#endif
}

int eng_get_epoch_threads(void) {
#ifdef _OPENMP
    if (eng_epoch_threads < 1) eng_epoch_threads = omp_get_max_threads();
    return eng_epoch_threads;
#else
    return 1;
#endif
}

void eng_set_epoch_threads(int n) {
    if (n > 0) eng_epoch_threads = eng_forked_after_team ? 1 : n;
}

int64_t eng_epoch_scratch_bytes(int n_layers, int64_t batch, const int *sizes) {
    int64_t widest = 1;
    for (int l = 0; l <= n_layers; l++) widest = sizes[l] > widest ? sizes[l] : widest;
    int64_t k = widest > batch ? widest : batch;
    /* a layer's inputs packed by columns (at most the widest layer, rounded up to the
       tile's 6 rows, times the batch; 8-byte REALs at most), then a panel of up to k rows
       of 64 bytes; rounded up to a cache line */
    int64_t packed = (widest + 5) / 6 * 6 * batch * 8;
    return (packed + k * 64 + 63) / 64 * 64;
}

int64_t eng_epoch_row_count(int n_layers, int64_t batch) {
    return batch * (1 + 2 * (int64_t)n_layers);   /* X, A and D rows */
}

int64_t eng_epoch_panel_elements(int64_t n_out, int64_t n_in, int itemsize) {
    int64_t pw = 64 / itemsize;
    return (n_out + pw - 1) / pw * pw * n_in;
}

int64_t eng_parallel_threshold(void) { return ENG_PAR_MIN; }

const char *eng_simd_variant(void) { return eng_cpu_avx2_fma() ? "avx2+fma" : "baseline"; }

void eng_force_baseline(int on) { eng_avx2_fma_state = on ? 0 : -1; }
