/* bf16-mixed products: c = op(a) . op(b) with both operands rounded to bfloat16 (round to
   nearest even) and the products accumulated in float32, on one of three paths chosen at
   load time (csrc/kernels.h, eng_bf16_*):

     ENG_BF16_PORTABLE  any CPU: float32 multiply-adds on the bf16 operands widened
                        (csrc/bf16_kernels.c)
     ENG_BF16_AVX512    vdpbf16ps (AVX512-BF16: Intel Cooper Lake and later, AMD Zen 4/5;
                        csrc/bf16_kernels.c)
     ENG_BF16_AMX       tdpbf16ps on AMX tiles (Intel Sapphire Rapids and later)

   Every path packs op(a) as bf16 rows of K (padded to 32) and op(b) in the
   pair-interleaved ("VNNI") layout both instructions read: element (k, j) of op(b) at
   [k / 2][j][k % 2]. A product of two bf16 values is exact in float32, so the paths differ
   only in the order of the float32 additions (bounded like any float32 reduction).

   For the tests, a CPU without AVX512-BF16 or AMX runs those paths on their instructions
   emulated in software (eng_bf16_emulate: csrc/bf16_emulated.c, bf16_kernels.c), where asked
   and never by default. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels.h"
#include "runtime.h"
#include "bf16.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* products of at least this many multiply-adds (padded) are split between the epoch's
   threads by 32-column blocks of c (each block computed whole by one thread, so results do
   not depend on the thread count). Below it the team's start and stop cost more than they
   save: split, the lecture's products (128 x 128 x 800, 13M) made its epoch 0.084 -> 0.13 s;
   the wide network's (256 x 1024 x 1024, 268M) gain */
#define PAR_MIN_MACS (64 << 20)

/* ------------------------------------------------------------------ AVX512-BF16 */
#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 10)
#define ENG_HAVE_BF16_PATHS 1

/* ------------------------------------------------------------------ AMX */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* All eight tiles 16 rows x 64 bytes (palette 1): four float32 16 x 16 accumulators and
   two bf16 tiles of each operand. Per thread: a thread's tile state is its own. */
__attribute__((target("amx-tile")))
static void load_tile_config(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#define AMX_NAME(x) x
#define TILE_START() load_tile_config()
#define TILE_END() _tile_release()
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_LOAD(t, p, stride) _tile_loadd(t, p, stride)
#define TILE_STORE(t, p, stride) _tile_stored(t, p, stride)
#define TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#include "bf16_amx_body.h"
#include "bf16_amx_undef.h"

/* GFLOP/s of `iters` rounds of register-only bf16 dot products on one thread: four AMX
   accumulators (16 x 16 x 32 multiply-adds per tdpbf16ps), or eight vdpbf16ps accumulators
   (16 x 2 per instruction): the peak a bf16 product can reach, for reporting fractions */
__attribute__((target("amx-tile,amx-bf16")))
static double amx_peak(int64_t iters) {
    static uint16_t a[16 * 32], b[16 * 32];
    load_tile_config();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    _tile_release();
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return 4.0 * 2 * 16 * 16 * 32 * (double)iters / s / 1e9;
}

__attribute__((target("avx512f,avx512bf16")))
static double avx512_peak(int64_t iters) {
    __m512 acc[8];
    for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = x;   /* pairs of 1.0 */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t i = 0; i < iters; i++)
        for (int r = 0; r < 8; r++) acc[r] = _mm512_dpbf16_ps(acc[r], x, y);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    __m512 sum = acc[0];
    for (int r = 1; r < 8; r++) sum = _mm512_add_ps(sum, acc[r]);
    volatile float sink = _mm512_reduce_add_ps(sum);      /* keeps the loop */
    (void)sink;
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return 8.0 * 2 * 32 * (double)iters / s / 1e9;
}

double eng_bf16_peak_gflops(int path, int64_t iters) {
    if (!eng_bf16_supported(path) || eng_bf16_emulated(path)) return 0.0;
    if (path == ENG_BF16_AMX) return amx_peak(iters);
    if (path == ENG_BF16_AVX512) return avx512_peak(iters);
    return 0.0;
}

