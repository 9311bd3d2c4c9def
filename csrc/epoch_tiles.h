/* The tiles' side of the fused epoch (csrc/epoch.h), for one dtype: the GEMM tiles of
   workers_gemm.h on this CPU's SIMD variant, no BLAS, so no second thread pool spins beside
   the epoch's team.
     1. rows: chunks of the minibatch's rows go through the forward pass, the output delta
        and the backward deltas (rows do not interact there), which are also copied into
        panels for phase 2;
     2. weights: chunks of every weight matrix's input columns: that slice of the gradient
        is formed and the optimizer step applied to it at once; then each layer's biases.
   The epoch trains its own copies of W (and of its optimizer state) in the panel layout:
   the forward pass reads them without packing, the gradient tiles update contiguous rows
   of them. Also here: the tiled forward pass over many rows (scoring; bf16-mixed too, where
   a CPU without bf16 instructions scores a bf16-mixed fit's epochs).

   bf16-mixed (plan->RW set; engine/precision.py): the same float32 tiles on operands
   rounded to bfloat16, which they multiply exactly and sum in float32. X comes rounded
   (the caller's copy, made once per fit); each layer's A and D rows are rounded into RA
   and RD as they are formed (the derivative, the bias gradient and the loss read the
   float32 ones); the products read RW, the rounded copy of the panels, which each step
   writes as it updates WT (workers_gemm.h update_input). */

/* bf16-mixed: rows [r0, r1) of layer l's A or D (a batch x width buffer) rounded */
static inline void FN(round_rows)(void *const *from, void *const *to, int l, int64_t r0,
                                  int64_t r1, int64_t width) {
    FN(round_bf16)((const REAL *)from[l] + r0 * width, (REAL *)to[l] + r0 * width,
                   (r1 - r0) * width);
}

