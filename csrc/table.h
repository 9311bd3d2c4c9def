/* One dtype's kernels behind the dtype-neutral eng_kernel_table of kernels.h (included by
   instantiate.h last): the bindings pick the table by the arrays' dtype once, then call
   through it, instead of branching on the dtype around every call. Scalars arrive as
   double and are rounded to REAL here, as the typed entry points would. */
static void FN(t_bias_act)(void *z, const void *b, int64_t n, int64_t c, int act,
                           void *slopes) {
    FN(eng_bias_act)((REAL *)z, (const REAL *)b, n, c, act, (REAL *)slopes);
}
static void FN(t_act_backward)(void *d, const void *a, int64_t len, int act) {
    FN(eng_act_backward)((REAL *)d, (const REAL *)a, len, act);
}
static void FN(t_softmax_rows)(void *z, int64_t n, int64_t c) {
    FN(eng_softmax_rows)((REAL *)z, n, c);
}
static void FN(t_output_delta)(const void *a, const void *t, void *out, int64_t n, int64_t c,
                               int kind, const void *w) {
    FN(eng_output_delta)((const REAL *)a, (const REAL *)t, (REAL *)out, n, c, kind,
                         (const REAL *)w);
}
static double FN(t_loss)(const void *a, const void *t, int64_t n, int64_t c, int kind,
                         const void *w) {
    return FN(eng_loss)((const REAL *)a, (const REAL *)t, n, c, kind, (const REAL *)w);
}
static void FN(t_bias_grad)(const void *d, void *out, int64_t n, int64_t c) {
    FN(eng_bias_grad)((const REAL *)d, (REAL *)out, n, c);
}
static void FN(t_sgd_step)(void *p, const void *g, void *v, int64_t len, double lr,
                           double mom) {
    FN(eng_sgd_step)((REAL *)p, (const REAL *)g, (REAL *)v, len, (REAL)lr, (REAL)mom);
}
static void FN(t_optimizer_step)(void *p, const void *g, void *s1, void *s2, int64_t len,
                                 const eng_rule *rule, double l2) {
    FN(eng_optimizer_step)((REAL *)p, (const REAL *)g, (REAL *)s1, (REAL *)s2, len, rule, l2);
}
static void FN(t_gather)(const void *X, const int64_t *y, const int64_t *idx, int64_t m,
                         int64_t f, int64_t c, void *x_out, void *t_out) {
    FN(eng_gather)((const REAL *)X, y, idx, m, f, c, (REAL *)x_out, (REAL *)t_out);
}
static void FN(t_gather_rows)(const void *X, const void *T, const int64_t *idx, int64_t m,
                              int64_t f, int64_t c, void *x_out, void *t_out) {
    FN(eng_gather_rows)((const REAL *)X, (const REAL *)T, idx, m, f, c, (REAL *)x_out,
                        (REAL *)t_out);
}
static void FN(t_dropout)(void *a, int64_t n, int64_t c, int64_t row0, uint32_t key,
                          int layer, double rate) {
    FN(eng_dropout)((REAL *)a, n, c, row0, key, layer, rate);
}
static void FN(t_dropout_backward)(void *d, const void *a, int64_t n, int64_t c, int64_t row0,
                                   uint32_t key, int layer, double rate, int act) {
    FN(eng_dropout_backward)((REAL *)d, (const REAL *)a, n, c, row0, key, layer, rate, act);
}
static void FN(t_alive_units)(const void *a, int64_t n, int64_t c, uint8_t *alive) {
    FN(eng_alive_units)((const REAL *)a, n, c, alive);
}
static int64_t FN(t_saturated_count)(const void *a, int64_t len, int act, double thr) {
    return FN(eng_saturated_count)((const REAL *)a, len, act, (REAL)thr);
}
static double FN(t_sq_norm)(const void *x, int64_t len) {
    return FN(eng_sq_norm)((const REAL *)x, len);
}
static int64_t FN(t_fused_epoch)(const eng_epoch_plan *plan, const void *X, const int64_t *y,
                              const void *T, const void *SW, const int64_t *order,
                                 int64_t count, const eng_rule *rule, double alpha,
                                 double *losses) {
    return FN(eng_fused_epoch)(plan, (const REAL *)X, y, (const REAL *)T, (const REAL *)SW,
                               order, count, rule, alpha, losses);
}
static int FN(t_tiled_forward)(int n_layers, const int *sizes, const int *acts,
                               void *const *W, void *const *B, const void *x, int64_t n,
                               void *const *out, int bf16) {
    return FN(eng_tiled_forward)(n_layers, sizes, acts, (const REAL *const *)W,
                                 (const REAL *const *)B, (const REAL *)x, n, (REAL *const *)out,
                                 bf16);
}

const eng_kernel_table FN(eng_kernels) = {
    (int)sizeof(REAL), FN(t_bias_act), FN(t_act_backward), FN(t_softmax_rows),
    FN(t_output_delta), FN(t_loss), FN(t_bias_grad), FN(t_sgd_step), FN(t_optimizer_step),
    FN(t_gather), FN(t_gather_rows), FN(t_dropout), FN(t_dropout_backward), FN(t_alive_units), FN(t_saturated_count),
    FN(t_sq_norm), FN(t_fused_epoch), FN(eng_gemm_floor), FN(t_tiled_forward),
};
