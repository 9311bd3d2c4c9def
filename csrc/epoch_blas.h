/* BLAS's side of the fused epoch (csrc/epoch.h), for one dtype: the products from the BLAS
   gemm the bindings hand over (plan->blas_gemm: SciPy's sgemm/dgemm, nothing linked at build
   time), on whole minibatches, on the calling thread alone (BLAS brings its own threads, and
   a team around it would oversubscribe the cores). For networks wider than the tiles pay
   for, the diagnostics (which need each gradient formed), and bf16-mixed fits that the
   bf16 epoch does not take: with plan->RW set (float32 only), every product reads copies of
   its operands rounded to bfloat16 (engine/precision.py), everything else the float32
   arrays. The weights stay in the caller's layout. */

/* BLAS's gemm of this dtype, with its Fortran arguments (column-major) */
typedef void (*FN(blas_gemm_fn))(const char *ta, const char *tb, const int *m, const int *n,
                                 const int *k, const REAL *alpha, const REAL *a,
                                 const int *lda, const REAL *b, const int *ldb,
                                 const REAL *beta, REAL *c, const int *ldc);

/* c (m x n) = alpha * op(a) @ op(b) + beta * c, row-major; lda, ldb, ldc: row lengths. A
   row-major matrix is the column-major transpose in the same memory, so BLAS computes
   c^T = op(b)^T @ op(a)^T: the operands swap, each keeps its flag. */
static void FN(gemm_rm)(const eng_epoch_plan *P, int trans_a, int trans_b, int m, int n, int k,
                        REAL alpha, const REAL *a, int lda, const REAL *b, int ldb, REAL beta,
                        REAL *c, int ldc) {
    char fa = trans_b ? 'T' : 'N', fb = trans_a ? 'T' : 'N';
    ((FN(blas_gemm_fn))P->blas_gemm)(&fa, &fb, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c,
                                     &ldc);
}

/* What layer l's products read: the rounded copies on bf16 plans */
#define PRODUCT(P, rounded, plain, l) ((const REAL *)((P)->RW ? (P)->rounded[l] : (P)->plain[l]))

/* Phase 1 for the whole minibatch: X's rows gathered into plan->x, the forward pass, the
   output delta and the backward deltas. Every delta is formed from the weights before
   this minibatch's step. */
static void FN(blas_rows)(const eng_epoch_plan *P, const REAL *X, const int64_t *y,
                          const REAL *T, const REAL *SW, const int64_t *idx, int m,
                          double batch_weight, uint32_t key) {
    const int L = P->n_layers;
    const int *s = P->sizes;
    REAL *x = (REAL *)P->x;
    for (int r = 0; r < m; r++)
        memcpy(x + (int64_t)r * s[0], X + idx[r] * s[0], (size_t)s[0] * sizeof(REAL));
    if (P->RW != NULL) {
        FN(round_bf16)(x, x, (int64_t)m * s[0]);
        for (int l = 0; l < L; l++)
            FN(round_bf16)(P->W[l], P->RW[l], (int64_t)s[l + 1] * s[l]);
    }
    const REAL *in = x;
    for (int l = 0; l < L; l++) {
        REAL *a = (REAL *)P->A[l];
        FN(gemm_rm)(P, 0, 1, m, s[l + 1], s[l], 1, in, s[l], PRODUCT(P, RW, W, l), s[l], 0, a,
                    s[l + 1]);
        FN(eng_bias_act)(a, (const REAL *)P->B[l], m, s[l + 1], P->acts[l],
                         FN(slope_rows)(P, l, 0));
        if (P->dropout != NULL && l < L - 1 && P->dropout[l] > 0)
            FN(eng_dropout)(a, m, s[l + 1], 0, key, l, P->dropout[l]);
        if (P->RW != NULL && l < L - 1)
            FN(round_bf16)(a, P->RA[l], (int64_t)m * s[l + 1]);
        in = l < L - 1 ? PRODUCT(P, RA, A, l) : NULL;
    }
    FN(output_rows)((const REAL *)P->A[L - 1], y, T, SW, idx, (REAL *)P->D[L - 1], m, s[L],
                    P->loss_kind, batch_weight, P->row_loss);
    for (int l = L - 1; l >= 0; l--) {
        if (P->RW != NULL)
            FN(round_bf16)(P->D[l], P->RD[l], (int64_t)m * s[l + 1]);
        if (l == 0) break;
        /* delta below = (delta @ W[l]) * act'(A[l-1]) */
        REAL *below = (REAL *)P->D[l - 1];
        FN(gemm_rm)(P, 0, 0, m, s[l], s[l + 1], 1, PRODUCT(P, RD, D, l), s[l + 1],
                    PRODUCT(P, RW, W, l), s[l], 0, below, s[l]);
        if (P->dropout != NULL && P->dropout[l - 1] > 0)
            FN(eng_dropout_backward)(below, FN(derivative_rows)(P, l - 1, 0), m, s[l], 0, key,
                                     l - 1, P->dropout[l - 1], P->acts[l - 1]);
        else
            FN(eng_act_backward)(below, FN(derivative_rows)(P, l - 1, 0), (int64_t)m * s[l],
                                 P->acts[l - 1]);
    }
}

