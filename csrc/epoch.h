/* The fused training epoch on the GEMM tiles of workers_gemm.h, for one dtype (included by
   instantiate.h after elementwise.h); the workers of this CPU's SIMD variant do the work.

   Each minibatch runs in two phases on a team of threads, separated by barriers:
     1. rows: chunks of the minibatch's rows go through the forward pass, the output delta
        and the backward deltas (rows do not interact there), which are also copied into
        panels for phase 2;
     2. weights: chunks of every weight matrix's input columns: that slice of the gradient
        is formed and the optimizer step applied to it at once; then each layer's biases.
   Each thread first takes its own share of the chunks, then steals the chunks another
   thread has not started (eng_take_chunk), so a thread slowed by other work on its core
   (or a slower core) takes fewer: an even split would make the whole team wait for it at
   every barrier. Each output is computed the same way whichever thread takes its chunk,
   so results do not depend on the thread count.
   No BLAS is called, so no second thread pool spins beside this one. */

/* Part t of nt of [0, n) (a thread's share, or a chunk), cut on multiples of `align` (tile
   boundaries, or the short tiles' rows) so that the parts are equal, the last possibly
   short. */
static inline void FN(share)(int64_t n, int64_t align, int t, int nt, int64_t *lo,
                             int64_t *hi) {
    int64_t units = (n + align - 1) / align;
    int64_t a = units * t / nt * align, b = units * (t + 1) / nt * align;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* dL/dz of the output layer for rows of a, from their labels (one-hot never formed) or,
   when y is NULL, their target rows in T; the rows' (weighted) loss terms go to row_loss,
   and the minibatch's scale (1/m, or w_i / sum(w) with sample weights SW) to delta. */
static void FN(output_rows)(const REAL *a, const int64_t *y, const REAL *T, const REAL *SW,
                            const int64_t *idx, REAL *d, int64_t rows, int64_t c, int kind,
                            double batch_weight, double *row_loss) {
    REAL scale = FN(delta_scale)(kind, batch_weight, c);
    for (int64_t i = 0; i < rows; i++) {
        REAL w = SW == NULL ? (REAL)1 : SW[idx[i]];
        const REAL *ar = a + i * c;
        const REAL *tr = y == NULL ? T + idx[i] * c : NULL;
        int64_t label = y == NULL ? -1 : y[idx[i]];
        REAL *dr = d + i * c;
        double loss = 0.0;
        for (int64_t j = 0; j < c; j++) {
            REAL t = tr != NULL ? tr[j] : (REAL)(j == label);
            dr[j] = FN(delta_of)(kind, ar[j], t, SW == NULL ? scale : scale * w);
            loss += FN(loss_of)(kind, ar[j], t);
        }
        row_loss[i] = SW == NULL ? loss : (double)w * loss;
    }
}

/* Where the row pointers live in plan->rows: X rows, then per layer the rows of A and D. */
#define X_ROWS(P) ((P)->rows)
#define A_ROWS(P, l) ((P)->rows + (P)->batch * (1 + (l)))
#define D_ROWS(P, l) ((P)->rows + (P)->batch * (1 + (P)->n_layers + (l)))

/* Layer l's kept slopes from row r0 (csrc/ops.h ENG_SLOPE_OPS), or NULL; and what its
   derivative reads: those slopes, or its outputs. */
static inline REAL *FN(slope_rows)(const eng_epoch_plan *P, int l, int64_t r0) {
    return P->SL != NULL && P->SL[l] != NULL ? (REAL *)P->SL[l] + r0 * P->sizes[l + 1] : NULL;
}
static inline const REAL *FN(derivative_rows)(const eng_epoch_plan *P, int l, int64_t r0) {
    const REAL *slopes = FN(slope_rows)(P, l, r0);
    return slopes != NULL ? slopes : (const REAL *)P->A[l] + r0 * P->sizes[l + 1];
}

static void FN(epoch_phase_rows)(const FN(eng_workers) *wk, const eng_epoch_plan *P,
                                 const int64_t *y, const REAL *T, const REAL *SW,
                                 const int64_t *idx, int64_t r0, int64_t r1,
                                 double batch_weight, uint32_t key, REAL *const *dpan,
                                 REAL *scratch) {
    const int L = P->n_layers;
    const int *s = P->sizes;
    const int64_t rows = r1 - r0;
    const REAL *const *in = (const REAL *const *)X_ROWS(P) + r0;
    if (rows <= 0) return;
    for (int l = 0; l < L; l++) {
        REAL *const *out = (REAL *const *)A_ROWS(P, l) + r0;
        wk->gemm_nn(in, rows, s[l], NULL, (const REAL *)P->WT[l], 0, s[l + 1], out,
                        scratch);
        wk->bias_act_rows((REAL *)P->A[l] + r0 * s[l + 1], (const REAL *)P->B[l], rows,
                          s[l + 1], P->acts[l], FN(slope_rows)(P, l, r0));
        if (P->dropout != NULL && l < L - 1 && P->dropout[l] > 0)
            wk->dropout_rows((REAL *)P->A[l] + r0 * s[l + 1], rows, s[l + 1], r0, key, l,
                             FN(dropout_threshold)(P->dropout[l]),
                             (REAL)(1.0 / (1.0 - P->dropout[l])));
        in = (const REAL *const *)out;
    }
    FN(output_rows)((const REAL *)P->A[L - 1] + r0 * s[L], y, T, SW, idx + r0,
                    (REAL *)P->D[L - 1] + r0 * s[L], rows, s[L], P->loss_kind, batch_weight,
                    P->row_loss + r0);
    for (int l = L - 1; l > 0; l--) {
        /* delta below = (delta @ W[l]) * act'(A[l-1]) */
        wk->gemm_nn((const REAL *const *)D_ROWS(P, l) + r0, rows, s[l + 1], NULL,
                        (const REAL *)P->WT[l], 1, s[l],
                        (REAL *const *)D_ROWS(P, l - 1) + r0, scratch);
        if (P->dropout != NULL && P->dropout[l - 1] > 0)
            wk->dropout_backward_rows((REAL *)P->D[l - 1] + r0 * s[l],
                                      FN(derivative_rows)(P, l - 1, r0), rows, s[l], r0,
                                      key, l - 1, FN(dropout_threshold)(P->dropout[l - 1]),
                                      (REAL)(1.0 / (1.0 - P->dropout[l - 1])), P->acts[l - 1]);
        else
            wk->act_backward_range((REAL *)P->D[l - 1] + r0 * s[l],
                                   FN(derivative_rows)(P, l - 1, r0), rows * s[l],
                                   P->acts[l - 1]);
    }
    for (int l = 0; l < L; l++)
        for (int64_t r = r0; r < r1; r++)
            wk->pack_delta_row((const REAL *)P->D[l] + r * s[l + 1], s[l + 1], r, P->batch,
                               dpan[l]);
}

/* Where layer l's squares of weights start in plan->l2_parts (eng_epoch_l2_parts). */
static inline int64_t FN(l2_offset)(const eng_epoch_plan *P, int l) {
    int64_t offset = 0;
    for (int k = 0; k < l; k++) offset += (P->sizes[k] + ENG_MIN_MR - 1) / ENG_MIN_MR;
    return offset;
}

/* Phase 2's chunks that thread u of nt owns: per layer l, `chunks[l]` slices of its input
   columns (whole tiles; u's are u * chunks[l] ... of nt * chunks[l]), then the biases of
   the layers l with l % nt == u. */
static int FN(weight_chunks_owned)(int L, const int *chunks, int u, int nt) {
    int n = u < L ? (L - 1 - u) / nt + 1 : 0;
    for (int l = 0; l < L; l++) n += chunks[l];
    return n;
}

static void FN(epoch_weights_chunk)(const FN(eng_workers) *wk, const eng_epoch_plan *P,
                                    int u, int nt, int item, const int *chunks, int64_t m,
                                    const FN(eng_step) *step_w, const FN(eng_step) *step_b,
                                    REAL *const *dpan, REAL *scratch) {
    const int L = P->n_layers;
    const int *s = P->sizes;
    int l = 0;
    while (l < L && item >= chunks[l]) item -= chunks[l++];
    if (l < L) {
        /* the layer's input rows: X's for the first layer */
        void **below = l == 0 ? X_ROWS(P) : A_ROWS(P, l - 1);
        int64_t lo, hi;
        FN(share)(s[l], wk->mr, u * chunks[l] + item, nt * chunks[l], &lo, &hi);
        if (P->reduce != NULL) {       /* stored-gradient mode: the tiles keep the gradient */
            const FN(eng_step) store = {ENG_STORE, 0, 0, 0, 0, 0, 0};
            wk->gemm_tn_update((const REAL *const *)below, m, s[l], lo, hi, dpan[l],
                               P->batch, s[l + 1], (REAL *)P->GT[l], NULL, NULL, &store,
                               NULL, scratch);
            /* this chunk's inputs into the caller's layout while they are in cache */
            wk->from_panels((const REAL *)P->GT[l], s[l + 1], s[l], lo, hi, (REAL *)P->GW[l]);
            return;
        }
        wk->gemm_tn_update((const REAL *const *)below, m, s[l], lo, hi, dpan[l], P->batch,
                           s[l + 1], (REAL *)P->WT[l], P->VT ? (REAL *)P->VT[l] : NULL,
                           P->ST ? (REAL *)P->ST[l] : NULL, step_w,
                           step_w->l2 != 0 ? P->l2_parts + FN(l2_offset)(P, l) : NULL,
                           scratch);
    } else {
        l = u + item * nt;
        REAL *gb = (REAL *)P->GB[l];
        FN(eng_bias_grad)((const REAL *)P->D[l], gb, m, s[l + 1]);
        if (P->reduce != NULL) return;
        wk->update_range((REAL *)P->B[l], gb, P->VB ? (REAL *)P->VB[l] : NULL,
                         P->MB ? (REAL *)P->MB[l] : NULL, s[l + 1], step_b->kind, step_b->lr,
                         step_b->mom, step_b->b1, step_b->b2, step_b->eps, (REAL)0);
    }
}

/* How many chunks of each phase a thread owns: a few, so that a slow one can hand work
   over, but in the rows phase no smaller than the rows whose work outweighs ten times its
   fixed cost (each chunk's backward pass copies the weights of layers 2..L into panels,
   about a dozen rows' worth of work per weight). */
static int FN(row_chunks)(const eng_epoch_plan *P, int mr, int nt) {
    const int *s = P->sizes;
    double per_row = 0.0, copied = 0.0;
    for (int l = 0; l < P->n_layers; l++) {
        double w = (double)s[l] * s[l + 1];
        per_row += l == 0 ? w : 2 * w;
        copied += l == 0 ? 0 : w;
    }
    double least = 120.0 * copied / per_row;
    int64_t rows = least > mr ? (int64_t)least : mr;
    int64_t per_thread = P->batch / ((int64_t)nt * rows);
    return (int)(per_thread < 1 ? 1 : per_thread > 4 ? 4 : per_thread);
}

static int FN(column_chunks)(int64_t n_in, int mr, int nt) {
    int64_t per_thread = (n_in + mr - 1) / mr / (2 * (int64_t)nt);    /* 2+ tiles each */
    return (int)(per_thread < 1 ? 1 : per_thread > 4 ? 4 : per_thread);
}

/* The sum of the per-tile sums of squares the gradient tiles left, in index order. */
static double FN(weight_squares)(const FN(eng_workers) *wk, const eng_epoch_plan *P) {
    double sum = 0.0;
    for (int l = 0; l < P->n_layers; l++) {
        const double *part = P->l2_parts + FN(l2_offset)(P, l);
        for (int64_t q = 0; q < (P->sizes[l] + wk->mr - 1) / wk->mr; q++) sum += part[q];
    }
    return sum;
}

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
    if (alpha > 0)       /* the panels' padding is 0; their tail copy is left out */
        for (int l = 0; l < P->n_layers; l++)
            *squares += FN(eng_sq_norm)((const REAL *)P->WT[l],
                                        (s[l + 1] + wk->pw - 1) / wk->pw * wk->pw * s[l]);
    return 0;
}

