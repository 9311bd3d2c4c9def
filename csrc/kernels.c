/* Instantiates the generic kernels for float and double (see README.md in this folder):
   each dtype's parameters, then every source of instantiate.h, then the parameters go. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "bf16.h"
#include "names.h"
#include "runtime.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dtype_float.h"
#include "instantiate.h"
#include "dtype_undef.h"

#include "dtype_double.h"
#include "instantiate.h"
#include "dtype_undef.h"

uint32_t eng_dropout_key(uint64_t epoch_key, int64_t minibatch) {
    return eng_dropout_minibatch_key(epoch_key, minibatch);
}

double eng_rule_step_size(const eng_rule *rule) {
    if (rule->kind != ENG_ADAM) return rule->lr;
    double t = (double)(rule->t > 0 ? rule->t : 1);
    return rule->lr * sqrt(1.0 - pow(rule->beta2, t)) / (1.0 - pow(rule->beta1, t));
}

/* ------------------------------------------------- sizes of the fused epoch's buffers */
int64_t eng_epoch_scratch_bytes(int n_layers, int64_t batch, const int *sizes) {
    int64_t widest = 1;
    for (int l = 0; l <= n_layers; l++) widest = sizes[l] > widest ? sizes[l] : widest;
    int64_t k = widest > batch ? widest : batch;
    /* a layer's inputs packed by columns (at most the widest layer rounded up to a tile's
       rows, times the batch; 8-byte REALs at most), then a panel of up to k rows;
       rounded up to a cache line */
    int64_t packed = (widest + ENG_MAX_MR) * batch * 8;
    return (packed + k * ENG_MAX_PANEL_BYTES + 63) / 64 * 64;
}

int64_t eng_epoch_row_count(int n_layers, int64_t batch) {
    return batch * (1 + 4 * (int64_t)n_layers);   /* X, A, D rows; bf16: rounded A, D */
}

int64_t eng_epoch_l2_parts(int n_layers, const int *sizes) {
    int64_t parts = 0;
    for (int l = 0; l < n_layers; l++) parts += (sizes[l] + ENG_MIN_MR - 1) / ENG_MIN_MR;
    return parts;
}

int64_t eng_epoch_delta_panel_bytes(int n_layers, int64_t batch, const int *sizes) {
    int64_t bytes = 0;
    for (int l = 0; l < n_layers; l++)
        bytes += batch * ((sizes[l + 1] * 8 + ENG_MAX_PANEL_BYTES - 1) / ENG_MAX_PANEL_BYTES *
                          ENG_MAX_PANEL_BYTES);
    return bytes;
}

int64_t eng_epoch_panel_elements(int64_t n_out, int64_t n_in, int itemsize) {
    int64_t pw = ENG_MAX_PANEL_BYTES / itemsize;
    /* the panels, then room for the rows of a narrow last panel (workers_gemm.h) */
    return (n_out + pw - 1) / pw * pw * n_in + pw / 4 * n_in;
}
