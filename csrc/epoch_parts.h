/* What both product providers of the fused epoch (epoch_tiles.h, epoch_blas.h) and its
   driver (epoch.h) share, for one dtype (included by instantiate.h after elementwise.h). */

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
/* bf16-mixed on the tiles: the rows of the rounded copies of A and D (RA, RD) */
#define RA_ROWS(P, l) ((P)->rows + (P)->batch * (1 + 2 * (P)->n_layers + (l)))
#define RD_ROWS(P, l) ((P)->rows + (P)->batch * (1 + 3 * (P)->n_layers + (l)))

/* dst = src rounded to bfloat16 (kept as float32); bf16 plans are float32 plans */
static inline void FN(round_bf16)(const void *src, void *dst, int64_t n) {
    eng_bf16_round((const float *)src, (float *)dst, n);
}

/* Layer l's kept slopes from row r0 (csrc/ops.h ENG_SLOPE_OPS), or NULL; and what its
   derivative reads: those slopes, or its outputs. */
static inline REAL *FN(slope_rows)(const eng_epoch_plan *P, int l, int64_t r0) {
    return P->SL != NULL && P->SL[l] != NULL ? (REAL *)P->SL[l] + r0 * P->sizes[l + 1] : NULL;
}
static inline const REAL *FN(derivative_rows)(const eng_epoch_plan *P, int l, int64_t r0) {
    const REAL *slopes = FN(slope_rows)(P, l, r0);
    return slopes != NULL ? slopes : (const REAL *)P->A[l] + r0 * P->sizes[l + 1];
}

/* The sum of squares of the weights in the caller's layout (the L2 term): the first
   minibatch's on the tiles, every one's on BLAS. */
static double FN(weight_squares_of_w)(const eng_epoch_plan *P) {
    double sum = 0.0;
    for (int l = 0; l < P->n_layers; l++)
        sum += FN(eng_sq_norm)((const REAL *)P->W[l], (int64_t)P->sizes[l + 1] * P->sizes[l]);
    return sum;
}
