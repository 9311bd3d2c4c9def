# Argument checks, run with the GIL before any kernel: each raises a ValueError/TypeError
# that names the argument and says what was expected. And the one dtype dispatch: the
# kernel table (csrc/kernels.h) of an array's dtype.

# the activations' and output/loss pairs' codes: engine/ops.py's tables (tests hold them
# equal to csrc/ops.h's and to the loss kinds below)
from engine.ops import CODES as _CODES, HIDDEN as _HIDDEN, KEEPS_SLOPE as _KEEPS_SLOPE
from engine.ops import PAIRS as _PAIRS
ACTIVATIONS = dict(_CODES)
OUTPUT_LOSS = {pair: p.code for pair, p in _PAIRS.items()}
# csrc/kernels.h's loss kinds by their C names
C_LOSS_KINDS = {"SIGMOID_MSE": ENG_SIGMOID_MSE, "SOFTMAX_CE": ENG_SOFTMAX_CE,
                "IDENTITY_MSE": ENG_IDENTITY_MSE, "SIGMOID_BCE": ENG_SIGMOID_BCE,
                "EXP_POISSON": ENG_EXP_POISSON, "IDENTITY_HALF_MSE": ENG_IDENTITY_HALF_MSE}
# activations that only an output layer may use: they act on whole rows, or exist for a loss
_OUTPUT_ONLY = tuple(code for name, code in _CODES.items() if name not in _HIDDEN)
OPTIMIZER_KINDS = {"sgd": ENG_SGD, "momentum": ENG_MOMENTUM, "nesterov": ENG_NESTEROV,
                   "adam": ENG_ADAM}
_STATE_ARRAYS = {ENG_SGD: 0, ENG_MOMENTUM: 1, ENG_NESTEROV: 1, ENG_ADAM: 2}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INT64 = np.dtype(np.int64)


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
    if not x.flags.aligned:
        raise ValueError(f"{name} must be aligned to its {x.dtype.itemsize}-byte elements "
                         f"(np.frombuffer at an odd offset is not); pass a copy")
    if writable and not x.flags.writeable:
        raise ValueError(f"{name} is read-only but is written to")
    return x


cdef cnp.ndarray _checked(str name, object x, object dtype, tuple shape, list keep):
    """A writable array of exactly this shape and dtype, kept alive by `keep`."""
    cdef cnp.ndarray arr = _array(name, x, len(shape), dtype, True)
    _shape(name, arr, shape)
    keep.append(arr)
    return arr


cdef _no_overlap(list outputs, list inputs):
    """ValueError when an output (name, array) shares memory with another output or with an
    input: it would be read after it is overwritten. Inputs may share with each other."""
    cdef int i
    for i, (name, out) in enumerate(outputs):
        for other, arr in outputs[i + 1:] + inputs:
            if np.shares_memory(out, arr):
                raise ValueError(f"{name} and {other} share memory; this kernel writes {name} "
                                 f"while it reads {other}: pass a copy")


cdef tuple _dims(object x):
    return x.shape


cdef _shape(str name, object x, tuple expected):
    if x.shape != expected:
        raise ValueError(f"{name} must have shape {expected}; got {x.shape}")


cdef int _act(str activation, bint allow_softmax=True) except -1:
    code = ACTIVATIONS.get(activation)
    if code is None or (code in _OUTPUT_ONLY and not allow_softmax):
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    return code


cdef void *_slope_ptr(object slopes, int l, int L, str activation, object dtype, tuple shape,
                      list keep) except *:
    """Where hidden layer l keeps its slopes (an activation of engine/ops.py KEEPS_SLOPE:
    slopes[l], an array of its outputs' shape), or NULL for any other layer."""
    if l == L - 1 or activation not in _KEEPS_SLOPE:
        return NULL
    if slopes is None or slopes[l] is None:
        raise ValueError(f"activations[{l}] = {activation!r} keeps its slope for the backward "
                         f"pass: slopes[{l}] must be an array of shape {shape}")
    return _ptr(_checked(f"slopes[{l}]", slopes[l], dtype, shape, keep))


cdef int _pair(str output, str loss) except -1:
    code = OUTPUT_LOSS.get((output, loss))
    if code is None:
        raise ValueError(f"no kernel for output {output!r} with loss {loss!r}; "
                         f"supported: {sorted(OUTPUT_LOSS)}")
    return code


cdef int64_t _first_bad(const int64_t *v, int64_t length, int64_t upper) noexcept nogil:
    """The position of the first entry outside [0, upper), or -1."""
    cdef int64_t i
    for i in range(length):
        if v[i] < 0 or v[i] >= upper:
            return i
    return -1


cdef inline void *_ptr(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


cdef inline const eng_kernel_table *_table(cnp.ndarray a) noexcept:
    """The kernels for a's dtype (already checked to be float32 or float64)."""
    return &eng_kernels_f if cnp.PyArray_ITEMSIZE(a) == 4 else &eng_kernels_d


cdef eng_rule _rule(object rule) except *:
    """The C rule of an optimizer step: `rule` has kind ("sgd", "momentum", "nesterov",
    "adam"), learning_rate, momentum, beta_1, beta_2, epsilon and t (the steps taken, this
    one included; a fused epoch: the steps before it), as engine.optimizers.StepRule."""
    cdef eng_rule r
    kind = OPTIMIZER_KINDS.get(getattr(rule, "kind", None))
    if kind is None:
        raise ValueError(f"rule.kind must be one of {sorted(OPTIMIZER_KINDS)}; "
                         f"got {getattr(rule, 'kind', rule)!r}")
    r.kind = kind
    r.lr = rule.learning_rate
    r.momentum = rule.momentum
    r.beta1 = rule.beta_1
    r.beta2 = rule.beta_2
    r.eps = rule.epsilon
    r.t = rule.t
    if r.t < 0:
        raise ValueError(f"rule.t (steps taken) must be >= 0; got {r.t}")
    return r


cdef cnp.ndarray _targets(str name, object y, int64_t n, int64_t c, object dtype):
    """Training targets: int64 labels (n,) each in [0, c), or target rows (n, c) of the
    model's dtype; returned checked."""
    cdef cnp.ndarray Y
    cdef int64_t bad
    if isinstance(y, np.ndarray) and y.ndim == 2:
        Y = _array(name, y, 2, dtype)
        _shape(name, Y, (n, c))
        return Y
    Y = _array(name, y, 1, _INT64)
    if Y.shape[0] != n:
        raise ValueError(f"{name} has {Y.shape[0]} labels but X has {n} rows")
    bad = _first_bad(<int64_t*>_ptr(Y), n, c)
    if bad >= 0:
        raise ValueError(f"{name}[{bad}] = {Y[bad]} is outside [0, {c})")
    return Y


cdef cnp.ndarray _weights(str name, object w, int64_t n, object dtype):
    """Per-row sample weights (n,) of the model's dtype, or None."""
    if w is None:
        return None
    cdef cnp.ndarray W = _array(name, w, 1, dtype)
    _shape(name, W, (n,))
    return W
