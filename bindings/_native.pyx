# cython: language_level=3
"""engine._native: the C kernels of csrc/ and SciPy's BLAS, callable from Python.

Every function validates its arguments (type, dtype, shape, contiguity) while it
holds the GIL, raising a ValueError/TypeError that names the argument, and then
releases the GIL for the work. `EpochPlan` runs a whole epoch of minibatch SGD in
C without returning to Python between minibatches.
"""
from libc.stdint cimport int64_t, uint8_t
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free
cimport numpy as cnp
import numpy as np

from ckernels cimport *

include "blas.pxi"

cnp.import_array()

ACTIVATIONS = {"identity": ENG_IDENTITY, "sigmoid": ENG_SIGMOID, "relu": ENG_RELU,
               "tanh": ENG_TANH, "softmax": ENG_SOFTMAX}
OUTPUT_LOSS = {("sigmoid", "mse"): ENG_SIGMOID_MSE, ("sigmoid", "mse_ref"): ENG_SIGMOID_MSE_REF,
               ("softmax", "cross_entropy"): ENG_SOFTMAX_CE}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INT64 = np.dtype(np.int64)


# ----------------------------------------------------------------------------- checks
cdef cnp.ndarray _array(str name, object x, object ndim=None, object dtype=None,
                        bint writable=False):
    """x itself after the checks; dtype None means float32 or float64."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array; got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {(<object>x).shape}")
    if dtype is None:
        if x.dtype not in _FLOATS:
            raise TypeError(f"{name} must be float32 or float64; got {x.dtype}")
    elif x.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype).name} like the other arguments; "
                        f"got {x.dtype}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not x.flags.writeable:
        raise ValueError(f"{name} is read-only but is written to")
    return x


cdef tuple _dims(object x):
    return x.shape


cdef _shape(str name, object x, tuple expected):
    if x.shape != expected:
        raise ValueError(f"{name} must have shape {expected}; got {x.shape}")


cdef int _act(str activation, bint allow_softmax=True) except -1:
    code = ACTIVATIONS.get(activation)
    if code is None or (code == ENG_SOFTMAX and not allow_softmax):
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    return code


cdef int _pair(str output, str loss) except -1:
    code = OUTPUT_LOSS.get((output, loss))
    if code is None:
        raise ValueError(f"no kernel for output {output!r} with loss {loss!r}; "
                         f"supported: {sorted(OUTPUT_LOSS)}")
    return code


cdef inline void *_ptr(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


# ------------------------------------------------------- typed kernel dispatch (nogil)
cdef inline void _bias_act(real *z, const real *b, int64_t n, int64_t c, int act) noexcept nogil:
    if real is float:
        eng_bias_act_f(z, b, n, c, act)
    else:
        eng_bias_act_d(z, b, n, c, act)


cdef inline void _act_backward(real *d, const real *a, int64_t length, int act) noexcept nogil:
    if real is float:
        eng_act_backward_f(d, a, length, act)
    else:
        eng_act_backward_d(d, a, length, act)


cdef inline void _output_delta(const real *a, const real *t, real *out, int64_t n, int64_t c,
                               int kind) noexcept nogil:
    if real is float:
        eng_output_delta_f(a, t, out, n, c, kind)
    else:
        eng_output_delta_d(a, t, out, n, c, kind)


cdef inline double _loss(const real *a, const real *t, int64_t n, int64_t c,
                         int kind) noexcept nogil:
    if real is float:
        return eng_loss_f(a, t, n, c, kind)
    else:
        return eng_loss_d(a, t, n, c, kind)


cdef inline void _bias_grad(const real *d, real *out, int64_t n, int64_t c) noexcept nogil:
    if real is float:
        eng_bias_grad_f(d, out, n, c)
    else:
        eng_bias_grad_d(d, out, n, c)


cdef inline void _sgd_step(real *p, const real *g, real *v, int64_t length, real lr,
                           real mom) noexcept nogil:
    if real is float:
        eng_sgd_step_f(p, g, v, length, lr, mom)
    else:
        eng_sgd_step_d(p, g, v, length, lr, mom)


cdef inline void _axpy(real *p, const real *g, int64_t length, real alpha) noexcept nogil:
    if real is float:
        eng_axpy_f(p, g, length, alpha)
    else:
        eng_axpy_d(p, g, length, alpha)


cdef inline void _gather(const real *X, const int64_t *y, const int64_t *idx, int64_t m,
                         int64_t f, int64_t c, real *x_out, real *t_out) noexcept nogil:
    if real is float:
        eng_gather_f(X, y, idx, m, f, c, x_out, t_out)
    else:
        eng_gather_d(X, y, idx, m, f, c, x_out, t_out)


cdef inline double _sq_norm(const real *x, int64_t length) noexcept nogil:
    if real is float:
        return eng_sq_norm_f(x, length)
    else:
        return eng_sq_norm_d(x, length)


cdef inline void _prefetch(const real *X, const int64_t *idx, int64_t m,
                           int64_t f) noexcept nogil:
    if real is float:
        eng_prefetch_rows_f(X, idx, m, f)
    else:
        eng_prefetch_rows_d(X, idx, m, f)


cdef int64_t _first_bad(const int64_t *v, int64_t length, int64_t upper) noexcept nogil:
    """The position of the first entry outside [0, upper), or -1."""
    cdef int64_t i
    for i in range(length):
        if v[i] < 0 or v[i] >= upper:
            return i
    return -1


# ------------------------------------------------------------------- Python kernels
def gemm(a, b, out, bint trans_a=False, bint trans_b=False, double alpha=1.0,
         double beta=0.0):
    """out = alpha * op(a) @ op(b) + beta * out through BLAS (row-major arrays)."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef cnp.ndarray B = _array("b", b, 2, A.dtype)
    cdef cnp.ndarray C = _array("out", out, 2, A.dtype, True)
    cdef int m = A.shape[1] if trans_a else A.shape[0]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int kb = B.shape[1] if trans_b else B.shape[0]
    cdef int n = B.shape[0] if trans_b else B.shape[1]
    if kb != k:
        raise ValueError(f"gemm: op(a) is {m}x{k} but op(b) is {kb}x{n}; inner sizes differ")
    _shape("out", C, (m, n))
    if m == 0 or n == 0:
        return
    cdef int lda = max(1, A.shape[1]), ldb = max(1, B.shape[1]), ldc = n
    cdef void *pa = _ptr(A)
    cdef void *pb = _ptr(B)
    cdef void *pc = _ptr(C)
    if A.dtype == _FLOATS[0]:
        with nogil:
            gemm_rm(trans_a, trans_b, m, n, k, <float>alpha, <float*>pa, lda, <float*>pb, ldb,
                    <float>beta, <float*>pc, ldc)
    else:
        with nogil:
            gemm_rm(trans_a, trans_b, m, n, k, alpha, <double*>pa, lda, <double*>pb, ldb,
                    beta, <double*>pc, ldc)