/* The kernel grants AMX's tile data to a process that asks (Linux 5.16 and later); a
   kernel that refuses, or an older one, leaves AMX off. */
static int amx_permitted(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                   18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return 0;
#endif
}

static int cpu_has(int leaf, int subleaf, int reg, int bit) {
    unsigned int r[4];
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(subleaf));
    return (r[reg] >> bit) & 1u;
}

static int os_saves_zmm(void) {
    if (!cpu_has(1, 0, 2, 27)) return 0;                      /* OSXSAVE */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6u) == 0xe6u;                             /* SSE, AVX, opmask, ZMM */
}

static void simd_kernel(int path, const uint16_t *a, int64_t lda, const uint16_t *b,
                        int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp) {
    if (path == ENG_BF16_AMX)
        amx_kernel(a, lda, b, ldb, c, ldc, m, n, kp);
    else
        eng_bf16_avx512_kernel(a, lda, b, ldb, c, ldc, m, n, kp);
}
#else
#define ENG_HAVE_BF16_PATHS 0

double eng_bf16_peak_gflops(int path, int64_t iters) {
    (void)path, (void)iters;
    return 0.0;
}

static void simd_kernel(int path, const uint16_t *a, int64_t lda, const uint16_t *b,
                        int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp) {
    (void)path, (void)a, (void)lda, (void)b, (void)ldb, (void)c, (void)ldc, (void)m, (void)n,
        (void)kp;
}
#endif

void eng_bf16_kernel(int path, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb,
                     float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp) {
    if (m <= 0 || n <= 0) return;
    if (path == ENG_BF16_PORTABLE)
        eng_bf16_portable_kernel(a, lda, b, ldb, c, ldc, m, n, kp);
    else if (eng_bf16_emulated(path))
        (path == ENG_BF16_AMX ? eng_bf16_amx_emulated_kernel
                              : eng_bf16_avx512_emulated_kernel)(a, lda, b, ldb, c, ldc, m, n,
                                                                 kp);
    else
        simd_kernel(path, a, lda, b, ldb, c, ldc, m, n, kp);
}

void eng_bf16_product(int path, const uint16_t *a, int64_t lda, const uint16_t *b,
                      int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n, int64_t kp) {
    const int64_t blocks = (n + 31) / 32;
    int threads = 1;
    if (round_up(m, MPAD) * round_up(n, NPAD) * kp >= PAR_MIN_MACS && blocks > 1) {
        threads = eng_get_epoch_threads();
        threads = eng_team(threads < blocks ? threads : (int)blocks);
    }
#ifdef _OPENMP
    if (threads > 1) {
        #pragma omp parallel num_threads(threads)
        {
            const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
            const int64_t j0 = blocks * t / nt * 32, j1 = blocks * (t + 1) / nt * 32;
            eng_bf16_kernel(path, a, lda, b + j0 * 2, ldb, c + j0, ldc, m,
                            (j1 < n ? j1 : n) - j0, kp);
        }
        return;
    }
#endif
    eng_bf16_kernel(path, a, lda, b, ldb, c, ldc, m, n, kp);
}

/* ------------------------------------------------------------------ choice of path */
static int probed = 0, supported[ENG_BF16_PATHS], forced = -1, slow_dot = 0, emulating = 0;
static const char *reasons[ENG_BF16_PATHS];
static char slow_reason[200], emulated_reasons[ENG_BF16_PATHS][240];
static const char *const names[ENG_BF16_PATHS] = {"portable", "avx512-bf16", "amx"};

