/* Parameters of the float instance of the generic kernels; dtype_undef.h removes them. */
#include "taylor.h"
#define REAL float
#define S f
#define UINT uint32_t                          /* an unsigned integer as wide as REAL */
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
#define LOG logf
#define TANH tanhf
#define SQRT sqrtf
#define FABS fabsf
#define EPS FLT_EPSILON
#define TINY FLT_MIN
