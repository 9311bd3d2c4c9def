/* What csrc/bf16.c shares with the bf16 epoch (csrc/bf16_epoch.c): the rounding, the
   padding of packed operands, and the product of packed operands on a path. */
#ifndef ENG_BF16_H
#define ENG_BF16_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define KPAD 32          /* K padded to one AMX A-tile row: 32 bf16 = 64 bytes */
#define MPAD 32          /* two 16-row tiles of c */
#define NPAD 32          /* two 16-column tiles of c */

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    /* branch free, so that the packers' loops vectorize */
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  /* nearest, ties even */
    const uint32_t quiet = (u >> 16) | 0x40u;                          /* NaN stays a NaN */
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

/* packed operands start on a cache line: a tile row of 64 bytes then touches one line,
   not two (malloc's 16-byte alignment split every row); free() releases it */
static inline void *alloc_lines(size_t bytes) {
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

/* Row lengths of packed operands, one cache line longer than their data: a tile load reads
   16 rows at this stride, and a stride of a multiple of 4 KB (1024 wide layers) sent all 16
   to one L1 set (a 784-1024-1024-10 epoch ran 40% slower per product than 992 or 1056) */
static inline int64_t A_LD(int64_t kp) { return kp + 32; }      /* bf16 per row of a */
static inline int64_t B_LD(int64_t np) { return np + 16; }      /* pairs per row of b */

/* c (m x n, row stride ldc) = a . b on a path (which must run here), one thread: a holds
   bf16 rows of kp (a multiple of KPAD on the AMX path, even on the others; lda per row,
   round_up(m, 16) rows readable), b pairs of k (ldb pairs per row, round_up(n, 16) columns
   readable); the rows and columns past m and n are read, never written */
void eng_bf16_kernel(int path, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                     float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp);
/* the portable path's (csrc/bf16_kernels.c), in the SIMD variant in use; and the
   AVX512-BF16 path's (x86-64 builds with GCC 10+) */
void eng_bf16_portable_kernel(const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                              float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp);
void eng_bf16_avx512_kernel(const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                            float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp);
/* the AVX512-BF16 and AMX paths' kernels on their instructions emulated in software
   (bf16_kernels.c: AVX2; bf16_emulated.c: plain C), which the tests run where the CPU
   lacks the instructions (eng_bf16_emulate) */
void eng_bf16_avx512_emulated_kernel(const uint16_t *a, int64_t lda, const uint16_t *b,
                                     int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n,
                                     int64_t kp);
void eng_bf16_amx_emulated_kernel(const uint16_t *a, int64_t lda, const uint16_t *b,
                                  int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n,
                                  int64_t kp);
/* whether `path` runs here on its kernel emulated in software */
int eng_bf16_emulated(int path);
/* the same, products past PAR_MIN_MACS split by 32-column blocks between the epoch's threads */
void eng_bf16_product(int path, const uint16_t *a, int64_t lda, const uint16_t *b,
                      int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp);
/* The packers of the operands (a: bf16 rows, ld* in bf16; b: pairs of k, ld* in pairs), one
   table per conversion: portable (csrc/bf16_pack.c: to_bf16 in loops that vectorize) and
   AVX512-BF16 (csrc/bf16_pack_avx512.c: vcvtne2ps2bf16). Each writes only what it says:
   the padding past it must be zero already (the buffers are zeroed when made). */
typedef struct {
    /* a: rows of src (rows x cols, row stride ld) as bf16 rows of kp (zero past cols) */
    void (*rows)(const float *src, int64_t rows, int64_t cols, int64_t ld, uint16_t *dst,
                 int64_t ldd, int64_t kp);
    /* a: src^T (src: rows x cols, contiguous): row j < cols is column j of src, kp long
       (zero past rows) */
    void (*columns)(const float *src, int64_t rows, int64_t cols, uint16_t *dst, int64_t ldd,
                    int64_t kp);
    /* b: src (k x n, row stride ld) as kp / 2 pair rows of round_up(n, 16) (zero past k, n) */
    void (*pairs_of_rows)(const float *src, int64_t k, int64_t n, int64_t ld, uint32_t *dst,
                          int64_t ldd, int64_t kp);
    /* b: the same from bf16 rows (src: k rows of at least round_up(n, 16), ld apart) */
    void (*pairs_of_bf16_rows)(const uint16_t *src, int64_t ld, int64_t k, int64_t n,
                               uint32_t *dst, int64_t ldd, int64_t kp);
    /* b: W^T (W: n x k) for the outputs (columns) [j0, j1) only: the pair rows of k (the
       columns past n stay the zeros they were made) */
    void (*pairs_of_columns)(const float *w, int64_t k, int64_t j0, int64_t j1, uint32_t *dst,
                             int64_t ldd);
} eng_bf16_packers;

extern const eng_bf16_packers eng_bf16_packers_portable, eng_bf16_packers_avx512;
/* the packers a path's operands are made with (an emulated path's: the portable ones) */
static inline const eng_bf16_packers *eng_bf16_packers_for(int path) {
    return path == ENG_BF16_PORTABLE || eng_bf16_emulated(path) ? &eng_bf16_packers_portable
                                                                 : &eng_bf16_packers_avx512;
}
#endif
