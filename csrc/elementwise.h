/* The elementwise kernels of kernels.h for one dtype (included by instantiate.h): checks-free
   drivers that share rows out to OpenMP threads (above ENG_PAR_MIN elements) and call the
   SIMD workers of this CPU, plus the small reductions and copies that need no SIMD variant. */

/* rows per chunk so that a chunk holds about ENG_CHUNK elements */
static inline int64_t FN(rows_per_chunk)(int64_t c) {
    int64_t r = ENG_CHUNK / (c > 0 ? c : 1);
    return r > 0 ? r : 1;
}

void FN(eng_softmax_rows)(REAL *z, int64_t n, int64_t c) {
    FN(eng_bias_act)(z, NULL, n, c, ENG_SOFTMAX, NULL);
}

void FN(eng_bias_act)(REAL *z, const REAL *b, int64_t n, int64_t c, int act, REAL *slopes) {
    int64_t step = FN(rows_per_chunk)(c);
    #pragma omp parallel for schedule(static) num_threads(eng_kernel_threads()) if (n * c >= ENG_PAR_MIN && eng_team(eng_kernel_threads()) > 1)
    for (int64_t i0 = 0; i0 < n; i0 += step) {
        int64_t rows = n - i0 < step ? n - i0 : step;
        FN(workers)()->bias_act_rows(z + i0 * c, b, rows, c, act,
                                     slopes != NULL ? slopes + i0 * c : NULL);
    }
}

void FN(eng_act_backward)(REAL *d, const REAL *a, int64_t len, int act) {
    #pragma omp parallel for schedule(static) num_threads(eng_kernel_threads()) if (len >= ENG_PAR_MIN && eng_team(eng_kernel_threads()) > 1)
    for (int64_t i0 = 0; i0 < len; i0 += ENG_CHUNK) {
        int64_t m = len - i0 < ENG_CHUNK ? len - i0 : ENG_CHUNK;
        FN(workers)()->act_backward_range(d + i0, a + i0, m, act);
    }
}

void FN(eng_output_delta)(const REAL *a, const REAL *t, REAL *out, int64_t n, int64_t c,
                          int kind, const REAL *w) {
    REAL scale = FN(delta_scale)(kind, FN(weight_sum)(w, NULL, n), c);
    for (int64_t i = 0; i < n; i++) {
        REAL s = w == NULL ? scale : scale * w[i];
        for (int64_t j = i * c; j < (i + 1) * c; j++) out[j] = FN(delta_of)(kind, a[j], t[j], s);
    }
}

/* the delta of n rows of a minibatch whose rows weigh `weight` in all (a team's share) */
void FN(eng_output_delta_part)(const REAL *a, const REAL *t, REAL *out, int64_t n, int64_t c,
                               int kind, double weight) {
    REAL scale = FN(delta_scale)(kind, weight, c);
    for (int64_t j = 0; j < n * c; j++) out[j] = FN(delta_of)(kind, a[j], t[j], scale);
}

/* each row's summed loss terms (eng_loss adds them in row order, then divides) */
void FN(eng_row_losses)(const REAL *a, const REAL *t, int64_t n, int64_t c, int kind,
                        double *out) {
    for (int64_t i = 0; i < n; i++) {
        double row = 0.0;
        for (int64_t j = i * c; j < (i + 1) * c; j++) row += FN(loss_of)(kind, a[j], t[j]);
        out[i] = row;
    }
}

double FN(eng_loss_divisor)(int kind, double weight, int64_t c) {
    return FN(loss_divisor)(kind, weight, c);
}

double FN(eng_loss)(const REAL *a, const REAL *t, int64_t n, int64_t c, int kind,
                    const REAL *w) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double row = 0.0;
        for (int64_t j = i * c; j < (i + 1) * c; j++) row += FN(loss_of)(kind, a[j], t[j]);
        acc += w == NULL ? row : (double)w[i] * row;
    }
    return acc / FN(loss_divisor)(kind, FN(weight_sum)(w, NULL, n), c);
}

void FN(eng_bias_grad)(const REAL *d, REAL *out, int64_t n, int64_t c) {
    for (int64_t j = 0; j < c; j++) out[j] = 0;
    for (int64_t i = 0; i < n; i++) {
        const REAL *row = d + i * c;
        for (int64_t j = 0; j < c; j++) out[j] += row[j];
    }
}

void FN(eng_optimizer_step)(REAL *p, const REAL *g, REAL *s1, REAL *s2, int64_t len,
                            const eng_rule *rule, double l2) {
    FN(eng_step) st = FN(step_of)(rule, eng_rule_step_size(rule), l2);
    #pragma omp parallel for schedule(static) num_threads(eng_kernel_threads()) if (len >= ENG_PAR_MIN && eng_team(eng_kernel_threads()) > 1)
    for (int64_t i0 = 0; i0 < len; i0 += ENG_CHUNK) {
        int64_t m = len - i0 < ENG_CHUNK ? len - i0 : ENG_CHUNK;
        FN(workers)()->update_range(p + i0, g + i0, s1 == NULL ? NULL : s1 + i0,
                                    s2 == NULL ? NULL : s2 + i0, m, st.kind, st.lr, st.mom,
                                    st.b1, st.b2, st.eps, st.l2);
    }
}

