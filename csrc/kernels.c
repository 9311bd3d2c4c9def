/* Instantiates the generic kernels of kernels_impl.h for float and double. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements a loop runs on one thread: forking costs more than it saves,
   and idle OpenMP threads spinning beside BLAS's own threads slow both down. */
#ifndef ENG_PAR_MIN
#define ENG_PAR_MIN (1 << 18)
#endif

#define REAL float
#define S f
#define EXP expf
#define LOG logf
#define TANH tanhf
#define FABS fabsf
#define EPS FLT_EPSILON
#include "kernels_impl.h"
#undef REAL
#undef S
#undef EXP
#undef LOG
#undef TANH
#undef FABS
#undef EPS

#define REAL double
#define S d
#define EXP exp
#define LOG log
#define TANH tanh
#define FABS fabs
#define EPS DBL_EPSILON
#include "kernels_impl.h"

int eng_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int eng_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void eng_set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int64_t eng_parallel_threshold(void) { return ENG_PAR_MIN; }