def bias_act_(z, bias, str activation):
    """z = activation(z + bias) in place."""
    cdef cnp.ndarray Z = _array("z", z, 2, None, True)
    cdef cnp.ndarray b = _array("bias", bias, 1, Z.dtype)
    _shape("bias", b, (Z.shape[1],))
    cdef int act = _act(activation)
    cdef int64_t n = Z.shape[0], c = Z.shape[1]
    cdef void *pz = _ptr(Z)
    cdef void *pb = _ptr(b)
    cdef bint is32 = Z.dtype == _FLOATS[0]
    with nogil:
        if is32:
            _bias_act(<float*>pz, <float*>pb, n, c, act)
        else:
            _bias_act(<double*>pz, <double*>pb, n, c, act)


def act_backward_(delta, a, str activation):
    """delta *= activation'(z), computed from the output a = activation(z)."""
    cdef cnp.ndarray D = _array("delta", delta, None, None, True)
    cdef cnp.ndarray A = _array("a", a, None, D.dtype)
    _shape("a", A, _dims(D))
    cdef int act = _act(activation, False)
    cdef int64_t length = D.size
    cdef void *pd = _ptr(D)
    cdef void *pa = _ptr(A)
    cdef bint is32 = D.dtype == _FLOATS[0]
    with nogil:
        if is32:
            _act_backward(<float*>pd, <float*>pa, length, act)
        else:
            _act_backward(<double*>pd, <double*>pa, length, act)


def softmax_(z):
    """Row-wise softmax of a 2-D array in place."""
    cdef cnp.ndarray Z = _array("z", z, 2, None, True)
    cdef int64_t n = Z.shape[0], c = Z.shape[1]
    cdef void *pz = _ptr(Z)
    cdef bint is32 = Z.dtype == _FLOATS[0]
    with nogil:
        if is32:
            eng_softmax_rows_f(<float*>pz, n, c)
        else:
            eng_softmax_rows_d(<double*>pz, n, c)


