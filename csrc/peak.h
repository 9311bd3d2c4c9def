/* The FMA peak of this machine for one dtype (included by instantiate.h): every thread of a
   team runs the SIMD variant's register-only FMA loop; the rate is all their operations
   over the wall time of the whole team. The benchmarks report each epoch as a fraction of
   it, which compares across CPUs better than seconds do. */
double FN(eng_fma_gflops)(int threads, int64_t iters) {
    const FN(eng_workers) *wk = FN(workers)();
    double sink = 0.0, t0, t1;
    if (threads < 1) threads = 1;
    if (iters < 1) iters = 1;
    threads = eng_team(threads);
    wk->fma_loop(iters / 4 + 1);          /* wake the core up (clock, wide-vector units) */
#ifdef _OPENMP
    t0 = omp_get_wtime();
#else
    t0 = (double)clock() / CLOCKS_PER_SEC;
#endif
    #pragma omp parallel num_threads(threads) if (threads > 1) reduction(+ : sink)
    sink += wk->fma_loop(iters);
#ifdef _OPENMP
    t1 = omp_get_wtime();
#else
    t1 = (double)clock() / CLOCKS_PER_SEC;
#endif
    if (sink == 42.0) t1 += 1e-9;         /* keep the sums alive */
    return (double)threads * (double)iters * wk->fma_loop_flops / (t1 - t0) / 1e9;
}
