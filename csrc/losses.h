/* The output/loss pairs of one dtype (included by instantiate.h), element by element: the
   scale of the minibatch's delta, one element's delta and loss term, and what the summed
   terms are divided by. elementwise.h and the fused epoch (epoch.h) both use these, so a
   pair is written once; engine/backends/numpy_backend.py is their specification. */

/* the delta's scale for n rows (or, with sample weights, rows weighing n in all) of c
   outputs: 1/n, and 2/(n c) for mean squared errors (half of one, scikit-learn's
   squared_error, keeps 1/n: its delta is c times the gradient of the loss it reports) */
static inline REAL FN(delta_scale)(int kind, double n, int64_t c) {
    switch (kind) {
    case ENG_SIGMOID_MSE:
    case ENG_IDENTITY_MSE: return (REAL)(2.0 / (n * (double)c));
    default: return (REAL)(1.0 / n);
    }
}

/* dL/dz of one output a with target t, given the scale */
static inline REAL FN(delta_of)(int kind, REAL a, REAL t, REAL scale) {
    switch (kind) {
    case ENG_SIGMOID_MSE: return scale * (a - t) * a * ((REAL)1 - a);
    case ENG_IDENTITY_MSE: return scale * (a - t);
    default: return (a - t) * scale;   /* softmax + CE, sigmoid + BCE, exp + poisson,
                                          identity + half MSE */
    }
}

/* x log y, 0 where x is 0 */
static inline double FN(xlogy)(REAL x, REAL y) {
    return x == 0 ? 0.0 : (double)x * (double)LOG(y);
}

/* one element's loss term (the loss is their sum over the divisor below) */
static inline double FN(loss_of)(int kind, REAL a, REAL t) {
    switch (kind) {
    /* the clips are written so that a NaN output stays NaN (a comparison with NaN is
       false): a diverged network must not report a finite loss */
    case ENG_SOFTMAX_CE:
        return t == 0 ? 0.0 : -(double)t * (double)LOG(a < EPS ? EPS : a);
    case ENG_SIGMOID_BCE: {      /* probabilities clipped to [eps, 1 - eps], as scikit-learn */
        REAL p = a < EPS ? EPS : (a > (REAL)1 - EPS ? (REAL)1 - EPS : a);
        return -(FN(xlogy)(t, p) + FN(xlogy)((REAL)1 - t, (REAL)1 - p));
    }
    case ENG_EXP_POISSON: {      /* half the Poisson deviance: 0 where a == t */
        REAL p = a < TINY ? TINY : a;
        return FN(xlogy)(t, t) - FN(xlogy)(t, p) - (double)t + (double)a;
    }
    case ENG_IDENTITY_HALF_MSE: {
        double e = (double)a - (double)t;
        return 0.5 * e * e;
    }
    default: {                   /* squared errors */
        double e = (double)a - (double)t;
        return e * e;
    }
    }
}

/* mean squared errors average over every element; the others over the rows (n: the rows,
   or the sum of their sample weights) */
static inline double FN(loss_divisor)(int kind, double n, int64_t c) {
    return kind == ENG_SIGMOID_MSE || kind == ENG_IDENTITY_MSE
                   || kind == ENG_IDENTITY_HALF_MSE
               ? n * (double)c : n;
}

/* the sum of n sample weights (NULL: n), in order; a zero sum counts as 1 so that an
   all-zero minibatch takes a step with a zero gradient instead of dividing by zero */
static inline double FN(weight_sum)(const REAL *w, const int64_t *idx, int64_t n) {
    double sum = 0.0;
    if (w == NULL) return (double)n;
    for (int64_t i = 0; i < n; i++) sum += (double)w[idx == NULL ? i : idx[i]];
    return sum > 0 ? sum : 1.0;
}
