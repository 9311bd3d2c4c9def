/* Thread counts, fork handling and the choice of SIMD variant: the process-wide state of
   the kernels, kept out of the generic sources. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE                     /* sched_getaffinity, CPU_COUNT */
#endif
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#include "kernels.h"
#include "runtime.h"
#ifdef _OPENMP
#include <omp.h>
#include <pthread.h>
#endif

/* Threads for the elementwise kernels' OpenMP loops. 1 by default: inside training, every
   kernel runs between two BLAS calls, and OpenMP threads spinning beside BLAS's own threads
   make both crawl (measured: an epoch 20x slower on 2 cores). */
static int kernel_threads = 1;

/* Threads of the fused epoch, which calls no BLAS; 0: follow OpenMP's setting at each
   epoch (the cores, OMP_NUM_THREADS, or what threadpoolctl or joblib's workers set with
   omp_set_num_threads), so that limits set from outside reach the epoch. */
static int epoch_threads = 0;

/* GNU OpenMP cannot run a team in a child forked after the parent ran one (the child's
   pool refers to threads that fork did not copy, and its first parallel region hangs:
   measured with a multiprocessing pool after a fit). Such a child runs on one thread. */
static int team_started = 0;
static int forked_after_team = 0;

#ifdef _OPENMP
static void child_after_fork(void) {
    if (team_started) {
        forked_after_team = 1;
        epoch_threads = 1;
        kernel_threads = 1;
    }
}

__attribute__((constructor)) static void register_fork_handler(void) {
    pthread_atfork(NULL, NULL, child_after_fork);
}
#endif

/* ---------------------------------------------------------- stopping at a boundary */
static volatile sig_atomic_t stop_flag = 0;
static struct sigaction previous_sigint;
static int handler_installed = 0;

int eng_stop_requested(void) { return stop_flag != 0; }

void eng_request_stop(void) { stop_flag = 1; }

void eng_clear_stop(void) { stop_flag = 0; }

/* Ctrl-C during a fit: ask the epoch to stop at the next minibatch; the fit sees the flag
   when the epoch returns, puts its bookkeeping straight and raises KeyboardInterrupt. */
static void on_sigint(int sig) {
    (void)sig;
    stop_flag = 1;
}

int eng_install_interrupt_handler(void) {
    struct sigaction action;
    if (handler_installed) return 0;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGINT, &action, &previous_sigint) != 0) return -1;
    handler_installed = 1;
    return 0;
}

void eng_remove_interrupt_handler(void) {
    if (handler_installed) {
        sigaction(SIGINT, &previous_sigint, NULL);
        handler_installed = 0;
    }
}

unsigned eng_subnormals_off(void) {
#if defined(__SSE2__)
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u);             /* FTZ (bit 15) and DAZ (bit 6) */
    return saved;
#else
    return 0;
#endif
}

void eng_fp_restore(unsigned state) {
#if defined(__SSE2__)
    _mm_setcsr(state);
#else
    (void)state;
#endif
}

int eng_team(int n) {
    if (forked_after_team || n < 2) return 1;
    team_started = 1;
    return n;
}

int eng_kernel_threads(void) { return kernel_threads; }

int eng_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int eng_get_num_threads(void) { return kernel_threads; }

void eng_set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) kernel_threads = forked_after_team ? 1 : n;
#else
    (void)n;
#endif
}

/* The CPUs this process may run on (its affinity mask: a container's or taskset's share),
   at least 1. */
int eng_usable_cpus(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
#ifdef _OPENMP
    return omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
#else
    return 1;
#endif
}

/* OpenMP's setting is followed only up to the usable CPUs: OMP_NUM_THREADS=64 on 2 cores
   made a team of 64 threads wait on each other at every barrier (the first fit's tiles/BLAS
   calibration took over 400 s). An explicit set_epoch_threads(n) is taken as asked (at
   most ENG_MAX_EPOCH_THREADS): the thread-invariance tests run 3 threads on 2 cores. */
int eng_get_epoch_threads(void) {
#ifdef _OPENMP
    if (forked_after_team) return 1;
    if (epoch_threads > 0) return epoch_threads;
    int omp = omp_get_max_threads(), cpus = eng_usable_cpus();
    return omp < cpus ? omp : cpus;
#else
    return 1;
#endif
}

void eng_set_epoch_threads(int n) {
    if (n >= 0) epoch_threads = n;      /* a forked child stays at 1 (eng_get_epoch_threads) */
}

int eng_epoch_threads_setting(void) { return epoch_threads; }

int64_t eng_parallel_threshold(void) { return ENG_PAR_MIN; }

