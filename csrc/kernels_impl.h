/* Generic kernel bodies, included once per dtype by kernels.c with
 * REAL (the element type), S (the name suffix) and the math functions
 * EXP, LOG, TANH and EPS defined for that type. */

#define FN2(name, s) name##_##s
#define FN1(name, s) FN2(name, s)
#define FN(name) FN1(name, S)

/* Overflow-free logistic: exp is only ever taken of a non-positive number. */
static inline REAL FN(sigmoid)(REAL z) {
    if (z >= 0) {
        return (REAL)1 / ((REAL)1 + EXP(-z));
    }
    REAL e = EXP(z);
    return e / ((REAL)1 + e);
}

static void FN(softmax_row)(REAL *row, int64_t c) {
    REAL mx = row[0];
    for (int64_t j = 1; j < c; j++) mx = row[j] > mx ? row[j] : mx;
    REAL sum = 0;
    for (int64_t j = 0; j < c; j++) {
        row[j] = EXP(row[j] - mx);
        sum += row[j];
    }
    REAL inv = (REAL)1 / sum;
    for (int64_t j = 0; j < c; j++) row[j] *= inv;
}

void FN(eng_softmax_rows)(REAL *z, int64_t n, int64_t c) {
    #pragma omp parallel for schedule(static) if (n * c >= ENG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) FN(softmax_row)(z + i * c, c);
}

void FN(eng_bias_act)(REAL *z, const REAL *b, int64_t n, int64_t c, int act) {
    #pragma omp parallel for schedule(static) if (n * c >= ENG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        REAL *row = z + i * c;
        switch (act) {
        case ENG_SIGMOID:
            for (int64_t j = 0; j < c; j++) row[j] = FN(sigmoid)(row[j] + b[j]);
            break;
        case ENG_RELU:
            for (int64_t j = 0; j < c; j++) {
                REAL v = row[j] + b[j];
                row[j] = v > 0 ? v : 0;
            }
            break;
        case ENG_TANH:
            for (int64_t j = 0; j < c; j++) row[j] = TANH(row[j] + b[j]);
            break;
        case ENG_SOFTMAX:
            for (int64_t j = 0; j < c; j++) row[j] += b[j];
            FN(softmax_row)(row, c);
            break;
        default: /* identity */
            for (int64_t j = 0; j < c; j++) row[j] += b[j];
        }
    }
}

void FN(eng_act_backward)(REAL *d, const REAL *a, int64_t len, int act) {
    switch (act) {
    case ENG_SIGMOID:
        #pragma omp parallel for schedule(static) if (len >= ENG_PAR_MIN)
        for (int64_t i = 0; i < len; i++) d[i] *= a[i] * ((REAL)1 - a[i]);
        break;
    case ENG_RELU:
        #pragma omp parallel for schedule(static) if (len >= ENG_PAR_MIN)
        for (int64_t i = 0; i < len; i++) d[i] = a[i] > 0 ? d[i] : 0;
        break;
    case ENG_TANH:
        #pragma omp parallel for schedule(static) if (len >= ENG_PAR_MIN)
        for (int64_t i = 0; i < len; i++) d[i] *= (REAL)1 - a[i] * a[i];
        break;
    default: /* identity */
        break;
    }
}

void FN(eng_output_delta)(const REAL *a, const REAL *t, REAL *out, int64_t n, int64_t c,
                          int kind) {
    int64_t len = n * c;
    if (kind == ENG_SOFTMAX_CE) {
        REAL scale = (REAL)1 / (REAL)n;
        for (int64_t i = 0; i < len; i++) out[i] = (a[i] - t[i]) * scale;
        return;
    }
    /* sigmoid + mse: d/dz of mean((a - t)^2) = 2 (a - t) / (n c) * a (1 - a);
       the textbook convention drops the 1/c */
    REAL scale = (REAL)2 / (REAL)(kind == ENG_SIGMOID_MSE_REF ? n : n * c);
    for (int64_t i = 0; i < len; i++) out[i] = scale * (a[i] - t[i]) * a[i] * ((REAL)1 - a[i]);
}

double FN(eng_loss)(const REAL *a, const REAL *t, int64_t n, int64_t c, int kind) {
    int64_t len = n * c;
    double acc = 0.0;
    if (kind == ENG_SOFTMAX_CE) {
        for (int64_t i = 0; i < len; i++) {
            if (t[i] != 0) {
                REAL p = a[i] > EPS ? a[i] : EPS;
                acc -= (double)t[i] * (double)LOG(p);
            }
        }
        return acc / (double)n;
    }
    for (int64_t i = 0; i < len; i++) {
        double e = (double)a[i] - (double)t[i];
        acc += e * e;
    }
    return acc / (double)len;
}

void FN(eng_bias_grad)(const REAL *d, REAL *out, int64_t n, int64_t c) {
    for (int64_t j = 0; j < c; j++) out[j] = 0;
    for (int64_t i = 0; i < n; i++) {
        const REAL *row = d + i * c;
        for (int64_t j = 0; j < c; j++) out[j] += row[j];
    }
}

void FN(eng_sgd_step)(REAL *p, const REAL *g, REAL *v, int64_t len, REAL lr, REAL mom) {
    if (v == NULL) {
        #pragma omp parallel for schedule(static) if (len >= ENG_PAR_MIN)
        for (int64_t i = 0; i < len; i++) p[i] -= lr * g[i];
        return;
    }
    #pragma omp parallel for schedule(static) if (len >= ENG_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        v[i] = mom * v[i] - lr * g[i];
        p[i] += v[i];
    }
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

#undef FN
#undef FN1
#undef FN2