def output_delta(a, t, out, str output, str loss):
    """out = dL/dz of the output layer."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef cnp.ndarray T = _array("t", t, 2, A.dtype)
    cdef cnp.ndarray O = _array("out", out, 2, A.dtype, True)
    _shape("t", T, _dims(A))
    _shape("out", O, _dims(A))
    cdef int kind = _pair(output, loss)
    cdef int64_t n = A.shape[0], c = A.shape[1]
    cdef void *pa = _ptr(A)
    cdef void *pt = _ptr(T)
    cdef void *po = _ptr(O)
    cdef bint is32 = A.dtype == _FLOATS[0]
    with nogil:
        if is32:
            _output_delta(<float*>pa, <float*>pt, <float*>po, n, c, kind)
        else:
            _output_delta(<double*>pa, <double*>pt, <double*>po, n, c, kind)


def loss(a, t, str output, str loss):
    """The loss value of output activations a against one-hot targets t."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef cnp.ndarray T = _array("t", t, 2, A.dtype)
    _shape("t", T, _dims(A))
    cdef int kind = _pair(output, loss)
    cdef int64_t n = A.shape[0], c = A.shape[1]
    if n == 0:
        raise ValueError("a is empty: the loss of 0 rows is undefined")
    cdef void *pa = _ptr(A)
    cdef void *pt = _ptr(T)
    cdef double value
    cdef bint is32 = A.dtype == _FLOATS[0]
    with nogil:
        if is32:
            value = _loss(<float*>pa, <float*>pt, n, c, kind)
        else:
            value = _loss(<double*>pa, <double*>pt, n, c, kind)
    return value


def bias_grad(delta, out):
    """out = column sums of delta."""
    cdef cnp.ndarray D = _array("delta", delta, 2)
    cdef cnp.ndarray O = _array("out", out, 1, D.dtype, True)
    _shape("out", O, (D.shape[1],))
    cdef int64_t n = D.shape[0], c = D.shape[1]
    cdef void *pd = _ptr(D)
    cdef void *po = _ptr(O)
    cdef bint is32 = D.dtype == _FLOATS[0]
    with nogil:
        if is32:
            _bias_grad(<float*>pd, <float*>po, n, c)
        else:
            _bias_grad(<double*>pd, <double*>po, n, c)


def sgd_step_(param, grad, velocity, double learning_rate, double momentum):
    """velocity = momentum * velocity - lr * grad; param += velocity (velocity may be None
    when momentum is 0)."""
    cdef cnp.ndarray P = _array("param", param, None, None, True)
    cdef cnp.ndarray G = _array("grad", grad, None, P.dtype)
    _shape("grad", G, _dims(P))
    cdef cnp.ndarray V = None
    if momentum != 0.0:
        if velocity is None:
            raise ValueError("velocity is required when momentum is not 0")
        V = _array("velocity", velocity, None, P.dtype, True)
        _shape("velocity", V, _dims(P))
    cdef int64_t length = P.size
    cdef void *pp = _ptr(P)
    cdef void *pg = _ptr(G)
    cdef void *pv = _ptr(V) if V is not None else NULL
    cdef bint is32 = P.dtype == _FLOATS[0]
    with nogil:
        if is32:
            _sgd_step(<float*>pp, <float*>pg, <float*>pv, length, <float>learning_rate,
                      <float>momentum)
        else:
            _sgd_step(<double*>pp, <double*>pg, <double*>pv, length, learning_rate, momentum)


def gather_(X, y, index, x_out, t_out):
    """x_out = X[index]; t_out = one-hot of y[index] over t_out.shape[1] classes."""
    cdef cnp.ndarray XA = _array("X", X, 2)
    cdef cnp.ndarray Y = _array("y", y, 1, _INT64)
    cdef cnp.ndarray I = _array("index", index, 1, _INT64)
    cdef cnp.ndarray XO = _array("x_out", x_out, 2, XA.dtype, True)
    cdef cnp.ndarray TO = _array("t_out", t_out, 2, XA.dtype, True)
    cdef int64_t m = I.shape[0], f = XA.shape[1], c = TO.shape[1], n = XA.shape[0]
    if Y.shape[0] != n:
        raise ValueError(f"y has {Y.shape[0]} labels but X has {n} rows")
    _shape("x_out", XO, (m, f))
    _shape("t_out", TO, (m, c))
    cdef int64_t bad = _first_bad(<int64_t*>_ptr(I), m, n)
    if bad >= 0:
        raise ValueError(f"index[{bad}] = {I[bad]} is outside [0, {n})")
    bad = _first_bad(<int64_t*>_ptr(Y), n, c)
    if bad >= 0:
        raise ValueError(f"y[{bad}] = {Y[bad]} is outside [0, {c})")
    cdef void *px = _ptr(XA)
    cdef void *py = _ptr(Y)
    cdef void *pi = _ptr(I)
    cdef void *pxo = _ptr(XO)
    cdef void *pto = _ptr(TO)
    cdef bint is32 = XA.dtype == _FLOATS[0]
    with nogil:
        if is32:
            _gather(<float*>px, <int64_t*>py, <int64_t*>pi, m, f, c, <float*>pxo, <float*>pto)
        else:
            _gather(<double*>px, <int64_t*>py, <int64_t*>pi, m, f, c, <double*>pxo,
                    <double*>pto)