/* the step of a block of rows x cols of a matrix with row stride ld (a thread's columns) */
void FN(eng_optimizer_step_rows)(REAL *p, const REAL *g, REAL *s1, REAL *s2, int64_t rows,
                                 int64_t cols, int64_t ld, const eng_rule *rule, double l2) {
    FN(eng_step) st = FN(step_of)(rule, eng_rule_step_size(rule), l2);
    for (int64_t r = 0; r < rows; r++)
        FN(workers)()->update_range(p + r * ld, g + r * ld, s1 == NULL ? NULL : s1 + r * ld,
                                    s2 == NULL ? NULL : s2 + r * ld, cols, st.kind, st.lr,
                                    st.mom, st.b1, st.b2, st.eps, st.l2);
}

void FN(eng_sgd_step)(REAL *p, const REAL *g, REAL *v, int64_t len, REAL lr, REAL mom) {
    eng_rule rule = {v == NULL ? ENG_SGD : ENG_MOMENTUM, lr, mom, 0.0, 0.0, 0.0, 1};
    FN(eng_optimizer_step)(p, g, v, NULL, len, &rule, 0.0);
}

void FN(eng_axpy)(REAL *p, const REAL *g, int64_t len, REAL alpha) {
    for (int64_t i = 0; i < len; i++) p[i] += alpha * g[i];
}

void FN(eng_gather)(const REAL *X, const int64_t *y, const int64_t *idx, int64_t m, int64_t f,
                    int64_t c, REAL *x_out, REAL *t_out) {
    for (int64_t i = 0; i < m; i++) {
        memcpy(x_out + i * f, X + idx[i] * f, (size_t)f * sizeof(REAL));
        REAL *row = t_out + i * c;
        for (int64_t j = 0; j < c; j++) row[j] = 0;
        row[y[idx[i]]] = 1;
    }
}

void FN(eng_gather_rows)(const REAL *X, const REAL *T, const int64_t *idx, int64_t m,
                         int64_t f, int64_t c, REAL *x_out, REAL *t_out) {
    for (int64_t i = 0; i < m; i++) {
        memcpy(x_out + i * f, X + idx[i] * f, (size_t)f * sizeof(REAL));
        memcpy(t_out + i * c, T + idx[i] * c, (size_t)c * sizeof(REAL));
    }
}

void FN(eng_prefetch_rows)(const REAL *X, const int64_t *idx, int64_t m, int64_t f) {
    const char *end;
    for (int64_t i = 0; i < m; i++) {
        const char *row = (const char *)(X + idx[i] * f);
        end = row + f * sizeof(REAL);
        for (; row < end; row += 64) __builtin_prefetch(row, 0, 2);
    }
}

/* the integer threshold and the scale of a drop rate (runtime.h) */
static inline uint32_t FN(dropout_threshold)(double rate) {
    return (uint32_t)llround(rate * 16777216.0);
}

void FN(eng_dropout)(REAL *a, int64_t n, int64_t c, int64_t row0, uint32_t key, int layer,
                     double rate) {
    FN(workers)()->dropout_rows(a, n, c, row0, key, layer, FN(dropout_threshold)(rate),
                                (REAL)(1.0 / (1.0 - rate)));
}

void FN(eng_dropout_backward)(REAL *d, const REAL *a, int64_t n, int64_t c, int64_t row0,
                              uint32_t key, int layer, double rate, int act) {
    FN(workers)()->dropout_backward_rows(d, a, n, c, row0, key, layer,
                                         FN(dropout_threshold)(rate),
                                         (REAL)(1.0 / (1.0 - rate)), act);
}

void FN(eng_alive_units)(const REAL *a, int64_t n, int64_t c, uint8_t *alive) {
    for (int64_t j = 0; j < c; j++) alive[j] = 0;
    for (int64_t i = 0; i < n; i++) {
        const REAL *row = a + i * c;
        for (int64_t j = 0; j < c; j++) alive[j] |= row[j] > 0;
    }
}

int64_t FN(eng_saturated_count)(const REAL *a, int64_t len, int act, REAL thr) {
    int64_t count = 0;
    if (act == ENG_SIGMOID) {
        for (int64_t i = 0; i < len; i++) count += FABS((REAL)2 * a[i] - (REAL)1) > thr;
    } else if (act == ENG_TANH) {
        for (int64_t i = 0; i < len; i++) count += FABS(a[i]) > thr;
    }
    return count;
}

double FN(eng_sq_norm)(const REAL *x, int64_t len) {
    double acc = 0.0;
    for (int64_t i = 0; i < len; i++) acc += (double)x[i] * (double)x[i];
    return acc;
}
