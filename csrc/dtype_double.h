/* Parameters of the double instance of the generic kernels; dtype_undef.h removes them. */
#include "taylor.h"
#define REAL double
#define S d
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
#define LOG log
#define TANH tanh
#define SQRT sqrt
#define FABS fabs
#define EPS DBL_EPSILON
#define TINY DBL_MIN