def alive_units(a):
    """uint8 per column: 1 where some row is > 0."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef int64_t n = A.shape[0], c = A.shape[1]
    cdef cnp.ndarray out = np.empty(c, dtype=np.uint8)
    cdef void *pa = _ptr(A)
    cdef uint8_t *po = <uint8_t*>_ptr(out)
    cdef bint is32 = A.dtype == _FLOATS[0]
    with nogil:
        if is32:
            eng_alive_units_f(<float*>pa, n, c, po)
        else:
            eng_alive_units_d(<double*>pa, n, c, po)
    return out


def saturated_count(a, str activation, double threshold=0.95):
    """Entries of a within 1 - threshold of the activation's bound."""
    cdef cnp.ndarray A = _array("a", a)
    cdef int act = _act(activation)
    cdef int64_t length = A.size, count
    cdef void *pa = _ptr(A)
    cdef bint is32 = A.dtype == _FLOATS[0]
    with nogil:
        if is32:
            count = eng_saturated_count_f(<float*>pa, length, act, <float>threshold)
        else:
            count = eng_saturated_count_d(<double*>pa, length, act, threshold)
    return count


def sq_norm(x):
    """Sum of squares of x (accumulated in double)."""
    cdef cnp.ndarray A = _array("x", x)
    cdef int64_t length = A.size
    cdef void *pa = _ptr(A)
    cdef double value
    cdef bint is32 = A.dtype == _FLOATS[0]
    with nogil:
        if is32:
            value = eng_sq_norm_f(<float*>pa, length)
        else:
            value = eng_sq_norm_d(<double*>pa, length)
    return value


# ---------------------------------------------------------------------- fused epoch
# Widest layer (units, inputs not counted) that EpochPlan(gemm="auto") still trains with its
# own tiles. Measured on 2 cores, float32: tiles ahead of BLAS at 256, 512 and 1024 units
# (0.70 vs 0.82, 1.54 vs 1.87, 3.85 vs 3.98 s/epoch), behind at 2048 (3.00 vs 2.73).
TILES_MAX_WIDTH = 1024


