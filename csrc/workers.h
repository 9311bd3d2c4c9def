/* One SIMD variant's workers for one dtype, included by instantiate.h with the dtype's
   parameters (dtype_*.h) and the variant's: V (name suffix), TARGET (instruction set
   attribute), VBYTES (vector width) and MR (rows of a GEMM tile). Ends with the variant's
   table of worker pointers, through which the drivers call it. */
typedef REAL VFN(vec) __attribute__((vector_size(VBYTES)));
#define VEC VFN(vec)
#define VLEN ((int)(VBYTES / sizeof(REAL)))
#define PW (2 * VLEN)

#include "workers_elementwise.h"
#include "workers_gemm.h"

static const FN(eng_workers) VFN(workers) = {
    MR, PW, VFN(bias_act_rows), VFN(act_backward_range), VFN(update_range),
    VFN(gemm_nn), VFN(gemm_tn_update), VFN(pack_delta_row), VFN(to_panels), VFN(from_panels),
    VFN(panel_step),
    VFN(fma_loop),
    PEAK_ACC * VLEN * 2, VFN(dropout_rows), VFN(dropout_backward_rows),
};
#undef PEAK_ACC

#undef VEC
#undef VLEN
#undef PW