/* ------------------------------------------------------------------ SIMD variants */
static const char *const simd_names[ENG_SIMD_COUNT] = {
    "baseline", "avx2+fma", "avx512", "avx512-on-avx2"};

static int best_level = -1;     /* what this CPU runs best; -1: not probed yet */
static int forced_level = -1;   /* eng_force_simd's choice; -1: none */

static int cpu_best_level(void) {
    if (best_level < 0) {
        best_level = ENG_SIMD_BASE;
#if ENG_HAVE_SIMD_VARIANTS
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            best_level = ENG_SIMD_AVX2;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
                best_level = ENG_SIMD_AVX512;
        }
#endif
    }
    return best_level;
}

static int level_runs_here(int level) {
    int best = cpu_best_level();
    switch (level) {
    case ENG_SIMD_BASE: return 1;
    case ENG_SIMD_AVX2:
    case ENG_SIMD_AVX512_ON_AVX2: return best >= ENG_SIMD_AVX2;
    case ENG_SIMD_AVX512: return best >= ENG_SIMD_AVX512;
    default: return 0;
    }
}

int eng_op_code(const char *name) {
#define NAME_CASE(NAME, code, forward, derivative) if (strcmp(name, #NAME) == 0) return code;
    ENG_HIDDEN_OPS(NAME_CASE)
    ENG_SLOPE_OPS(NAME_CASE)
    ENG_OUTPUT_ONLY_OPS(NAME_CASE)
#undef NAME_CASE
    return -1;
}

int eng_op_keeps_slope(int code) {
#define SLOPE_CASE(NAME, op, forward, derivative) if (code == op) return 1;
    ENG_SLOPE_OPS(SLOPE_CASE)
#undef SLOPE_CASE
    return 0;
}

int eng_simd_level(void) { return forced_level >= 0 ? forced_level : cpu_best_level(); }

const char *eng_simd_variant(void) { return simd_names[eng_simd_level()]; }

const char *eng_simd_variant_name(int level) {
    return level >= 0 && level < ENG_SIMD_COUNT ? simd_names[level] : NULL;
}

int eng_simd_supported(int level) { return level_runs_here(level); }

int eng_force_simd(const char *name) {
    if (name == NULL || name[0] == '\0') {
        forced_level = -1;
        return 0;
    }
    for (int level = 0; level < ENG_SIMD_COUNT; level++) {
        if (strcmp(name, simd_names[level]) == 0) {
            if (!level_runs_here(level)) return -2;
            forced_level = level;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ team barrier */
/* How long a waiter spins before it sleeps: longer than the imbalance of a quiet minibatch
   phase, far shorter than a scheduler time slice. In time, not pause loops: a pause takes
   25 ns on AMD Zen 4 and about 40 on Intel since Skylake. 400 pauses (10 us on Zen 4) put
   the bf16 epoch's threads to sleep at most barriers of the deep network (784-32x6-10 b100,
   a minibatch phase of ~70 us): 0.080 s/epoch, 0.069 with 50 us; a sleep and its wake-up
   cost more than the spin. */
#ifndef ENG_BARRIER_SPIN_NS
#define ENG_BARRIER_SPIN_NS 50000
#endif

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void eng_barrier_init(eng_barrier *b, int n) {
    __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->round, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->sleepers, 0, __ATOMIC_RELAXED);
    b->n = n;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void sleep_while_round_is(eng_barrier *b, int round) {
#if defined(__linux__)
    syscall(SYS_futex, &b->round, FUTEX_WAIT_PRIVATE, round, NULL, NULL, 0);
#else
    (void)b;
    (void)round;
    CPU_RELAX();
#endif
}

static void wake_all(eng_barrier *b) {
#if defined(__linux__)
    syscall(SYS_futex, &b->round, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)b;
#endif
}

void eng_barrier_wait(eng_barrier *b) {
    if (b->n < 2) return;
    int round = __atomic_load_n(&b->round, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
        /* the last to arrive opens the next round; its release publishes everyone's
           writes (they reached it through the acq_rel count) */
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&b->round, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST) > 0) wake_all(b);
        return;
    }
    const int64_t until = now_ns() + ENG_BARRIER_SPIN_NS;
    for (int i = 1;; i++) {
        if (__atomic_load_n(&b->round, __ATOMIC_ACQUIRE) != round) return;
        CPU_RELAX();
        if (i % 32 == 0 && now_ns() > until) break;          /* the clock every ~1 us */
    }
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    /* the futex sleeps only while round still holds the value read above: a wake that
       comes between the check and the sleep is never lost */
    while (__atomic_load_n(&b->round, __ATOMIC_SEQ_CST) == round) sleep_while_round_is(b, round);
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
}