cdef class EpochPlan:
    """Pointers to a network's parameters and a workspace's buffers, gathered once.

    `run` then trains a whole epoch in C: per minibatch forward, loss, output delta,
    backward and the SGD update of every layer, with the GIL released and nothing
    allocated. Two ways to do it, chosen by `gemm`:

    - "tiles": csrc's own small-matrix GEMM (eng_fused_epoch), no BLAS; the minibatch
      is split between the epoch's threads (engine._native.set_epoch_threads), rows in
      the forward and backward pass, weight columns in the update, and each weight
      gradient is applied tile by tile as it is formed;
    - "blas": SciPy's BLAS for the products, with the update folded into the gradient
      GEMM (W += -lr * delta^T A, or the velocity with beta = momentum);
    - "auto" (default): tiles unless a layer has more than TILES_MAX_WIDTH units, where BLAS's
      packed, cache-blocked kernels win.

    The diagnostics (grad_norms) and the GEMM floor (gemm_only) always take the BLAS
    path. The arrays given here must stay where they are while the plan is used; the
    plan keeps references to them.
    """
    cdef int n_layers, is32, loss_kind, has_velocity
    cdef int64_t batch
    cdef int *sizes
    cdef int *acts
    cdef void **W
    cdef void **B
    cdef void **A
    cdef void **D
    cdef void **GB
    cdef void **GW
    cdef void **VW
    cdef void **VB
    cdef void *x
    cdef void *t
    cdef eng_epoch_plan fused
    cdef list _keep
    cdef readonly object dtype
    cdef readonly str gemm

    def __cinit__(self):
        self.sizes = NULL
        self.acts = NULL
        self.W = self.B = self.A = self.D = self.GB = self.GW = self.VW = self.VB = NULL
        self.fused.WT = self.fused.VT = NULL
        self.fused.rows = NULL
        self.fused.scratch = NULL
        self.fused.row_loss = NULL

    def __init__(self, weights, biases, acts, deltas, bias_grads, x, t, activations,
                 str loss, velocities=None, weight_grads=None, str gemm="auto"):
        cdef int L = len(weights), l
        if L < 1:
            raise ValueError("weights must hold at least one matrix")
        for name, seq in (("biases", biases), ("acts", acts), ("deltas", deltas),
                          ("bias_grads", bias_grads), ("activations", activations)):
            if len(seq) != L:
                raise ValueError(f"{name} must have {L} entries (one per layer); got {len(seq)}")
        cdef cnp.ndarray w0 = _array("weights[0]", weights[0], 2)
        self.dtype = w0.dtype
        self.is32 = self.dtype == _FLOATS[0]
        self.n_layers = L
        cdef cnp.ndarray X0 = _array("x", x, 2, self.dtype, True)
        self.batch = X0.shape[0]
        self.has_velocity = velocities is not None
        self.sizes = <int*>calloc(L + 1, sizeof(int))
        self.acts = <int*>calloc(L, sizeof(int))
        self.W = <void**>calloc(L, sizeof(void*))
        self.B = <void**>calloc(L, sizeof(void*))
        self.A = <void**>calloc(L, sizeof(void*))
        self.D = <void**>calloc(L, sizeof(void*))
        self.GB = <void**>calloc(L, sizeof(void*))
        self.GW = <void**>calloc(L, sizeof(void*))
        self.VW = <void**>calloc(L, sizeof(void*))
        self.VB = <void**>calloc(L, sizeof(void*))
        if (self.sizes == NULL or self.acts == NULL or self.W == NULL or self.B == NULL or
                self.A == NULL or self.D == NULL or self.GB == NULL or self.GW == NULL or
                self.VW == NULL or
                self.VB == NULL):
            raise MemoryError()
        self.sizes[0] = w0.shape[1]
        self._keep = [x, t]
        cdef cnp.ndarray arr
        for l in range(L):
            arr = _array(f"weights[{l}]", weights[l], 2, self.dtype, True)
            if arr.shape[1] != self.sizes[l]:
                raise ValueError(f"weights[{l}] has {arr.shape[1]} inputs but the previous "
                                 f"layer has {self.sizes[l]} outputs")
            self.sizes[l + 1] = arr.shape[0]
            self.W[l] = _ptr(arr)
            out = (self.sizes[l + 1],)
            self.B[l] = _ptr(_checked(f"biases[{l}]", biases[l], self.dtype, out, self._keep))
            self.GB[l] = _ptr(_checked(f"bias_grads[{l}]", bias_grads[l], self.dtype, out,
                                       self._keep))
            rows = (self.batch, self.sizes[l + 1])
            self.A[l] = _ptr(_checked(f"acts[{l}]", acts[l], self.dtype, rows, self._keep))
            self.D[l] = _ptr(_checked(f"deltas[{l}]", deltas[l], self.dtype, rows, self._keep))
            self.acts[l] = _act(activations[l], l == L - 1)
            self._keep.append(arr)
            if weight_grads is not None:
                self.GW[l] = _ptr(_checked(f"weight_grads[{l}]", weight_grads[l], self.dtype,
                                           _dims(arr), self._keep))
            if self.has_velocity:
                self.VW[l] = _ptr(_checked(f"velocities[{l}]", velocities[l], self.dtype,
                                           _dims(arr), self._keep))
                self.VB[l] = _ptr(_checked(f"velocities[{L + l}]", velocities[L + l],
                                           self.dtype, out, self._keep))
        _shape("x", X0, (self.batch, self.sizes[0]))
        self.x = _ptr(X0)
        self.t = _ptr(_checked("t", t, self.dtype, (self.batch, self.sizes[L]), self._keep))
        self.loss_kind = _pair(activations[L - 1], loss)
        gemm = "tiles" if tiles_chosen([self.sizes[l] for l in range(L + 1)], gemm) else "blas"
        if gemm == "tiles" and L > ENG_MAX_LAYERS:
            raise ValueError(f"the tiled epoch takes at most {ENG_MAX_LAYERS} layers; got {L} "
                             f"(use gemm='blas')")
        self.gemm = gemm
        if gemm == "tiles":
            self._init_tiles(weights, velocities)

    cdef _init_tiles(self, weights, velocities):
        cdef int L = self.n_layers, l
        cdef eng_epoch_plan *f = &self.fused
        f.WT = <void**>calloc(L, sizeof(void*))
        if f.WT == NULL:
            raise MemoryError()
        if self.has_velocity:
            f.VT = <void**>calloc(L, sizeof(void*))
            if f.VT == NULL:
                raise MemoryError()
        for l in range(L):
            wt = np.zeros(eng_epoch_panel_elements(self.sizes[l + 1], self.sizes[l],
                                                   self.dtype.itemsize), dtype=self.dtype)
            self._keep.append(wt)
            f.WT[l] = _ptr(wt)
            if self.has_velocity:
                vt = np.zeros_like(wt)
                self._keep.append(vt)
                f.VT[l] = _ptr(vt)
        f.n_layers = L
        f.batch = self.batch
        f.sizes = self.sizes
        f.acts = self.acts
        f.loss_kind = self.loss_kind
        f.W, f.B, f.A, f.D, f.GB = self.W, self.B, self.A, self.D, self.GB
        f.VW = self.VW if self.has_velocity else NULL
        f.VB = self.VB if self.has_velocity else NULL
        f.threads = max(eng_get_epoch_threads(), 1)
        f.scratch_per_thread = eng_epoch_scratch_bytes(L, self.batch, self.sizes)
        f.rows = <void**>calloc(eng_epoch_row_count(L, self.batch), sizeof(void*))
        f.row_loss = <double*>calloc(self.batch, sizeof(double))
        f.scratch = calloc(f.threads, f.scratch_per_thread)
        if f.rows == NULL or f.row_loss == NULL or f.scratch == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.fused.rows)
        free(self.fused.row_loss)
        free(self.fused.scratch)
        free(self.fused.WT)
        free(self.fused.VT)
        free(self.sizes)
        free(self.acts)
        free(self.W)
        free(self.B)
        free(self.A)
        free(self.D)
        free(self.GB)
        free(self.GW)
        free(self.VW)
        free(self.VB)

    def run(self, X, y, order, double learning_rate, double momentum, batch_losses,
            bint gemm_only=False, grad_norms=None):
        """Train one epoch over X[order] (minibatches of the plan's batch size, the last
        one possibly shorter); batch_losses[i] receives minibatch i's loss before its update.

        gemm_only=True makes exactly the same BLAS calls and nothing else: the floor that
        the benchmarks compare a real epoch with (the results are then meaningless).
        grad_norms (float64, one per layer): each minibatch's |dL/dW| is added to it; the
        gradient is then formed in weight_grads before the update instead of being folded
        into it (the plan must have been built with weight_grads)."""
        cdef cnp.ndarray XA = _array("X", X, 2, self.dtype)
        cdef cnp.ndarray Y = _array("y", y, 1, _INT64)
        cdef cnp.ndarray O = _array("order", order, 1, _INT64)
        cdef cnp.ndarray BL = _array("batch_losses", batch_losses, 1, np.dtype(np.float64), True)
        cdef int64_t n = XA.shape[0], count = O.shape[0]
        cdef int64_t n_batches = (count + self.batch - 1) // self.batch
        if XA.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have {self.sizes[0]} columns; got shape {_dims(XA)}")
        if Y.shape[0] != n:
            raise ValueError(f"y has {Y.shape[0]} labels but X has {n} rows")
        if BL.shape[0] < n_batches:
            raise ValueError(f"batch_losses needs {n_batches} entries; got {BL.shape[0]}")
        if momentum != 0.0 and not self.has_velocity:
            raise ValueError("momentum is not 0 but the plan was built without velocities")
        cdef double *pg = NULL
        cdef cnp.ndarray GN
        if grad_norms is not None:
            GN = _array("grad_norms", grad_norms, 1, np.dtype(np.float64), True)
            _shape("grad_norms", GN, (self.n_layers,))
            if self.GW[0] == NULL:
                raise ValueError("grad_norms needs a plan built with weight_grads")
            pg = <double*>_ptr(GN)
        cdef int64_t bad = _first_bad(<int64_t*>_ptr(O), count, n)
        if bad >= 0:
            raise ValueError(f"order[{bad}] = {O[bad]} is outside [0, {n})")
        bad = _first_bad(<int64_t*>_ptr(Y), n, self.sizes[self.n_layers])
        if bad >= 0:
            raise ValueError(f"y[{bad}] = {Y[bad]} is outside [0, {self.sizes[self.n_layers]})")
        cdef void *px = _ptr(XA)
        cdef int64_t *py = <int64_t*>_ptr(Y)
        cdef int64_t *po = <int64_t*>_ptr(O)
        cdef double *pl = <double*>_ptr(BL)
        if self.gemm == "tiles" and not gemm_only and pg == NULL:
            with nogil:
                if self.is32:
                    eng_fused_epoch_f(&self.fused, <float*>px, py, po, count,
                                      <float>learning_rate, <float>momentum, pl)
                else:
                    eng_fused_epoch_d(&self.fused, <double*>px, py, po, count, learning_rate,
                                      momentum, pl)
            return n_batches
        with nogil:
            if self.is32:
                _run_epoch(self, <float*>px, py, po, count, <float>learning_rate,
                           <float>momentum, pl, gemm_only, pg)
            else:
                _run_epoch(self, <double*>px, py, po, count, learning_rate, momentum, pl,
                           gemm_only, pg)
        return n_batches