static void probe(void) {
    if (probed) return;
    probed = 1;
    supported[ENG_BF16_PORTABLE] = 1;
    reasons[ENG_BF16_PORTABLE] = "runs on any CPU";
    reasons[ENG_BF16_AVX512] = reasons[ENG_BF16_AMX] = "not an x86-64 build with GCC 10+";
#if ENG_HAVE_BF16_PATHS
    unsigned int max_leaf, b, c, d;
    __asm__ volatile("cpuid" : "=a"(max_leaf), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    if (max_leaf < 7) {
        reasons[ENG_BF16_AVX512] = reasons[ENG_BF16_AMX] = "the CPU reports no leaf 7 features";
        return;
    }
    __builtin_cpu_init();
    int avx512bf16 = os_saves_zmm() && __builtin_cpu_supports("avx512f") &&
                     __builtin_cpu_supports("avx512bw") && cpu_has(7, 1, 0, 5);
    supported[ENG_BF16_AVX512] = avx512bf16;
    reasons[ENG_BF16_AVX512] = avx512bf16 ? "the CPU has AVX512-BF16 (vdpbf16ps)"
                                          : "the CPU (or OS) has no AVX512-BF16";
    int amx_cpu = cpu_has(7, 0, 3, 22) && cpu_has(7, 0, 3, 24);   /* AMX-BF16, AMX-TILE */
    if (!amx_cpu) {
        reasons[ENG_BF16_AMX] = "the CPU has no AMX-BF16 tiles";
    } else if (!amx_permitted()) {
        reasons[ENG_BF16_AMX] = "the CPU has AMX, but the kernel refused the tile data "
                                "permission (arch_prctl ARCH_REQ_XCOMP_PERM)";
    } else {
        supported[ENG_BF16_AMX] = 1;
        reasons[ENG_BF16_AMX] = "the CPU has AMX-BF16 tiles and the kernel grants them";
    }
    if (avx512bf16 && !supported[ENG_BF16_AMX] && eng_bf16_dot_vs_fma() < 1.2) slow_dot = 1;
#endif
}

/* vdpbf16ps over float32 FMAs, one thread each (register-only loops): below 1.2 the
   AVX512 path is not chosen by default, since the portable one (float32 FMAs on widened
   operands) is as fast: Sapphire Rapids runs vdpbf16ps at half its FMA rate */
double eng_bf16_dot_vs_fma(void) {
#if ENG_HAVE_BF16_PATHS
    probe();                                /* (which calls this once, after setting it) */
    if (!supported[ENG_BF16_AVX512]) return 0.0;
    double dot = avx512_peak(1 << 15), fma = eng_fma_gflops_f(1, 1 << 15);
    snprintf(slow_reason, sizeof slow_reason, "the CPU has AVX512-BF16, but its vdpbf16ps "
             "(%.0f GFLOP/s) is not faster than float32 FMAs (%.0f) here: used only when "
             "forced", dot, fma);
    return fma > 0 ? dot / fma : 0.0;
#else
    return 0.0;
#endif
}

int eng_bf16_supported(int path) {
    probe();
    return path >= 0 && path < ENG_BF16_PATHS && (supported[path] || eng_bf16_emulated(path));
}

int eng_bf16_emulated(int path) {
    probe();
    if (!emulating || path <= ENG_BF16_PORTABLE || path >= ENG_BF16_PATHS || supported[path])
        return 0;
    /* the emulated vdpbf16ps is built for AVX2 */
    return path == ENG_BF16_AMX || eng_simd_supported(ENG_SIMD_AVX2);
}

void eng_bf16_emulate(int on) {
    probe();
    emulating = on != 0;
    if (!emulating && forced >= 0 && !supported[forced]) forced = -1;
}

const char *eng_bf16_reason(int path) {
    probe();
    if (eng_bf16_emulated(path)) {
        snprintf(emulated_reasons[path], sizeof emulated_reasons[path],
                 "emulated in software for the tests (%s)", reasons[path]);
        return emulated_reasons[path];
    }
    if (path == ENG_BF16_AVX512 && slow_dot) return slow_reason;
    return path >= 0 && path < ENG_BF16_PATHS ? reasons[path] : "no such path";
}

const char *eng_bf16_name(int path) {
    return path >= 0 && path < ENG_BF16_PATHS ? names[path] : NULL;
}

int eng_bf16_path(void) {
    probe();
    if (forced >= 0) return forced;
    for (int p = ENG_BF16_PATHS - 1; p > 0; p--)
        if (supported[p] && !(p == ENG_BF16_AVX512 && slow_dot)) return p;
    return ENG_BF16_PORTABLE;
}

int eng_bf16_force(int path) {
    probe();
    if (path < 0) {
        forced = -1;
        return 0;
    }
    if (!eng_bf16_supported(path)) return -1;
    forced = path;
    return 0;
}