static void FN(epoch_phase_rows)(const FN(eng_workers) *wk, const eng_epoch_plan *P,
                                 const int64_t *y, const REAL *T, const REAL *SW,
                                 const int64_t *idx, int64_t r0, int64_t r1,
                                 double batch_weight, uint32_t key, REAL *const *dpan,
                                 REAL *scratch) {
    const int L = P->n_layers;
    const int *s = P->sizes;
    const int64_t rows = r1 - r0;
    const int bf16 = P->RW != NULL;
    void *const *wp = bf16 ? P->RW : P->WT;        /* what the products read of W */
    const REAL *const *in = (const REAL *const *)X_ROWS(P) + r0;
    if (rows <= 0) return;
    for (int l = 0; l < L; l++) {
        REAL *const *out = (REAL *const *)A_ROWS(P, l) + r0;
        wk->gemm_nn(in, rows, s[l], NULL, (const REAL *)wp[l], 0, s[l + 1], out, scratch);
        wk->bias_act_rows((REAL *)P->A[l] + r0 * s[l + 1], (const REAL *)P->B[l], rows,
                          s[l + 1], P->acts[l], FN(slope_rows)(P, l, r0));
        if (P->dropout != NULL && l < L - 1 && P->dropout[l] > 0)
            wk->dropout_rows((REAL *)P->A[l] + r0 * s[l + 1], rows, s[l + 1], r0, key, l,
                             FN(dropout_threshold)(P->dropout[l]),
                             (REAL)(1.0 / (1.0 - P->dropout[l])));
        in = (const REAL *const *)out;
        if (bf16 && l < L - 1) {
            FN(round_rows)(P->A, P->RA, l, r0, r1, s[l + 1]);
            in = (const REAL *const *)RA_ROWS(P, l) + r0;
        }
    }
    FN(output_rows)((const REAL *)P->A[L - 1] + r0 * s[L], y, T, SW, idx + r0,
                    (REAL *)P->D[L - 1] + r0 * s[L], rows, s[L], P->loss_kind, batch_weight,
                    P->row_loss + r0);
    for (int l = L - 1; l > 0; l--) {
        /* delta below = (delta @ W[l]) * act'(A[l-1]) */
        if (bf16) FN(round_rows)(P->D, P->RD, l, r0, r1, s[l + 1]);
        wk->gemm_nn((const REAL *const *)(bf16 ? RD_ROWS(P, l) : D_ROWS(P, l)) + r0, rows,
                    s[l + 1], NULL, (const REAL *)wp[l], 1, s[l],
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
    if (bf16) FN(round_rows)(P->D, P->RD, 0, r0, r1, s[1]);
    for (int l = 0; l < L; l++)
        for (int64_t r = r0; r < r1; r++)
            wk->pack_delta_row((const REAL *)(bf16 ? P->RD : P->D)[l] + r * s[l + 1],
                               s[l + 1], r, P->batch, dpan[l]);
}

/* Before an epoch: the row pointers of A and D (and of their rounded copies), and the
   tiles' copies of W (rounded into RW too) and of its optimizer state in panels; after it,
   those copies back into the caller's arrays. */
static void FN(tiles_enter)(const FN(eng_workers) *wk, const eng_epoch_plan *P) {
    const int *s = P->sizes;
    for (int l = 0; l < P->n_layers; l++) {
        for (int64_t i = 0; i < P->batch; i++) {
            A_ROWS(P, l)[i] = (REAL *)P->A[l] + i * s[l + 1];
            D_ROWS(P, l)[i] = (REAL *)P->D[l] + i * s[l + 1];
            if (P->RW == NULL) continue;
            RA_ROWS(P, l)[i] = (REAL *)P->RA[l] + i * s[l + 1];
            RD_ROWS(P, l)[i] = (REAL *)P->RD[l] + i * s[l + 1];
        }
        wk->to_panels((const REAL *)P->W[l], s[l + 1], s[l], (REAL *)P->WT[l]);
        if (P->RW != NULL)      /* the panels, padding and narrow tail's rows included */
            FN(round_bf16)(P->WT[l], P->RW[l],
                           eng_epoch_panel_elements(s[l + 1], s[l], (int)sizeof(REAL)));
        if (P->VW != NULL)
            wk->to_panels((const REAL *)P->VW[l], s[l + 1], s[l], (REAL *)P->VT[l]);
        if (P->MW != NULL)
            wk->to_panels((const REAL *)P->MW[l], s[l + 1], s[l], (REAL *)P->ST[l]);
    }
}
static void FN(tiles_leave)(const FN(eng_workers) *wk, const eng_epoch_plan *P) {
    const int *s = P->sizes;
    for (int l = 0; l < P->n_layers; l++) {
        wk->from_panels((const REAL *)P->WT[l], s[l + 1], s[l], 0, s[l], (REAL *)P->W[l]);
        if (P->VW != NULL)
            wk->from_panels((const REAL *)P->VT[l], s[l + 1], s[l], 0, s[l], (REAL *)P->VW[l]);
        if (P->MW != NULL)
            wk->from_panels((const REAL *)P->ST[l], s[l + 1], s[l], 0, s[l], (REAL *)P->MW[l]);
    }
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
        void **below = l == 0 ? X_ROWS(P) : P->RW != NULL ? RA_ROWS(P, l - 1)
                                                          : A_ROWS(P, l - 1);
        int64_t lo, hi;
        FN(share)(s[l], wk->mr, u * chunks[l] + item, nt * chunks[l], &lo, &hi);
        if (P->reduce != NULL) {       /* stored-gradient mode: the tiles keep the gradient */
            const FN(eng_step) store = {ENG_STORE, 0, 0, 0, 0, 0, 0};
            wk->gemm_tn_update((const REAL *const *)below, m, s[l], lo, hi, dpan[l],
                               P->batch, s[l + 1], (REAL *)P->GT[l], NULL, NULL, NULL, &store,
                               NULL, scratch);
            /* this chunk's inputs into the caller's layout while they are in cache */
            wk->from_panels((const REAL *)P->GT[l], s[l + 1], s[l], lo, hi, (REAL *)P->GW[l]);
            return;
        }
        wk->gemm_tn_update((const REAL *const *)below, m, s[l], lo, hi, dpan[l], P->batch,
                           s[l + 1], (REAL *)P->WT[l], P->VT ? (REAL *)P->VT[l] : NULL,
                           P->ST ? (REAL *)P->ST[l] : NULL, P->RW ? (REAL *)P->RW[l] : NULL,
                           step_w, step_w->l2 != 0 ? P->l2_parts + FN(l2_offset)(P, l) : NULL,
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
                           P->ST ? (REAL *)P->ST[l] : NULL, P->RW ? (REAL *)P->RW[l] : NULL,
                           (const REAL *)P->GW[l], s[l + 1], s[l], lo, hi, sw);
        if (l % nt == t)
            wk->update_range((REAL *)P->B[l], (const REAL *)P->GB[l],
                             P->VB ? (REAL *)P->VB[l] : NULL, P->MB ? (REAL *)P->MB[l] : NULL,
                             s[l + 1], sb->kind, sb->lr, sb->mom, sb->b1, sb->b2, sb->eps,
                             (REAL)0);
    }
}

/* Rows handed to a thread at a time in the forward pass: their activations stay in its L2
   while they go through all the layers. */
#define FORWARD_ROWS 48

int FN(eng_tiled_forward)(int n_layers, const int *sizes, const int *acts,
                          const REAL *const *W, const REAL *const *B, const REAL *x,
                          int64_t n, REAL *const *out, int bf16) {
    const int L = n_layers;
    const int *s = sizes;
    int64_t panel_total = 0, offset[ENG_MAX_LAYERS], widest = 0;
    const FN(eng_workers) *wk = FN(workers)();
    if (L < 1 || L > ENG_MAX_LAYERS || (bf16 && sizeof(REAL) != sizeof(float))) return -1;
    if (n <= 0) return 0;
    for (int l = 0; l < L; l++) {
        offset[l] = panel_total;
        panel_total += eng_epoch_panel_elements(s[l + 1], s[l], (int)sizeof(REAL));
        widest = s[l] > widest ? s[l] : widest;
    }
    int threads = eng_get_epoch_threads();
    if (threads > (n + FORWARD_ROWS - 1) / FORWARD_ROWS)
        threads = (int)((n + FORWARD_ROWS - 1) / FORWARD_ROWS);
    threads = eng_team(threads);
    REAL *panels = (REAL *)malloc((size_t)panel_total * sizeof(REAL));
    REAL **rows = (REAL **)malloc((size_t)threads * (L + 1) * FORWARD_ROWS * sizeof(REAL *));
    /* bf16: each thread's rows of a layer's input, rounded (the outputs stay float32) */
    REAL *rounded = bf16 ? (REAL *)malloc((size_t)threads * FORWARD_ROWS * widest *
                                          sizeof(REAL)) : NULL;
    if (panels == NULL || rows == NULL || (bf16 && rounded == NULL)) {
        free(panels);
        free(rows);
        free(rounded);
        return -1;
    }
    for (int l = 0; l < L; l++) wk->to_panels(W[l], s[l + 1], s[l], panels + offset[l]);
    if (bf16) FN(round_bf16)(panels, panels, panel_total);     /* padding included */
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
            if (bf16) {     /* the layer's input rows (contiguous) rounded into the scratch */
                REAL *r = rounded + (size_t)t * FORWARD_ROWS * widest;
                FN(round_bf16)(l == 0 ? x + r0 * s[0] : out[l - 1] + r0 * s[l], r, m * s[l]);
                for (int64_t i = 0; i < m; i++) my[l * FORWARD_ROWS + i] = r + i * s[l];
            }
            wk->gemm_nn((const REAL *const *)my + l * FORWARD_ROWS, m, s[l], NULL,
                            panels + offset[l], 0, s[l + 1], my + (l + 1) * FORWARD_ROWS, NULL);
            wk->bias_act_rows(out[l] + r0 * s[l + 1], B[l], m, s[l + 1], acts[l], NULL);
        }
    }
    free(panels);
    free(rows);
    free(rounded);
    return 0;
}

#undef FORWARD_ROWS
