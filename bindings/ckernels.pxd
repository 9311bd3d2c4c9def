# Declarations of csrc/kernels.h, nothing else.
from libc.stdint cimport int64_t, uint8_t

cdef extern from "kernels.h" nogil:
    enum:
        ENG_IDENTITY
        ENG_SIGMOID
        ENG_RELU
        ENG_TANH
        ENG_SOFTMAX
        ENG_SIGMOID_MSE
        ENG_SIGMOID_MSE_REF
        ENG_SOFTMAX_CE
        ENG_MAX_LAYERS

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
        void **A
        void **D
        void **GB
        void **WT
        void **VT
        void **rows
        double *row_loss
        void *scratch
        int64_t scratch_per_thread
        int threads

    void eng_bias_act_f(float *z, const float *b, int64_t n, int64_t c, int act)
    void eng_bias_act_d(double *z, const double *b, int64_t n, int64_t c, int act)
    void eng_act_backward_f(float *d, const float *a, int64_t length, int act)
    void eng_act_backward_d(double *d, const double *a, int64_t length, int act)
    void eng_softmax_rows_f(float *z, int64_t n, int64_t c)
    void eng_softmax_rows_d(double *z, int64_t n, int64_t c)
    void eng_output_delta_f(const float *a, const float *t, float *out, int64_t n, int64_t c, int kind)
    void eng_output_delta_d(const double *a, const double *t, double *out, int64_t n, int64_t c, int kind)
    double eng_loss_f(const float *a, const float *t, int64_t n, int64_t c, int kind)
    double eng_loss_d(const double *a, const double *t, int64_t n, int64_t c, int kind)
    void eng_bias_grad_f(const float *d, float *out, int64_t n, int64_t c)
    void eng_bias_grad_d(const double *d, double *out, int64_t n, int64_t c)
    void eng_sgd_step_f(float *p, const float *g, float *v, int64_t length, float lr, float mom)
    void eng_sgd_step_d(double *p, const double *g, double *v, int64_t length, double lr, double mom)
    void eng_axpy_f(float *p, const float *g, int64_t length, float alpha)
    void eng_axpy_d(double *p, const double *g, int64_t length, double alpha)
    void eng_gather_f(const float *X, const int64_t *y, const int64_t *idx, int64_t m, int64_t f,
                      int64_t c, float *x_out, float *t_out)
    void eng_gather_d(const double *X, const int64_t *y, const int64_t *idx, int64_t m, int64_t f,
                      int64_t c, double *x_out, double *t_out)
    void eng_prefetch_rows_f(const float *X, const int64_t *idx, int64_t m, int64_t f)
    void eng_prefetch_rows_d(const double *X, const int64_t *idx, int64_t m, int64_t f)
    void eng_alive_units_f(const float *a, int64_t n, int64_t c, uint8_t *alive)
    void eng_alive_units_d(const double *a, int64_t n, int64_t c, uint8_t *alive)
    int64_t eng_saturated_count_f(const float *a, int64_t length, int act, float thr)
    int64_t eng_saturated_count_d(const double *a, int64_t length, int act, double thr)
    double eng_sq_norm_f(const float *x, int64_t length)
    double eng_sq_norm_d(const double *x, int64_t length)

    void eng_fused_epoch_f(const eng_epoch_plan *plan, const float *X, const int64_t *y,
                           const int64_t *order, int64_t count, float lr, float mom,
                           double *losses)
    void eng_fused_epoch_d(const eng_epoch_plan *plan, const double *X, const int64_t *y,
                           const int64_t *order, int64_t count, double lr, double mom,
                           double *losses)
    int eng_tiled_forward_f(int n_layers, const int *sizes, const int *acts, const float **W,
                            const float **B, const float *x, int64_t n, float **out)
    int eng_tiled_forward_d(int n_layers, const int *sizes, const int *acts, const double **W,
                            const double **B, const double *x, int64_t n, double **out)
    int64_t eng_epoch_scratch_bytes(int n_layers, int64_t batch, const int *sizes)
    int64_t eng_epoch_row_count(int n_layers, int64_t batch)
    int64_t eng_epoch_panel_elements(int64_t n_out, int64_t n_in, int itemsize)
    int eng_get_epoch_threads()
    void eng_set_epoch_threads(int n)

    int eng_have_openmp()
    int eng_get_num_threads()
    void eng_set_num_threads(int n)
    int64_t eng_parallel_threshold()
    const char *eng_simd_variant()
    void eng_force_baseline(int on)