def tiled_forward(weights, biases, activations, x, outs):
    """outs[l][:] = layer l's output for the rows x, by the fused epoch's GEMM tiles on its
    threads (the whole pass in C; no BLAS). weights[l]: (n_out, n_in); outs[l]: (n, n_out)."""
    cdef int L = len(weights), l
    if L < 1 or L > ENG_MAX_LAYERS:
        raise ValueError(f"weights must hold 1 to {ENG_MAX_LAYERS} matrices; got {L}")
    for name, seq in (("biases", biases), ("activations", activations), ("outs", outs)):
        if len(seq) != L:
            raise ValueError(f"{name} must have {L} entries (one per layer); got {len(seq)}")
    cdef cnp.ndarray X = _array("x", x, 2)
    dtype = X.dtype
    cdef int64_t n = X.shape[0]
    keep = [X]
    sizes = np.empty(L + 1, dtype=np.intc)
    codes = np.empty(L, dtype=np.intc)
    ptrs = np.empty(3 * L, dtype=np.uintp)
    sizes[0] = X.shape[1]
    for l in range(L):
        w = _array(f"weights[{l}]", weights[l], 2, dtype)
        if w.shape[1] != sizes[l]:
            raise ValueError(f"weights[{l}] has {w.shape[1]} inputs but the previous layer has "
                             f"{sizes[l]} outputs")
        sizes[l + 1] = w.shape[0]
        b = _checked(f"biases[{l}]", biases[l], dtype, (w.shape[0],), keep)
        o = _checked(f"outs[{l}]", outs[l], dtype, (n, w.shape[0]), keep)
        codes[l] = _act(activations[l], l == L - 1)
        keep.append(w)
        ptrs[l], ptrs[L + l], ptrs[2 * L + l] = (<size_t>_ptr(w), <size_t>_ptr(b),
                                                 <size_t>_ptr(o))
    cdef int *ps = <int*>_ptr(sizes)
    cdef int *pc = <int*>_ptr(codes)
    cdef void **pp = <void**>_ptr(ptrs)
    cdef void *px = _ptr(X)
    cdef int rc
    cdef bint is32 = dtype == _FLOATS[0]
    with nogil:
        if is32:
            rc = eng_tiled_forward_f(L, ps, pc, <const float**>pp, <const float**>(pp + L),
                                     <float*>px, n, <float**>(pp + 2 * L))
        else:
            rc = eng_tiled_forward_d(L, ps, pc, <const double**>pp, <const double**>(pp + L),
                                     <double*>px, n, <double**>(pp + 2 * L))
    if rc != 0:
        raise MemoryError("tiled_forward: out of memory")


