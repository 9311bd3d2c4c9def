/* One dtype's kernels, included by kernels.c after it defines REAL, S and the math macros:
   the workers (elementwise loops and GEMM tiles) for the baseline and for AVX2+FMA,
   then the drivers and the fused epoch. */
#define VARIANT base
#define TARGET
#include "kernels_workers.h"
#undef VARIANT
#undef TARGET
#define VARIANT avx2
#define TARGET ENG_AVX2_TARGET
#include "kernels_workers.h"
#undef VARIANT
#undef TARGET
#include "kernels_impl.h"
#include "kernels_epoch.h"
#undef WORKER
#undef WCALL
#undef WCALL2
#undef FN
#undef FN1
#undef FN2
