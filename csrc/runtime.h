/* What the generic kernels need from runtime.c: thread counts, the fork guard and the SIMD
   variant chosen for this CPU. Internal to the extension (kernels.h is the public API). */
#ifndef ENGINE_RUNTIME_H
#define ENGINE_RUNTIME_H

#include <stdint.h>

/* helpers forced inline, so that each SIMD variant compiles them for its own target */
#if defined(__GNUC__)
#define ENG_INLINE static inline __attribute__((always_inline))
#else
#define ENG_INLINE static inline
#endif

/* elements below which an elementwise kernel stays on one thread (forking costs more) */
#ifndef ENG_PAR_MIN
#define ENG_PAR_MIN (1 << 18)
#endif
/* elements per unit of work handed to a worker */
#define ENG_CHUNK 16384

/* The SIMD variants the workers are compiled for, in the order of the workers tables. The
   last one is the AVX-512 source and tile shape compiled for AVX2 (GCC lowers each 64-byte
   vector to two 32-byte ones): the tests run the 64-byte code with it on CPUs without
   AVX-512; it is never chosen automatically. */
enum { ENG_SIMD_BASE = 0, ENG_SIMD_AVX2, ENG_SIMD_AVX512, ENG_SIMD_AVX512_ON_AVX2,
       ENG_SIMD_COUNT };

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(ENG_NO_SIMD)
#define ENG_AVX2_TARGET __attribute__((target("avx2,fma")))
#define ENG_AVX512_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")))
#define ENG_HAVE_SIMD_VARIANTS 1
#else
#define ENG_AVX2_TARGET
#define ENG_AVX512_TARGET
#define ENG_HAVE_SIMD_VARIANTS 0
#endif

/* Bounds on the tile shapes of all variants, for sizing buffers once for any of them:
   rows of a GEMM tile (MR) and bytes of a weight panel (two vectors). */
#define ENG_MAX_MR 16
#define ENG_MAX_PANEL_BYTES 128
/* the fewest rows of any variant's GEMM tile */
#define ENG_MIN_MR 6

/* rows of the AVX-512 variant's GEMM tile (<= ENG_MAX_MR; -D to measure another) */
#ifndef ENG_AVX512_MR
#define ENG_AVX512_MR 12
#endif

/* A barrier for the fused epoch's team that spins only briefly, then sleeps (a futex on
   Linux): a thread that waits for a descheduled teammate hands its CPU back instead of
   burning it (OpenMP's barrier spins for milliseconds, and under load an epoch took 10x
   its quiet time). Initialise with eng_barrier_init before the team uses it. */
typedef struct {
    int count;      /* threads arrived in this round */
    int round;      /* bumped by the last arrival: the waiters' signal */
    int sleepers;   /* threads asleep on `round` (wake only when someone sleeps) */
    int n;          /* team size */
} eng_barrier;

void eng_barrier_init(eng_barrier *b, int n);
void eng_barrier_wait(eng_barrier *b);

/* Chunks of a phase's work shared by a team, with stealing: each thread owns a list of
   chunks (the ones an even split gives it, whose data its cache holds from the last
   minibatch) and takes them in order; then it takes the chunks other threads have not yet
   started, so a thread slowed by other work on its core hands its rest over instead of
   holding the team up at the next barrier. counters: one per thread, ENG_QUEUE_STRIDE ints
   apart (a cache line each), zero at the start; each thread sets its own back to zero
   when no thread can be taking chunks any more (after the next barrier). own[u]: the
   chunks thread u owns. Returns the index in its owner's list (*owner) of the next chunk
   for thread t, or -1 when all are taken. */
#define ENG_QUEUE_STRIDE 16
static inline int eng_take_chunk(int *counters, int t, int nt, const int *own, int *owner) {
    for (int k = 0; k < nt; k++) {
        int u = t + k < nt ? t + k : t + k - nt;
        if (__atomic_load_n(&counters[u * ENG_QUEUE_STRIDE], __ATOMIC_RELAXED) >= own[u])
            continue;
        int c = __atomic_fetch_add(&counters[u * ENG_QUEUE_STRIDE], 1, __ATOMIC_RELAXED);
        if (c < own[u]) {
            *owner = u;
            return c;
        }
    }
    return -1;
}

/* Dropout masks from counters, not a stream: unit j of row r (its place in the minibatch) of
   hidden layer l is kept when eng_dropout_bits(row key, j) >= threshold, threshold = the
   drop rate times 2^24. The row key mixes the minibatch's key with l and r; the minibatch's
   key mixes the epoch's key (from the model's seed and the epoch) with the minibatch's
   number. So a mask is the same on any backend, thread count or SIMD variant, and the
   backward pass draws it again instead of storing it. engine/backends/numpy_backend.py
   spells out the same arithmetic. */
static inline uint64_t eng_mix64(uint64_t z) {          /* splitmix64's finalizer */
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint32_t eng_mix32(uint32_t h) {          /* murmur3's finalizer */
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

static inline uint32_t eng_dropout_minibatch_key(uint64_t epoch_key, int64_t minibatch) {
    uint64_t k = eng_mix64(epoch_key + (uint64_t)minibatch);
    return (uint32_t)(k ^ (k >> 32));
}

static inline uint32_t eng_dropout_row_key(uint32_t key, int layer, int64_t row) {
    return eng_mix32(key ^ ((uint32_t)layer << 24) ^ (uint32_t)row);
}

static inline uint32_t eng_dropout_bits(uint32_t row_key, int64_t unit) {
    return eng_mix32(row_key + (uint32_t)unit * 0x9E3779B1u) >> 8;
}

/* set (by a signal handler) to ask a running fused epoch to stop at its next minibatch
   boundary */
int eng_stop_requested(void);

/* the variant the drivers call now (ENG_SIMD_*) */
int eng_simd_level(void);
/* threads the elementwise kernels' OpenMP loops may use */
int eng_kernel_threads(void);
/* the team size a parallel region may use: n, or 1 in a child forked after a team ran */
int eng_team(int n);

/* Subnormal numbers off in the calling thread (x86: MXCSR flush-to-zero and
   denormals-are-zero) until eng_fp_restore(the returned state). The fused epoch runs so:
   Adam's moments of inputs that are never active (MNIST's blank border pixels) decay into
   the subnormal range, where every operation on them takes ~100 cycles, and an epoch
   slowed by a fifth over a few epochs. Only values below the dtype's smallest normal
   number (1.2e-38 float32, 2.2e-308 float64) change: they count as 0. */
unsigned eng_subnormals_off(void);
void eng_fp_restore(unsigned state);

#endif