/* Stored-gradient mode, every thread: the step of its share of each layer's inputs (whole
   tiles), from the gradient in GW, and of the biases of the layers l with l % nt == t.
   Each weight steps by the same operations for any thread count. */
static void FN(epoch_stored_step)(const FN(eng_workers) *wk, const eng_epoch_plan *P, int t,
                                  int nt, const FN(eng_step) *sw, const FN(eng_step) *sb) {
    const int *s = P->sizes;
    for (int l = 0; l < P->n_layers; l++) {
        int64_t lo, hi;
        FN(share)(s[l], wk->mr, t, nt, &lo, &hi);
        if (hi > lo)
            wk->panel_step((REAL *)P->WT[l], P->VT ? (REAL *)P->VT[l] : NULL,
                           P->ST ? (REAL *)P->ST[l] : NULL, (const REAL *)P->GW[l], s[l + 1],
                           s[l], lo, hi, sw);
        if (l % nt == t)
            wk->update_range((REAL *)P->B[l], (const REAL *)P->GB[l],
                             P->VB ? (REAL *)P->VB[l] : NULL, P->MB ? (REAL *)P->MB[l] : NULL,
                             s[l + 1], sb->kind, sb->lr, sb->mom, sb->b1, sb->b2, sb->eps,
                             (REAL)0);
    }
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
    /* The epoch trains its own copies of W (and its optimizer state) in the panel layout:
       the forward pass reads them without packing, the gradient tiles update contiguous
       rows of them. */
    for (int l = 0; l < L; l++) {
        for (int64_t i = 0; i < batch; i++) {
            A_ROWS(P, l)[i] = (REAL *)P->A[l] + i * s[l + 1];
            D_ROWS(P, l)[i] = (REAL *)P->D[l] + i * s[l + 1];
        }
        wk->to_panels((const REAL *)P->W[l], s[l + 1], s[l], (REAL *)P->WT[l]);
        if (P->VW != NULL)
            wk->to_panels((const REAL *)P->VW[l], s[l + 1], s[l], (REAL *)P->VT[l]);
        if (P->MW != NULL)
            wk->to_panels((const REAL *)P->MW[l], s[l + 1], s[l], (REAL *)P->ST[l]);
    }
    /* the L2 term of the first minibatch's loss; the gradient tiles leave the next one's */
    double squares = 0.0;
    if (alpha > 0)
        for (int l = 0; l < L; l++)
            squares += FN(eng_sq_norm)((const REAL *)P->W[l], (int64_t)s[l + 1] * s[l]);
    /* every layer's deltas in panels (pack_delta_row), batch rows each */
    REAL *dpan[ENG_MAX_LAYERS];
    int64_t off = 0;
    for (int l = 0; l < L; l++) {
        dpan[l] = (REAL *)P->delta_panels + off;
        off += batch * ((s[l + 1] + wk->pw - 1) / wk->pw * wk->pw);
    }
    /* at least two tiles of rows per thread: more threads would only wait at the barriers */
    int threads = P->team > 0 ? P->team : eng_get_epoch_threads();
    int most = (int)(batch / (2 * wk->mr));
    threads = threads < P->threads ? threads : P->threads;
    threads = eng_team(threads < most ? threads : most);
    /* the phases' chunk counters (eng_take_chunk), one cache line per thread */
    int row_next[threads * ENG_QUEUE_STRIDE], weight_next[threads * ENG_QUEUE_STRIDE];
    memset(row_next, 0, sizeof(row_next));
    memset(weight_next, 0, sizeof(weight_next));
    eng_barrier barrier;
    eng_barrier_init(&barrier, threads);
    FN(eng_step) step_shared;       /* stored-gradient mode: thread 0's step for everyone */
    memset(&step_shared, 0, sizeof(step_shared));
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
        unsigned fp_state = eng_subnormals_off();      /* see runtime.h */
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
            if (alpha > 0 && i > 0 && t == 0 && P->reduce == NULL)
                squares = FN(weight_squares)(wk, P);   /* the previous step's tiles are done */
            /* nobody takes phase 2's chunks again before the barrier below */
            __atomic_store_n(&weight_next[t * ENG_QUEUE_STRIDE], 0, __ATOMIC_RELAXED);
            if (start + m < count) {   /* this thread's rows of the next minibatch load */
                int64_t next = count - start - m < batch ? count - start - m : batch, n0, n1;
                FN(share)(next, unit, t, nt, &n0, &n1);
                FN(eng_prefetch_rows)(X, order + start + m + n0, n1 - n0, s[0]);
            }
            for (int c, u; (c = eng_take_chunk(row_next, t, nt, rows_owned, &u)) >= 0;) {
                int64_t r0, r1;
                FN(share)(m, unit, u * row_chunks + c, nt * row_chunks, &r0, &r1);
                for (int64_t r = r0; r < r1; r++) rows[r] = X + order[start + r] * s[0];
                FN(epoch_phase_rows)(wk, P, y, T, SW, order + start, r0, r1, weight,
                                     eng_dropout_minibatch_key(P->dropout_key, i), dpan,
                                     scratch);
            }
            eng_barrier_wait(&barrier);
            __atomic_store_n(&row_next[t * ENG_QUEUE_STRIDE], 0, __ATOMIC_RELAXED);
            for (int c, u; (c = eng_take_chunk(weight_next, t, nt, weights_owned, &u)) >= 0;)
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
                        step_shared = FN(step_of)(&now, eng_rule_step_size(&now),
                                                  alpha / total);
                        done = i + 1;
                        stop = eng_stop_requested();
                    }
                }
                eng_barrier_wait(&barrier);
                if (!(stop && done == i)) {
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
        eng_fp_restore(fp_state);
    }
    for (int l = 0; l < L; l++) {
        wk->from_panels((const REAL *)P->WT[l], s[l + 1], s[l], 0, s[l], (REAL *)P->W[l]);
        if (P->VW != NULL)
            wk->from_panels((const REAL *)P->VT[l], s[l + 1], s[l], 0, s[l], (REAL *)P->VW[l]);
        if (P->MW != NULL)
            wk->from_panels((const REAL *)P->ST[l], s[l + 1], s[l], 0, s[l], (REAL *)P->MW[l]);
    }
    return done;
}

