/* The fused training epoch, for one dtype (included by instantiate.h after the two product
   providers): one driver, its products taken from the GEMM tiles (epoch_tiles.h, the
   default) or from BLAS (epoch_blas.h, when the plan carries a BLAS gemm).

   Each minibatch runs in two phases, separated by barriers:
     1. rows: forward pass, output delta and backward deltas (rows do not interact there);
     2. weights: every layer's gradient and, at once, its step;
   or, in the stored-gradient mode (a reduce hook in the plan), every gradient formed first,
   thread 0 reduces them (data-parallel training sums the ranks' gradients there), then
   every layer steps. The step count, the minibatch's weight, the L2 term, the dropout key,
   the loss and the stop requests are this driver's, the same for both providers.

   On the tiles a team of threads shares each phase: each thread first takes its own share
   of the chunks, then steals the chunks another thread has not started (eng_take_chunk),
   so a thread slowed by other work on its core (or a slower core) takes fewer: an even
   split would make the whole team wait for it at every barrier. Each output is computed
   the same way whichever thread takes its chunk, so results do not depend on the thread
   count. On BLAS the calling thread runs alone; BLAS has its own threads. */

/* Stored-gradient mode, thread 0 between the gradient (in GW and GB) and the step: the
   reduction. Returns its status (nonzero: stop before this step); *loss and *weight become
   the ones to step with, and *squares the weights' sum of squares (for the L2 term) when
   alpha > 0. */
static int FN(epoch_reduce)(const FN(eng_workers) *wk, const eng_epoch_plan *P, int64_t i,
                            double alpha, double *loss, double *weight, double *squares) {
    const int *s = P->sizes;
    int status = P->reduce(P->reduce_ctx, i, loss, weight);
    if (status != 0) return status;
    if (!(*weight > 0)) *weight = 1.0;         /* nothing anywhere: a zero step */
    *squares = 0.0;
    if (alpha > 0 && P->blas_gemm != NULL)
        *squares = FN(weight_squares_of_w)(P);
    else if (alpha > 0)  /* the panels' padding is 0; their tail copy is left out */
        for (int l = 0; l < P->n_layers; l++)
            *squares += FN(eng_sq_norm)((const REAL *)P->WT[l],
                                        (s[l + 1] + wk->pw - 1) / wk->pw * wk->pw * s[l]);
    return 0;
}

