/* Elementwise workers, compiled once per (dtype, SIMD variant) by workers.h: the loops that
   must vectorize, so no libm calls (bar tanh) and no branches if-conversion cannot take.
   They run on the calling thread; the drivers in elementwise.h share work out. */

/* exp(x) without a libm call, so that loops over it vectorize: x = n ln2 + r with
   |r| <= ln2/2 (Cody-Waite, two-part ln2), exp(r) by a Taylor polynomial (POLY_EXP: error
   below one ulp on that interval), and 2^n built in the exponent bits.
   Below EXP_MIN the result is 0 (the true value is subnormal); x is capped at EXP_MAX. */
ENG_INLINE TARGET REAL VFN(fast_exp)(REAL x) {
    REAL xc = x > EXP_MAX ? EXP_MAX : (x < EXP_MIN ? EXP_MIN : x);
    /* adding the shifter rounds x/ln2 to an integer held in the low mantissa bits */
    REAL t = xc * (REAL)1.44269504088896340736 + EXP_SHIFTER;
    REAL n = t - EXP_SHIFTER;
    REAL r = xc - n * (REAL)LN2_HI;
    r = r - n * (REAL)LN2_LO;
    REAL p = POLY_EXP(r);
    UINT tb, pb;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&pb, &p, sizeof pb);
    pb += (tb - SHIFTER_BITS) << MANT_BITS;   /* p * 2^n */
    memcpy(&p, &pb, sizeof p);
    return x < EXP_MIN ? (REAL)0 : p;
}

/* Overflow-free logistic: exp is only taken of -|z|. */
ENG_INLINE TARGET REAL VFN(sigmoid)(REAL z) {
    REAL e = VFN(fast_exp)(z >= 0 ? -z : z);
    return (z >= 0 ? (REAL)1 : e) / ((REAL)1 + e);
}

ENG_INLINE TARGET void VFN(softmax_row)(REAL *row, int64_t c) {
    REAL mx = row[0];
    for (int64_t j = 1; j < c; j++) mx = row[j] > mx ? row[j] : mx;
    REAL sum = 0;
    for (int64_t j = 0; j < c; j++) {
        row[j] = VFN(fast_exp)(row[j] - mx);
        sum += row[j];
    }
    for (int64_t j = 0; j < c; j++) row[j] /= sum;
}

/* z[i, j] = act(z[i, j] + b[j]) for n rows of c; softmax acts on whole rows, and b may
   be NULL for it (a plain softmax). For the activations of ENG_SLOPE_OPS, slopes (NULL
   outside training) receives act'(z[i, j] + b[j]). */
TARGET static void VFN(bias_act_rows)(REAL *zs, const REAL *b, int64_t n, int64_t c, int act,
                                      REAL *slopes) {
    for (int64_t i = 0; i < n; i++) {
        REAL *row = zs + i * c;
        REAL *slope = slopes != NULL ? slopes + i * c : NULL;
        switch (act) {
#define FORWARD_CASE(NAME, code, F, D)                                                     \
        case ENG_##NAME:                                                                   \
            for (int64_t j = 0; j < c; j++) {                                              \
                REAL z = row[j] + b[j];                                                    \
                row[j] = F;                                                                \
            }                                                                              \
            break;
        ENG_HIDDEN_OPS(FORWARD_CASE)
#undef FORWARD_CASE
#define SLOPE_FORWARD_CASE(NAME, code, F, D)   /* one pass: F and D share their terms */    \
        case ENG_##NAME:                                                                   \
            for (int64_t j = 0; j < c; j++) {                                              \
                REAL z = row[j] + b[j];                                                    \
                if (slope != NULL) slope[j] = D;                                           \
                row[j] = F;                                                                \
            }                                                                              \
            break;
        ENG_SLOPE_OPS(SLOPE_FORWARD_CASE)
#undef SLOPE_FORWARD_CASE
        case ENG_EXP:           /* fast_exp caps its argument where the result still fits */
            for (int64_t j = 0; j < c; j++) row[j] = VFN(fast_exp)(row[j] + b[j]);
            break;
        case ENG_SOFTMAX:
            if (b != NULL)
                for (int64_t j = 0; j < c; j++) row[j] += b[j];
            VFN(softmax_row)(row, c);
            break;
        }
    }
}

/* d[i] *= act'(z[i]), from the activation's output outs[i] (for ENG_SLOPE_OPS: outs is
   the slope the forward pass kept, act'(z) itself) */
TARGET static void VFN(act_backward_range)(REAL *d, const REAL *outs, int64_t len, int act) {
    switch (act) {
#define BACKWARD_CASE(NAME, code, F, D)                                                    \
    case ENG_##NAME:                                                                       \
        for (int64_t i = 0; i < len; i++) {                                                \
            REAL a = outs[i];                                                              \
            (void)a;                                                                       \
            d[i] *= D;                                                                     \
        }                                                                                  \
        break;
    ENG_HIDDEN_OPS(BACKWARD_CASE)
#undef BACKWARD_CASE
#define SLOPE_BACKWARD_CASE(NAME, code, F, D)                                              \
    case ENG_##NAME:                                                                       \
        for (int64_t i = 0; i < len; i++) d[i] *= outs[i];                                 \
        break;
    ENG_SLOPE_OPS(SLOPE_BACKWARD_CASE)
#undef SLOPE_BACKWARD_CASE
    default: /* output-only activations: their delta comes with the loss */
        break;
    }
}

/* Inverted dropout on rows of a (c units each; row0: the first row's place in the
   minibatch): a unit is kept, times scale = 1 / (1 - rate), or zeroed (runtime.h's mask). */