/* Rows handed to a thread at a time in the forward pass: their activations stay in its L2
   while they go through all the layers. */
#define FORWARD_ROWS 48

int FN(eng_tiled_forward)(int n_layers, const int *sizes, const int *acts,
                          const REAL *const *W, const REAL *const *B, const REAL *x,
                          int64_t n, REAL *const *out) {
    const int L = n_layers;
    const int *s = sizes;
    int64_t panel_total = 0, offset[ENG_MAX_LAYERS];
    const FN(eng_workers) *wk = FN(workers)();
    if (L < 1 || L > ENG_MAX_LAYERS) return -1;
    if (n <= 0) return 0;
    for (int l = 0; l < L; l++) {
        offset[l] = panel_total;
        panel_total += eng_epoch_panel_elements(s[l + 1], s[l], (int)sizeof(REAL));
    }
    int threads = eng_get_epoch_threads();
    if (threads > (n + FORWARD_ROWS - 1) / FORWARD_ROWS)
        threads = (int)((n + FORWARD_ROWS - 1) / FORWARD_ROWS);
    threads = eng_team(threads);
    REAL *panels = (REAL *)malloc((size_t)panel_total * sizeof(REAL));
    REAL **rows = (REAL **)malloc((size_t)threads * (L + 1) * FORWARD_ROWS * sizeof(REAL *));
    if (panels == NULL || rows == NULL) {
        free(panels);
        free(rows);
        return -1;
    }
    for (int l = 0; l < L; l++) wk->to_panels(W[l], s[l + 1], s[l], panels + offset[l]);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int64_t r0 = 0; r0 < n; r0 += FORWARD_ROWS) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        int64_t m = n - r0 < FORWARD_ROWS ? n - r0 : FORWARD_ROWS;
        REAL **my = rows + (size_t)t * (L + 1) * FORWARD_ROWS;
        for (int64_t i = 0; i < m; i++) {
            my[i] = (REAL *)x + (r0 + i) * s[0];
            for (int l = 0; l < L; l++)
                my[(l + 1) * FORWARD_ROWS + i] = out[l] + (r0 + i) * s[l + 1];
        }
        for (int l = 0; l < L; l++) {
            wk->gemm_nn((const REAL *const *)my + l * FORWARD_ROWS, m, s[l], NULL,
                            panels + offset[l], 0, s[l + 1], my + (l + 1) * FORWARD_ROWS, NULL);
            wk->bias_act_rows(out[l] + r0 * s[l + 1], B[l], m, s[l + 1], acts[l], NULL);
        }
    }
    free(panels);
    free(rows);
    return 0;
}

#undef FORWARD_ROWS
#undef X_ROWS
#undef A_ROWS
#undef D_ROWS
