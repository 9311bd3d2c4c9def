# Declarations of csrc/kernels.h that the bindings use, nothing else. The typed kernels
# (eng_bias_act_f ...) are reached through the per-dtype tables eng_kernels_f/_d.
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "kernels.h" nogil:
    enum:
        ENG_IDENTITY
        ENG_SIGMOID
        ENG_RELU
        ENG_TANH
        ENG_SOFTMAX
        ENG_EXP
        ENG_SIGMOID_MSE
        ENG_SOFTMAX_CE
        ENG_IDENTITY_MSE
        ENG_SIGMOID_BCE
        ENG_EXP_POISSON
        ENG_IDENTITY_HALF_MSE
        ENG_MAX_LAYERS
        ENG_MAX_EPOCH_THREADS
        ENG_BF16_PORTABLE
        ENG_BF16_AVX512
        ENG_BF16_AMX
        ENG_BF16_PATHS
        ENG_SGD
        ENG_MOMENTUM
        ENG_NESTEROV
        ENG_ADAM

    ctypedef struct eng_rule:
        int kind
        double lr
        double momentum
        double beta1
        double beta2
        double eps
        int64_t t

    double eng_rule_step_size(const eng_rule *rule)
    uint32_t eng_dropout_key(uint64_t epoch_key, int64_t minibatch)

    ctypedef struct eng_epoch_plan:
        int n_layers
        int64_t batch
        const int *sizes
        const int *acts
        int loss_kind
        void **W
        void **B
        void **VW
        void **VB
        void **MW
        void **MB
        void **A
        void **D
        void **SL
        void **GB
        void **WT
        void **VT
        void **ST
        double *l2_parts
        void **rows
        double *row_loss
        void *delta_panels
        void *scratch
        int64_t scratch_per_thread
        int threads
        int team
        const double *dropout
        uint64_t dropout_key
        int (*reduce)(void *ctx, int64_t i, double *loss, double *weight) noexcept nogil
        void *reduce_ctx
        void **GW
        void **GT
        void (*blas_gemm)() noexcept nogil
        void *x
        void **RW
        void **RA
        void **RD
        double *grad_norms

    double eng_fma_gflops_f(int threads, int64_t iters)
    double eng_fma_gflops_d(int threads, int64_t iters)
    int64_t eng_epoch_scratch_bytes(int n_layers, int64_t batch, const int *sizes)
    int64_t eng_epoch_row_count(int n_layers, int64_t batch)
    int64_t eng_epoch_l2_parts(int n_layers, const int *sizes)
    int64_t eng_epoch_delta_panel_bytes(int n_layers, int64_t batch, const int *sizes)
    int64_t eng_epoch_panel_elements(int64_t n_out, int64_t n_in, int itemsize)
    int eng_get_epoch_threads()
    int eng_op_code(const char *name)
    int eng_op_keeps_slope(int code)
    void eng_set_epoch_threads(int n)
    int eng_epoch_threads_setting()
    int eng_usable_cpus()

    void eng_bf16_round(const float *x, float *out, int64_t n)
    int eng_bf16_forward(int path, int n_layers, const int *sizes, const float *const *W,
                         const float *const *B, const int *acts, const float *X,
                         const uint16_t *XP, int64_t n, float *const *out)
    void eng_bf16_rows(const float *src, int64_t rows, int64_t cols, uint16_t *dst,
                       int64_t width)
    int eng_gemm_bf16(int path, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                      const float *a, const float *b, float *c)
    int eng_bf16_path()
    double eng_bf16_dot_vs_fma()
    int eng_bf16_force(int path)
    int eng_bf16_supported(int path)
    void eng_bf16_emulate(int on)
    const char *eng_bf16_name(int path)
    const char *eng_bf16_reason(int path)
    double eng_bf16_peak_gflops(int path, int64_t iters)
    ctypedef struct eng_bf16_plan:
        int n_layers
        int loss_kind
        int path
        int team
        int most_threads
        const int *sizes
        const int *acts
        int64_t batch
        float **W
        float **B
        float **GW
        float **GB
        float **A
        float **SL
        float **D
        float **S1
        float **S2
        float *t
    int64_t eng_bf16_epoch(const eng_bf16_plan *plan, const uint16_t *X, int64_t x_stride,
                           const int64_t *y, const float *T, const int64_t *order,
                           int64_t count, const eng_rule *rule, double alpha, double *losses)
    int eng_bf16_team(int path, int n_layers, const int *sizes, int64_t batch, int team,
                      int most)

    int eng_install_interrupt_handler()
    void eng_remove_interrupt_handler()
    void eng_request_stop()
    void eng_clear_stop()
    int eng_stop_requested()

    int eng_have_openmp()
    int eng_get_num_threads()
    void eng_set_num_threads(int n)
    int64_t eng_parallel_threshold()
    const char *eng_simd_variant()
    const char *eng_simd_variant_name(int i)
    int eng_simd_supported(int i)
    int eng_force_simd(const char *name)

    ctypedef struct eng_kernel_table:
        int itemsize
        void (*bias_act)(void *z, const void *b, int64_t n, int64_t c, int act,
                         void *slopes) noexcept nogil
        void (*act_backward)(void *d, const void *a, int64_t length, int act) noexcept nogil
        void (*softmax_rows)(void *z, int64_t n, int64_t c) noexcept nogil
        void (*output_delta)(const void *a, const void *t, void *out, int64_t n, int64_t c,
                             int kind, const void *w) noexcept nogil
        double (*loss)(const void *a, const void *t, int64_t n, int64_t c, int kind,
                       const void *w) noexcept nogil
        void (*bias_grad)(const void *d, void *out, int64_t n, int64_t c) noexcept nogil
        void (*sgd_step)(void *p, const void *g, void *v, int64_t length, double lr,
                         double mom) noexcept nogil
        void (*optimizer_step)(void *p, const void *g, void *s1, void *s2, int64_t length,
                               const eng_rule *rule, double l2) noexcept nogil
        void (*gather)(const void *X, const int64_t *y, const int64_t *idx, int64_t m,
                       int64_t f, int64_t c, void *x_out, void *t_out) noexcept nogil
        void (*gather_rows)(const void *X, const void *T, const int64_t *idx, int64_t m,
                            int64_t f, int64_t c, void *x_out, void *t_out) noexcept nogil
        void (*dropout)(void *a, int64_t n, int64_t c, int64_t row0, uint32_t key, int layer,
                        double rate) noexcept nogil
        void (*dropout_backward)(void *d, const void *a, int64_t n, int64_t c, int64_t row0,
                                 uint32_t key, int layer, double rate, int act) noexcept nogil
        void (*alive_units)(const void *a, int64_t n, int64_t c, uint8_t *alive) noexcept nogil
        int64_t (*saturated_count)(const void *a, int64_t length, int act, double thr) noexcept nogil
        double (*sq_norm)(const void *x, int64_t length) noexcept nogil
        int64_t (*fused_epoch)(const eng_epoch_plan *plan, const void *X, const int64_t *y,
                               const void *T, const void *SW, const int64_t *order,
                               int64_t count, const eng_rule *rule, double alpha,
                               double *losses) noexcept nogil
        int64_t (*gemm_floor)(const eng_epoch_plan *plan, int64_t count) noexcept nogil
        int (*tiled_forward)(int n_layers, const int *sizes, const int *acts, void **W,
                             void **B, const void *x, int64_t n, void **out,
                             int bf16) noexcept nogil

    const eng_kernel_table eng_kernels_f
    const eng_kernel_table eng_kernels_d