def tiles_chosen(sizes, str gemm="auto"):
    """Whether a network of these widths trains and predicts with the tiles under `gemm`."""
    if gemm not in ("auto", "tiles", "blas"):
        raise ValueError(f"gemm must be 'auto', 'tiles' or 'blas'; got {gemm!r}")
    if gemm == "auto":
        return len(sizes) - 1 <= ENG_MAX_LAYERS and max(sizes[1:]) <= TILES_MAX_WIDTH
    return gemm == "tiles"


cdef cnp.ndarray _checked(str name, object x, object dtype, tuple shape, list keep):
    cdef cnp.ndarray arr = _array(name, x, len(shape), dtype, True)
    _shape(name, arr, shape)
    keep.append(arr)
    return arr


cdef void _run_epoch(EpochPlan p, const real *X, const int64_t *y, const int64_t *order,
                     int64_t count, real lr, real mom, double *losses,
                     bint gemm_only, double *grad_norms) noexcept nogil:
    cdef int L = p.n_layers, l, m
    cdef int *s = p.sizes
    cdef int64_t start, i = 0
    cdef real *x = <real*>p.x
    cdef real *t = <real*>p.t
    cdef real **W = <real**>p.W
    cdef real **B = <real**>p.B
    cdef real **A = <real**>p.A
    cdef real **D = <real**>p.D
    cdef real **GB = <real**>p.GB
    cdef real **GW = <real**>p.GW
    cdef real **VW = <real**>p.VW
    cdef real **VB = <real**>p.VB
    cdef const real *inp
    start = 0
    while start < count:
        m = <int>min(p.batch, count - start)
        if not gemm_only:
            _gather(X, y, order + start, m, s[0], s[L], x, t)
            if start + m < count:     # the next rows load while BLAS computes this minibatch
                _prefetch(X, order + start + m, <int>min(p.batch, count - start - m), s[0])
        # forward: A[l] = act(inp @ W[l]^T + B[l])
        inp = x
        for l in range(L):
            gemm_rm(False, True, m, s[l + 1], s[l], <real>1, inp, s[l], W[l], s[l],
                    <real>0, A[l], s[l + 1])
            if not gemm_only:
                _bias_act(A[l], B[l], m, s[l + 1], p.acts[l])
            inp = A[l]
        if not gemm_only:
            losses[i] = _loss(A[L - 1], t, m, s[L], p.loss_kind)
            _output_delta(A[L - 1], t, D[L - 1], m, s[L], p.loss_kind)
        # backward, updating each layer once the delta below it has used its weights
        for l in range(L - 1, -1, -1):
            inp = x if l == 0 else A[l - 1]
            if l > 0:
                gemm_rm(False, False, m, s[l], s[l + 1], <real>1, D[l], s[l + 1], W[l], s[l],
                        <real>0, D[l - 1], s[l])
                if not gemm_only:
                    _act_backward(D[l - 1], A[l - 1], <int64_t>m * s[l], p.acts[l - 1])
            if not gemm_only:
                _bias_grad(D[l], GB[l], m, s[l + 1])
            if grad_norms != NULL:
                # diagnostics: form the gradient, measure it, then apply it
                gemm_rm(True, False, s[l + 1], s[l], m, <real>1, D[l], s[l + 1], inp, s[l],
                        <real>0, GW[l], s[l])
                grad_norms[l] += sqrt(_sq_norm(GW[l], <int64_t>s[l + 1] * s[l]))
                _sgd_step(W[l], GW[l], VW[l] if p.has_velocity else NULL,
                          <int64_t>s[l + 1] * s[l], lr, mom)
                _sgd_step(B[l], GB[l], VB[l] if p.has_velocity else NULL, s[l + 1], lr, mom)
            elif p.has_velocity:
                # VW = mom * VW - lr * D^T inp; W += VW
                gemm_rm(True, False, s[l + 1], s[l], m, -lr, D[l], s[l + 1], inp, s[l],
                        mom, VW[l], s[l])
                if not gemm_only:
                    _axpy(W[l], VW[l], <int64_t>s[l + 1] * s[l], <real>1)
                    _sgd_step(B[l], GB[l], VB[l], s[l + 1], lr, mom)
            else:
                # W -= lr * D^T inp, straight into the weights
                gemm_rm(True, False, s[l + 1], s[l], m, -lr, D[l], s[l + 1], inp, s[l],
                        <real>1, W[l], s[l])
                if not gemm_only:
                    _axpy(B[l], GB[l], s[l + 1], -lr)
        start += m
        i += 1