TARGET static void VFN(dropout_rows)(REAL *a, int64_t rows, int64_t c, int64_t row0,
                                     uint32_t key, int layer, uint32_t threshold, REAL scale) {
    for (int64_t i = 0; i < rows; i++) {
        uint32_t row_key = eng_dropout_row_key(key, layer, row0 + i);
        REAL *ar = a + i * c;
        for (int64_t j = 0; j < c; j++)
            ar[j] *= eng_dropout_bits(row_key, j) >= threshold ? scale : (REAL)0;
    }
}

/* The backward pass through a hidden layer with dropout: d (dL/d of the kept-and-scaled
   outputs a) becomes dL/dz: zero for dropped units, times scale * act'(z) for kept ones,
   the derivative taken from the output before dropout, a = outs / scale (for
   ENG_SLOPE_OPS, outs is the kept slope, which dropout did not scale). One loop per
   activation (ops.h), so that each vectorizes. */
TARGET static void VFN(dropout_backward_rows)(REAL *d, const REAL *outs, int64_t rows, int64_t c,
                                              int64_t row0, uint32_t key, int layer,
                                              uint32_t threshold, REAL scale, int act) {
    REAL keep = (REAL)1 / scale;
    for (int64_t i = 0; i < rows; i++) {
        uint32_t row_key = eng_dropout_row_key(key, layer, row0 + i);
        REAL *dr = d + i * c;
        const REAL *ar = outs + i * c;
        switch (act) {
#define DROPOUT_CASE(NAME, code, F, D)                                                     \
        case ENG_##NAME:                                                                   \
            for (int64_t j = 0; j < c; j++) {                                              \
                REAL a = ar[j] * keep;                                                     \
                (void)a;                                                                   \
                REAL m = eng_dropout_bits(row_key, j) >= threshold ? scale : (REAL)0;       \
                dr[j] = dr[j] * m * (D);                                                   \
            }                                                                              \
            break;
        ENG_HIDDEN_OPS(DROPOUT_CASE)
#undef DROPOUT_CASE
#define SLOPE_DROPOUT_CASE(NAME, code, F, D)                                               \
        case ENG_##NAME:                                                                   \
            for (int64_t j = 0; j < c; j++) {                                              \
                REAL m = eng_dropout_bits(row_key, j) >= threshold ? scale : (REAL)0;       \
                dr[j] = dr[j] * m * ar[j];                                                 \
            }                                                                              \
            break;
        ENG_SLOPE_OPS(SLOPE_DROPOUT_CASE)
#undef SLOPE_DROPOUT_CASE
        }
    }
}

/* One optimizer step over len parameters p with gradient g (+ l2 * p), by the rule's kind
   (kernels.h writes each out); lr is the step's size (Adam's bias-corrected lr_t). State:
   s1 the velocity or Adam's first moment, s2 Adam's second moment. */
TARGET static void VFN(update_range)(REAL *p, const REAL *g, REAL *s1, REAL *s2, int64_t len,
                                     int kind, REAL lr, REAL mom, REAL b1, REAL b2, REAL eps,
                                     REAL l2) {
    /* the gradient with its L2 term; written twice so that l2 = 0 costs nothing */
#define UPDATE_LOOP(G)                                                                     \
    switch (kind) {                                                                        \
    case ENG_SGD:                                                                          \
        for (int64_t i = 0; i < len; i++) p[i] -= lr * (G);                                \
        break;                                                                             \
    case ENG_MOMENTUM:                                                                     \
        for (int64_t i = 0; i < len; i++) {                                                \
            s1[i] = mom * s1[i] - lr * (G);                                                \
            p[i] += s1[i];                                                                 \
        }                                                                                  \
        break;                                                                             \
    case ENG_NESTEROV:                                                                     \
        for (int64_t i = 0; i < len; i++) {                                                \
            REAL step = lr * (G);                                                          \
            s1[i] = mom * s1[i] - step;                                                    \
            p[i] += mom * s1[i] - step;                                                    \
        }                                                                                  \
        break;                                                                             \
    case ENG_STORE:                                                                        \
        for (int64_t i = 0; i < len; i++) p[i] = (G);                                      \
        break;                                                                             \
    default: /* ENG_ADAM */                                                                \
        for (int64_t i = 0; i < len; i++) {                                                \
            REAL gi = (G);                                                                 \
            s1[i] = b1 * s1[i] + ((REAL)1 - b1) * gi;                                      \
            s2[i] = b2 * s2[i] + ((REAL)1 - b2) * (gi * gi);                               \
            p[i] -= lr * s1[i] / (SQRT(s2[i]) + eps);                                      \
        }                                                                                  \
    }
    if (l2 != 0) {
        UPDATE_LOOP(g[i] + l2 * p[i])
    } else {
        UPDATE_LOOP(g[i])
    }
#undef UPDATE_LOOP
}

/* The machine's FMA rate, for reporting how much of it an epoch uses: `iters` rounds of
   PEAK_ACC independent vector FMAs (enough chains to cover the FMA units' latency), all in
   registers. Returns a value computed from every chain, so none is optimised away. */
#define PEAK_ACC 12
TARGET static double VFN(fma_loop)(int64_t iters) {
    VEC acc[PEAK_ACC], x, y;
    for (int v = 0; v < VLEN; v++) {
        x[v] = (REAL)0.999999;
        y[v] = (REAL)1e-7;
    }
    for (int a = 0; a < PEAK_ACC; a++) acc[a] = x * (REAL)(a + 1);
    for (int64_t i = 0; i < iters; i++)
        for (int a = 0; a < PEAK_ACC; a++) acc[a] = acc[a] * x + y;
    double sum = 0;
    for (int a = 0; a < PEAK_ACC; a++)
        for (int v = 0; v < VLEN; v++) sum += (double)acc[a][v];
    return sum;
}