int64_t FN(eng_fused_epoch)(const eng_epoch_plan *P, const REAL *X, const int64_t *y,
                            const REAL *T, const REAL *SW, const int64_t *order,
                            int64_t count, const eng_rule *rule, double alpha,
                            double *losses) {
    const int L = P->n_layers;
    const int *s = P->sizes;
    const int64_t batch = P->batch;
    const REAL **rows = (const REAL **)P->rows;
    const FN(eng_workers) *wk = FN(workers)();
    int64_t done = 0;           /* minibatches trained; thread 0 also decides when to stop */
    int stop = 0;
    if (count <= 0) return 0;
    const int blas = P->blas_gemm != NULL;
    if (!blas) FN(tiles_enter)(wk, P);
    /* the L2 term of the first minibatch's loss; the gradient tiles leave the next one's */
    double squares = alpha > 0 ? FN(weight_squares_of_w)(P) : 0.0;
    /* every layer's deltas in panels (pack_delta_row), batch rows each */
    REAL *dpan[ENG_MAX_LAYERS];
    int64_t off = 0;
    for (int l = 0; l < L && !blas; l++) {
        dpan[l] = (REAL *)P->delta_panels + off;
        off += batch * ((s[l + 1] + wk->pw - 1) / wk->pw * wk->pw);
    }
    /* at least two tiles of rows per thread: more threads would only wait at the barriers */
    int threads = P->team > 0 ? P->team : eng_get_epoch_threads();
    int most = (int)(batch / (2 * wk->mr));
    threads = threads < P->threads ? threads : P->threads;
    threads = blas ? 1 : eng_team(threads < most ? threads : most);
    /* the phases' chunk counters (eng_take_chunk), one cache line per thread */
    int row_next[threads * ENG_QUEUE_STRIDE], weight_next[threads * ENG_QUEUE_STRIDE];
    memset(row_next, 0, sizeof(row_next));
    memset(weight_next, 0, sizeof(weight_next));
    eng_barrier barrier;
    eng_barrier_init(&barrier, threads);
    FN(eng_step) step_shared;       /* stored-gradient mode: thread 0's step for everyone */
    memset(&step_shared, 0, sizeof(step_shared));
    double l2_shared = 0.0;
    /* BLAS: plain SGD and momentum without L2 fold their step into the gradient's GEMM */
    const int folded = (rule->kind == ENG_SGD || rule->kind == ENG_MOMENTUM) && alpha == 0;
    #pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        if (nt != barrier.n) {      /* OpenMP gave fewer threads than asked for */
            #pragma omp barrier
            if (t == 0) eng_barrier_init(&barrier, nt);
            #pragma omp barrier
        }
        REAL *scratch = (REAL *)((char *)P->scratch + (size_t)t * P->scratch_per_thread);
        const int unit = wk->mr / 3;                   /* rows: see bcast_tile's short tiles */
        const int row_chunks = FN(row_chunks)(P, wk->mr, nt);       /* per thread */
        int col_chunks[ENG_MAX_LAYERS], rows_owned[nt], weights_owned[nt];
        for (int l = 0; l < L; l++) col_chunks[l] = FN(column_chunks)(s[l], wk->mr, nt);
        for (int u = 0; u < nt; u++) {
            rows_owned[u] = row_chunks;
            weights_owned[u] = FN(weight_chunks_owned)(L, col_chunks, u, nt);
        }
        /* see runtime.h; BLAS's own threads would not flush, so its epoch keeps them all */
        unsigned fp_state = blas ? 0 : eng_subnormals_off();
        int64_t i = 0;
        for (int64_t start = 0; start < count && !stop; start += batch, i++) {
            int64_t m = count - start < batch ? count - start : batch;
            eng_rule now = *rule;
            now.t = rule->t + i + 1;             /* Adam counts this minibatch's step */
            /* every thread sums the minibatch's weights itself, in the same order */
            double weight = FN(weight_sum)(SW, order + start, m);
            double l2 = alpha / weight;
            FN(eng_step) step_w = FN(step_of)(&now, eng_rule_step_size(&now), l2);
            FN(eng_step) step_b = FN(step_of)(&now, eng_rule_step_size(&now), 0.0);
            if (alpha > 0 && i > 0 && t == 0 && P->reduce == NULL)   /* after the last step */
                squares = blas ? FN(weight_squares_of_w)(P) : FN(weight_squares)(wk, P);
            uint32_t key = eng_dropout_minibatch_key(P->dropout_key, i);
            /* nobody takes phase 2's chunks again before the barrier below */
            __atomic_store_n(&weight_next[t * ENG_QUEUE_STRIDE], 0, __ATOMIC_RELAXED);
            if (start + m < count) {   /* this thread's rows of the next minibatch load */
                int64_t next = count - start - m < batch ? count - start - m : batch, n0, n1;
                FN(share)(next, unit, t, nt, &n0, &n1);
                FN(eng_prefetch_rows)(X, order + start + m + n0, n1 - n0, s[0]);
            }
            if (blas)
                FN(blas_rows)(P, X, y, T, SW, order + start, (int)m, weight, key);
            for (int c, u; !blas && (c = eng_take_chunk(row_next, t, nt, rows_owned, &u)) >= 0;) {
                int64_t r0, r1;
                FN(share)(m, unit, u * row_chunks + c, nt * row_chunks, &r0, &r1);
                for (int64_t r = r0; r < r1; r++) rows[r] = X + order[start + r] * s[0];
                FN(epoch_phase_rows)(wk, P, y, T, SW, order + start, r0, r1, weight, key, dpan,
                                     scratch);
            }
            eng_barrier_wait(&barrier);
            __atomic_store_n(&row_next[t * ENG_QUEUE_STRIDE], 0, __ATOMIC_RELAXED);
            if (blas)
                FN(blas_weights)(P, (int)m, &now, &step_w, l2,
                                 folded && P->reduce == NULL && P->grad_norms == NULL);
            for (int c, u; !blas && (c = eng_take_chunk(weight_next, t, nt, weights_owned,
                                                        &u)) >= 0;)
                FN(epoch_weights_chunk)(wk, P, u, nt, c, col_chunks, m, &step_w, &step_b, dpan,
                                        scratch);
            if (P->reduce != NULL) {
                eng_barrier_wait(&barrier);           /* every gradient is formed */
                if (t == 0) {
                    double loss = 0.0, total = 0.0;
                    for (int64_t r = 0; r < m; r++) loss += P->row_loss[r];
                    loss /= FN(loss_divisor)(P->loss_kind, weight, s[L]);
                    for (int64_t r = 0; r < m; r++)   /* the rows' weight: 0 if all are */
                        total += SW == NULL ? 1.0 : (double)SW[order[start + r]];
                    if (FN(epoch_reduce)(wk, P, i, alpha, &loss, &total, &squares) != 0) {
                        stop = 1;
                    } else {
                        losses[i] = loss + (alpha > 0 ? 0.5 * alpha * squares / total : 0.0);
                        l2_shared = alpha / total;
                        step_shared = FN(step_of)(&now, eng_rule_step_size(&now), l2_shared);
                        done = i + 1;
                        stop = eng_stop_requested();
                    }
                }
                eng_barrier_wait(&barrier);
                if (!(stop && done == i) && blas) {
                    FN(blas_stored_step)(P, &now, l2_shared);
                } else if (!(stop && done == i)) {
                    FN(eng_step) sw = step_shared;
                    FN(epoch_stored_step)(wk, P, t, nt, &sw, &step_b);
                }
            } else if (t == 0) {
                double sum = 0.0;
                for (int64_t r = 0; r < m; r++) sum += P->row_loss[r];
                losses[i] = sum / FN(loss_divisor)(P->loss_kind, weight, s[L]);
                if (alpha > 0) losses[i] += 0.5 * alpha * squares / weight;
                done = i + 1;
                stop = eng_stop_requested();   /* read by all after the barrier below */
            }
            eng_barrier_wait(&barrier);
        }
        if (!blas) eng_fp_restore(fp_state);
    }
    if (!blas) FN(tiles_leave)(wk, P);
    return done;
}

#undef X_ROWS
#undef A_ROWS
#undef D_ROWS
#undef RA_ROWS
#undef RD_ROWS