# ---------------------------------------------------------------------------- build
def build_info():
    """How this extension was built and how it will run."""
    return {
        "openmp": bool(eng_have_openmp()),
        "openmp_threads": eng_get_num_threads(),
        "epoch_threads": eng_get_epoch_threads(),
        "tiles_max_width": TILES_MAX_WIDTH,
        "parallel_threshold_elements": eng_parallel_threshold(),
        "simd": eng_simd_variant().decode(),
        "compile_args": ENGINE_COMPILE_ARGS,
        "debug_build": bool(ENGINE_DEBUG_BUILD),
        "blas": "scipy.linalg.cython_blas (SciPy's BLAS; see `info` thread pools)",
    }


def set_epoch_threads(int n):
    """Threads of the tiled fused epoch (default: OpenMP's, i.e. the cores or
    OMP_NUM_THREADS). Plans made before keep the scratch room they were made with."""
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    eng_set_epoch_threads(n)


def get_epoch_threads():
    return eng_get_epoch_threads()


def set_num_threads(int n):
    """Threads the kernels' OpenMP loops may use (no effect without OpenMP)."""
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    eng_set_num_threads(n)


def force_baseline_simd(bint on):
    """Run the baseline (non-AVX2) workers even on an AVX2 CPU; for testing both variants."""
    eng_force_baseline(on)


def get_num_threads():
    return eng_get_num_threads()