/* Phase 2: each layer's gradient, and its step unless the plan reduces first. Plain SGD
   and momentum without L2 (`folded`) fold the update into the gradient's GEMM: W -= lr *
   D^T A straight into the weights, or the velocity with beta = momentum. */
static void FN(blas_weights)(const eng_epoch_plan *P, int m, const eng_rule *now,
                             const FN(eng_step) *step, double l2, int folded) {
    const int L = P->n_layers;
    const int *s = P->sizes;
    for (int l = 0; l < L; l++) {
        const REAL *in = l == 0 ? (const REAL *)P->x : PRODUCT(P, RA, A, l - 1);
        const REAL *d = PRODUCT(P, RD, D, l);
        REAL *w = (REAL *)P->W[l], *b = (REAL *)P->B[l], *gb = (REAL *)P->GB[l];
        REAL *vw = P->VW ? (REAL *)P->VW[l] : NULL, *vb = P->VB ? (REAL *)P->VB[l] : NULL;
        int64_t size = (int64_t)s[l + 1] * s[l];
        FN(eng_bias_grad)((const REAL *)P->D[l], gb, m, s[l + 1]);
        if (!folded) {
            REAL *gw = (REAL *)P->GW[l];
            FN(gemm_rm)(P, 1, 0, s[l + 1], s[l], m, 1, d, s[l + 1], in, s[l], 0, gw, s[l]);
            if (P->grad_norms != NULL) P->grad_norms[l] += sqrt(FN(eng_sq_norm)(gw, size));
            if (P->reduce != NULL) continue;
            FN(eng_optimizer_step)(w, gw, vw, P->MW ? (REAL *)P->MW[l] : NULL, size, now, l2);
            FN(eng_optimizer_step)(b, gb, vb, P->MB ? (REAL *)P->MB[l] : NULL, s[l + 1], now,
                                   0.0);
        } else if (vw != NULL && now->kind == ENG_MOMENTUM) {
            FN(gemm_rm)(P, 1, 0, s[l + 1], s[l], m, -step->lr, d, s[l + 1], in, s[l],
                        step->mom, vw, s[l]);
            FN(eng_axpy)(w, vw, size, 1);
            FN(eng_sgd_step)(b, gb, vb, s[l + 1], step->lr, step->mom);
        } else {
            FN(gemm_rm)(P, 1, 0, s[l + 1], s[l], m, -step->lr, d, s[l + 1], in, s[l], 1, w,
                        s[l]);
            FN(eng_axpy)(b, gb, s[l + 1], -step->lr);
        }
    }
}

/* After the reduction: every layer steps from the gradients in GW and GB. */
static void FN(blas_stored_step)(const eng_epoch_plan *P, const eng_rule *now, double l2) {
    const int *s = P->sizes;
    for (int l = 0; l < P->n_layers; l++) {
        FN(eng_optimizer_step)((REAL *)P->W[l], (const REAL *)P->GW[l],
                               P->VW ? (REAL *)P->VW[l] : NULL, P->MW ? (REAL *)P->MW[l] : NULL,
                               (int64_t)s[l + 1] * s[l], now, l2);
        FN(eng_optimizer_step)((REAL *)P->B[l], (const REAL *)P->GB[l],
                               P->VB ? (REAL *)P->VB[l] : NULL, P->MB ? (REAL *)P->MB[l] : NULL,
                               s[l + 1], now, 0.0);
    }
}

/* For the benchmarks only: the products of a plain-SGD epoch of `count` rows on BLAS (the
   update folded into the gradient GEMM at lr = 1) and nothing else, on whatever the plan's
   buffers hold: the floor a real epoch is compared with. Returns the minibatches. */
int64_t FN(eng_gemm_floor)(const eng_epoch_plan *P, int64_t count) {
    const int L = P->n_layers;
    const int *s = P->sizes;
    int64_t i = 0;
    for (int64_t start = 0; start < count; start += P->batch, i++) {
        int m = (int)(count - start < P->batch ? count - start : P->batch);
        const REAL *in = (const REAL *)P->x;
        for (int l = 0; l < L; l++) {
            FN(gemm_rm)(P, 0, 1, m, s[l + 1], s[l], 1, in, s[l], (const REAL *)P->W[l], s[l],
                        0, (REAL *)P->A[l], s[l + 1]);
            in = (const REAL *)P->A[l];
        }
        for (int l = L - 1; l >= 0; l--) {
            in = l == 0 ? (const REAL *)P->x : (const REAL *)P->A[l - 1];
            if (l > 0)
                FN(gemm_rm)(P, 0, 0, m, s[l], s[l + 1], 1, (const REAL *)P->D[l], s[l + 1],
                            (const REAL *)P->W[l], s[l], 0, (REAL *)P->D[l - 1], s[l]);
            FN(gemm_rm)(P, 1, 0, s[l + 1], s[l], m, -1, (const REAL *)P->D[l], s[l + 1], in,
                        s[l], 1, (REAL *)P->W[l], s[l]);
        }
    }
    return i;
}

#undef PRODUCT
