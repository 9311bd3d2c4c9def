/* The AMX kernel on tiles emulated in software: the same source as the real one
   (bf16_amx_body.h) over eight thread-local 16 x 64-byte tiles, so that the tests run the
   AMX path's kernel, packing and epoch (16-row units, K padded to 32) on any CPU, and the
   sanitizer build checks what its tile loads and stores touch. Never chosen by default:
   only where the tests ask for it (eng_bf16_emulate) and the CPU has no AMX of its own.

   tdpbf16ps as the instruction set reference writes it: for each row m of c, each pair k
   of a's row and each column n, c[m][n] += a[m][2k] b[k][2n], then += a[m][2k+1]
   b[k][2n+1], in float32 (exact products, so one rounding per addition). The instruction
   also flushes subnormal inputs and sums to zero; this does not. */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "bf16.h"

typedef union {
    unsigned char bytes[16][64];
    float f32[16][16];
    uint16_t bf16[16][32];
} tile;

static _Thread_local tile tiles[8];

static void tile_zero(int t) { memset(&tiles[t], 0, sizeof(tile)); }

static void tile_load(int t, const void *p, size_t stride) {
    for (int r = 0; r < 16; r++) memcpy(tiles[t].bytes[r], (const char *)p + r * stride, 64);
}

static void tile_store(int t, void *p, size_t stride) {
    for (int r = 0; r < 16; r++) memcpy((char *)p + r * stride, tiles[t].bytes[r], 64);
}

static void tile_dp(int c, int a, int b) {
    for (int m = 0; m < 16; m++) {
        float *row = tiles[c].f32[m];
        for (int k = 0; k < 16; k++) {
            const float a0 = from_bf16(tiles[a].bf16[m][2 * k]);
            const float a1 = from_bf16(tiles[a].bf16[m][2 * k + 1]);
            const uint16_t *pairs = tiles[b].bf16[k];
            for (int n = 0; n < 16; n++) {
                row[n] += a0 * from_bf16(pairs[2 * n]);
                row[n] += a1 * from_bf16(pairs[2 * n + 1]);
            }
        }
    }
}

#define AMX_TARGET
#define AMX_NAME(x) x##_emulated
#define TILE_START() ((void)0)
#define TILE_END() ((void)0)
#define TILE_ZERO(t) tile_zero(t)
#define TILE_LOAD(t, p, stride) tile_load(t, p, stride)
#define TILE_STORE(t, p, stride) tile_store(t, p, stride)
#define TILE_DP(c, a, b) tile_dp(c, a, b)
#include "bf16_amx_body.h"
#include "bf16_amx_undef.h"

void eng_bf16_amx_emulated_kernel(const uint16_t *a, int64_t lda, const uint16_t *b,
                                  int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n,
                                  int64_t kp) {
    amx_kernel_emulated(a, lda, b, ldb, c, ldc, m, n, kp);
}
