/* The products of the portable and AVX512-BF16 paths, from one kernel body
   (bf16_kernel_body.h). The portable path is bf16 storage with float32 compute, for CPUs
   without AVX512-BF16 or AMX (and where vdpbf16ps is slow). Both take the packed operands
   the AMX path takes (bf16.h), so the fused epoch, the forward pass and gemm_bf16 run the
   same code on every path but the product.

   A product of two bf16 values has at most 16 significant bits, so it is exact in float32
   and a fused multiply-add rounds exactly as a multiply then an add: each sum, taken over k
   in order, has the same bits in every SIMD variant (unless a product underflows). */
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels.h"
#include "names.h"
#include "runtime.h"
#include "bf16.h"

/* pairs of k per stretch: 8 rows of a staged (16 KB widened, 8 KB as pairs) stay in L1 */
#define KC_PAIRS 256

#define S f
#define DOT_BF16 0
/* SSE2 has 16-byte vectors: 32-byte ones are not split well there (40x slower) */
#define V base
#define TARGET
#define VBYTES 16
#define MR 6
#include "bf16_kernel_body.h"
#include "variant_undef.h"

#define V avx2
#define TARGET ENG_AVX2_TARGET
#define VBYTES 32
#define MR 6
#include "bf16_kernel_body.h"
#include "variant_undef.h"

/* 8 rows x 2 vectors (as the AVX512-BF16 kernel below) */
#define V avx512
#define TARGET ENG_AVX512_TARGET
#define VBYTES 64
#define MR 8
#include "bf16_kernel_body.h"
#include "variant_undef.h"

#define V avx512_on_avx2
#define TARGET ENG_AVX2_TARGET
#define VBYTES 64
#define MR 8
#include "bf16_kernel_body.h"
#include "variant_undef.h"
#undef DOT_BF16

/* vdpbf16ps: 8 rows x 2 vectors. Measured on an AMD Zen 4 (2 cores) against 12 rows: the
   same on the lecture and wide epochs, 10% faster on the deep one, whose units phase hands
   each thread 16 rows (12 rows left a block of 4) */
#define DOT_BF16 1
#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 10)
#define DPBF16(acc, x, y) _mm512_dpbf16_ps(acc, (__m512bh)(x), (__m512bh)(y))
#define V avx512bf16
#define TARGET __attribute__((target("avx512f,avx512bf16")))
#define VBYTES 64
#define MR 8
#include "bf16_kernel_body.h"
#include "variant_undef.h"
#undef DPBF16

void eng_bf16_avx512_kernel(const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                            float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp) {
    if (m > 0 && n > 0) kernel_f_avx512bf16(a, lda, b, ldb, c, ldc, m, n, kp);
}
#endif

/* The same kernel on vdpbf16ps emulated with AVX2 (the tests run the AVX512-BF16 path's
   kernel on CPUs without it: eng_bf16_emulate): per lane, as the instruction set
   reference writes it, the odd k's product added first, then the even k's (exact
   products; the instruction's flushing of subnormals is not emulated) */
typedef uint32_t emulated_pairs __attribute__((vector_size(64)));
typedef float emulated_sums __attribute__((vector_size(64)));
#define ODD_HALVES ((emulated_pairs){0} + 0xffff0000u)
#define DPBF16(acc, x, y)                                                      \
    ((acc) + (emulated_sums)((x) & ODD_HALVES) * (emulated_sums)((y) & ODD_HALVES) \
     + (emulated_sums)((x) << 16) * (emulated_sums)((y) << 16))
#define V avx512bf16_emulated
#define TARGET ENG_AVX2_TARGET
#define VBYTES 64
#define MR 8
#include "bf16_kernel_body.h"
#include "variant_undef.h"
#undef DPBF16
#undef ODD_HALVES
#undef DOT_BF16

void eng_bf16_avx512_emulated_kernel(const uint16_t *a, int64_t lda, const uint16_t *b,
                                     int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n,
                                     int64_t kp) {
    if (m > 0 && n > 0) kernel_f_avx512bf16_emulated(a, lda, b, ldb, c, ldc, m, n, kp);
}
#undef S
#undef KC_PAIRS

typedef void (*portable_fn)(const uint16_t *, int64_t, const uint16_t *, int64_t, float *,
                            int64_t, int64_t, int64_t, int64_t);

/* indexed by ENG_SIMD_* (the tests force each variant the CPU runs) */
static const portable_fn variants[ENG_SIMD_COUNT] = {
    kernel_f_base, kernel_f_avx2, kernel_f_avx512, kernel_f_avx512_on_avx2};

void eng_bf16_portable_kernel(const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                              float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp) {
    if (m > 0 && n > 0) variants[eng_simd_level()](a, lda, b, ldb, c, ldc, m, n, kp);
}
