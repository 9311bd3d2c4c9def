# The Python-visible kernels: check the arguments (checks.pxi), pick the dtype's kernel
# table, release the GIL, call it.


def gemm(a, b, out, bint trans_a=False, bint trans_b=False, double alpha=1.0,
         double beta=0.0):
    """out = alpha * op(a) @ op(b) + beta * out through BLAS (row-major arrays)."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef cnp.ndarray B = _array("b", b, 2, A.dtype)
    cdef cnp.ndarray C = _array("out", out, 2, A.dtype, True)
    for name, arr in (("a", a), ("b", b), ("out", out)):
        if max(arr.shape) >= 2 ** 31:      # BLAS takes 32-bit dimensions
            raise ValueError(f"gemm: {name} has a dimension of 2**31 or more {arr.shape}; "
                             f"BLAS takes 32-bit sizes")
    if np.shares_memory(C, A) or np.shares_memory(C, B):
        raise ValueError("gemm: out shares memory with a or b; BLAS would read what it "
                         "writes. Pass a separate out array")
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


def bias_act_(z, bias, str activation, slope=None):
    """z = activation(z + bias) in place; for the activations that keep their slope
    (engine/ops.py KEEPS_SLOPE), slope (z's shape) receives activation'(z + bias) where
    given."""
    cdef cnp.ndarray Z = _array("z", z, 2, None, True)
    cdef cnp.ndarray b = _array("bias", bias, 1, Z.dtype)
    _shape("bias", b, (Z.shape[1],))
    cdef int act = _act(activation)
    cdef void *ps = NULL
    if slope is not None:
        S = _array("slope", slope, 2, Z.dtype, True)
        _shape("slope", S, _dims(Z))
        ps = _ptr(S)
    cdef int64_t n = Z.shape[0], c = Z.shape[1]
    if act == ENG_SOFTMAX and c == 0 and n > 0:
        raise ValueError(f"z has shape {(<object>Z).shape}: a softmax needs at least one column")
    cdef void *pz = _ptr(Z)
    cdef void *pb = _ptr(b)
    cdef const eng_kernel_table *k = _table(Z)
    with nogil:
        k.bias_act(pz, pb, n, c, act, ps)


def act_backward_(delta, a, str activation):
    """delta *= activation'(z), computed from the output a = activation(z) (for the
    activations that keep their slope, a is that slope)."""
    cdef cnp.ndarray D = _array("delta", delta, None, None, True)
    cdef cnp.ndarray A = _array("a", a, None, D.dtype)
    _shape("a", A, _dims(D))
    cdef int act = _act(activation, False)
    cdef int64_t length = D.size
    cdef void *pd = _ptr(D)
    cdef void *pa = _ptr(A)
    cdef const eng_kernel_table *k = _table(D)
    with nogil:
        k.act_backward(pd, pa, length, act)


def softmax_(z):
    """Row-wise softmax of a 2-D array in place."""
    cdef cnp.ndarray Z = _array("z", z, 2, None, True)
    cdef int64_t n = Z.shape[0], c = Z.shape[1]
    if c == 0 and n > 0:
        raise ValueError(f"z has shape {(<object>Z).shape}: a softmax needs at least one column")
    cdef void *pz = _ptr(Z)
    cdef const eng_kernel_table *k = _table(Z)
    with nogil:
        k.softmax_rows(pz, n, c)


def output_delta(a, t, out, str output, str loss, weights=None):
    """out = dL/dz of the output layer; weights: per-row sample weights, or None."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef cnp.ndarray T = _array("t", t, 2, A.dtype)
    cdef cnp.ndarray O = _array("out", out, 2, A.dtype, True)
    _shape("t", T, _dims(A))
    _shape("out", O, _dims(A))
    cdef int kind = _pair(output, loss)
    cdef int64_t n = A.shape[0], c = A.shape[1]
    cdef cnp.ndarray W = _weights("weights", weights, n, A.dtype)
    cdef void *pa = _ptr(A)
    cdef void *pt = _ptr(T)
    cdef void *po = _ptr(O)
    cdef void *pw = _ptr(W) if W is not None else NULL
    cdef const eng_kernel_table *k = _table(A)
    with nogil:
        k.output_delta(pa, pt, po, n, c, kind, pw)


def loss(a, t, str output, str loss, weights=None):
    """The loss value of output activations a against targets t (one-hot for labels); with
    per-row sample weights, their weighted mean."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef cnp.ndarray T = _array("t", t, 2, A.dtype)
    _shape("t", T, _dims(A))
    cdef int kind = _pair(output, loss)
    cdef int64_t n = A.shape[0], c = A.shape[1]
    if n == 0:
        raise ValueError("a is empty: the loss of 0 rows is undefined")
    cdef cnp.ndarray W = _weights("weights", weights, n, A.dtype)
    cdef void *pa = _ptr(A)
    cdef void *pt = _ptr(T)
    cdef void *pw = _ptr(W) if W is not None else NULL
    cdef double value
    cdef const eng_kernel_table *k = _table(A)
    with nogil:
        value = k.loss(pa, pt, n, c, kind, pw)
    return value


def bias_grad(delta, out):
    """out = column sums of delta."""
    cdef cnp.ndarray D = _array("delta", delta, 2)
    cdef cnp.ndarray O = _array("out", out, 1, D.dtype, True)
    _shape("out", O, (D.shape[1],))
    cdef int64_t n = D.shape[0], c = D.shape[1]
    cdef void *pd = _ptr(D)
    cdef void *po = _ptr(O)
    cdef const eng_kernel_table *k = _table(D)
    with nogil:
        k.bias_grad(pd, po, n, c)


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
    cdef const eng_kernel_table *k = _table(P)
    with nogil:
        k.sgd_step(pp, pg, pv, length, learning_rate, momentum)


def optimizer_step_(param, grad, state, rule, double l2=0.0):
    """One optimizer step of param in place (csrc/kernels.h writes out each rule), with the
    gradient grad + l2 * param; state: the rule's state arrays (none for plain SGD, the
    velocity for momentum and Nesterov, Adam's first and second moments), updated in place.
    rule: an engine.optimizers.StepRule (t: the steps taken, this one included)."""
    cdef cnp.ndarray P = _array("param", param, None, None, True)
    cdef cnp.ndarray G = _array("grad", grad, None, P.dtype)
    _shape("grad", G, _dims(P))
    cdef eng_rule r = _rule(rule)
    state = () if state is None else tuple(state)
    cdef int needed = _STATE_ARRAYS[r.kind]
    if len(state) < needed:
        raise ValueError(f"a {rule.kind} step needs {needed} state array(s); got {len(state)}")
    cdef void *ps[2]
    ps[0] = ps[1] = NULL
    named = [("param", P)]
    for i in range(needed):
        arr = _array(f"state[{i}]", state[i], None, P.dtype, True)
        _shape(f"state[{i}]", arr, _dims(P))
        ps[i] = _ptr(arr)
        named.append((f"state[{i}]", arr))
    _no_overlap(named, [("grad", G)])
    cdef int64_t length = P.size
    cdef void *pp = _ptr(P)
    cdef void *pg = _ptr(G)
    cdef const eng_kernel_table *k = _table(P)
    with nogil:
        k.optimizer_step(pp, pg, ps[0], ps[1], length, &r, l2)


def step_size(rule):
    """The size of the step a rule takes: lr, or Adam's lr * sqrt(1 - b2^t) / (1 - b1^t)."""
    cdef eng_rule r = _rule(rule)
    return eng_rule_step_size(&r)


def gather_(X, y, index, x_out, t_out):
    """x_out = X[index]; t_out = one-hot of y[index] over t_out.shape[1] classes when y
    holds int64 labels, t_out = y[index] when y holds target rows (2-D, X's dtype); x_out
    None: the targets only."""
    cdef cnp.ndarray XA = _array("X", X, 2)
    cdef cnp.ndarray I = _array("index", index, 1, _INT64)
    cdef cnp.ndarray TO = _array("t_out", t_out, 2, XA.dtype, True)
    cdef cnp.ndarray XO = TO if x_out is None else _array("x_out", x_out, 2, XA.dtype, True)
    cdef int64_t m = I.shape[0], f = 0 if x_out is None else XA.shape[1], c = TO.shape[1]
    cdef int64_t n = XA.shape[0]
    cdef cnp.ndarray Y = _targets("y", y, n, c, XA.dtype)
    outputs = [("t_out", TO)]
    if x_out is not None:
        _shape("x_out", XO, (m, f))
        outputs.insert(0, ("x_out", XO))
    _shape("t_out", TO, (m, c))
    _no_overlap(outputs, [("X", XA), ("y", Y), ("index", I)])
    cdef int64_t bad = _first_bad(<int64_t*>_ptr(I), m, n)
    if bad >= 0:
        raise ValueError(f"index[{bad}] = {I[bad]} is outside [0, {n})")
    cdef void *px = _ptr(XA)
    cdef void *py = _ptr(Y)
    cdef int64_t *pi = <int64_t*>_ptr(I)
    cdef void *pxo = _ptr(XO)
    cdef void *pto = _ptr(TO)
    cdef bint rows = Y.ndim == 2
    cdef const eng_kernel_table *k = _table(XA)
    with nogil:
        if rows:
            k.gather_rows(px, py, pi, m, f, c, pxo, pto)
        else:
            k.gather(px, <int64_t*>py, pi, m, f, c, pxo, pto)


def dropout_key(epoch_key, int64_t minibatch):
    """The key of minibatch `minibatch`'s dropout masks, from the epoch's (a uint64)."""
    return eng_dropout_key(<uint64_t>epoch_key, minibatch)


cdef _check_rate(double rate):
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1); got {rate}")


def dropout_(a, double rate, key, int layer, int64_t row0=0):
    """Inverted dropout of hidden layer `layer`'s outputs a (rows row0, row0 + 1, ... of a
    minibatch whose mask key is `key`) in place: kept units times 1 / (1 - rate)."""
    cdef cnp.ndarray A = _array("a", a, 2, None, True)
    _check_rate(rate)
    cdef uint32_t k32 = <uint32_t>key
    cdef int64_t n = A.shape[0], c = A.shape[1]
    cdef void *pa = _ptr(A)
    cdef const eng_kernel_table *k = _table(A)
    with nogil:
        k.dropout(pa, n, c, row0, k32, layer, rate)


def dropout_backward_(delta, a, str activation, double rate, key, int layer, int64_t row0=0):
    """delta = dL/dz of a hidden layer with dropout, from dL/d(its dropped outputs a) (for
    the activations that keep their slope, a is that slope)."""
    cdef cnp.ndarray D = _array("delta", delta, 2, None, True)
    cdef cnp.ndarray A = _array("a", a, 2, D.dtype)
    _shape("a", A, _dims(D))
    _check_rate(rate)
    cdef int act = _act(activation, False)
    cdef uint32_t k32 = <uint32_t>key
    cdef int64_t n = D.shape[0], c = D.shape[1]
    cdef void *pd = _ptr(D)
    cdef void *pa = _ptr(A)
    cdef const eng_kernel_table *k = _table(D)
    with nogil:
        k.dropout_backward(pd, pa, n, c, row0, k32, layer, rate, act)


def alive_units(a):
    """uint8 per column: 1 where some row is > 0."""
    cdef cnp.ndarray A = _array("a", a, 2)
    cdef int64_t n = A.shape[0], c = A.shape[1]
    cdef cnp.ndarray out = np.empty(c, dtype=np.uint8)
    cdef void *pa = _ptr(A)
    cdef uint8_t *po = <uint8_t*>_ptr(out)
    cdef const eng_kernel_table *k = _table(A)
    with nogil:
        k.alive_units(pa, n, c, po)
    return out


def saturated_count(a, str activation, double threshold=0.95):
    """Entries of a within 1 - threshold of the activation's bound."""
    cdef cnp.ndarray A = _array("a", a)
    cdef int act = _act(activation)
    cdef int64_t length = A.size, count
    cdef void *pa = _ptr(A)
    cdef const eng_kernel_table *k = _table(A)
    with nogil:
        count = k.saturated_count(pa, length, act, threshold)
    return count


def sq_norm(x):
    """Sum of squares of x (accumulated in double)."""
    cdef cnp.ndarray A = _array("x", x)
    cdef int64_t length = A.size
    cdef void *pa = _ptr(A)
    cdef double value
    cdef const eng_kernel_table *k = _table(A)
    with nogil:
        value = k.sq_norm(pa, length)
    return value


def tiled_forward(weights, biases, activations, x, outs, bf16=False):
    """outs[l][:] = layer l's output for the rows x, by the fused epoch's GEMM tiles on its
    threads (the whole pass in C; no BLAS). weights[l]: (n_out, n_in); outs[l]: (n, n_out).
    bf16 (float32 only): the products read W, x and each layer's input rounded to bfloat16
    (the outputs stay float32), as the tiles' bf16-mixed epoch does."""
    cdef int L = len(weights), l
    if L < 1 or L > ENG_MAX_LAYERS:
        raise ValueError(f"weights must hold 1 to {ENG_MAX_LAYERS} matrices; got {L}")
    for name, seq in (("biases", biases), ("activations", activations), ("outs", outs)):
        if len(seq) != L:
            raise ValueError(f"{name} must have {L} entries (one per layer); got {len(seq)}")
    cdef cnp.ndarray X = _array("x", x, 2)
    dtype = X.dtype
    if bf16 and dtype != _F32:
        raise ValueError(f"tiled_forward: bf16 needs float32 arrays; got {dtype}")
    cdef int64_t n = X.shape[0]
    cdef int rounded = 1 if bf16 else 0
    keep = [X]
    sizes = np.empty(L + 1, dtype=np.intc)
    codes = np.empty(L, dtype=np.intc)
    ptrs = np.empty(3 * L, dtype=np.uintp)
    sizes[0] = X.shape[1]
    outputs, inputs = [], [("x", X)]
    for l in range(L):
        w = _array(f"weights[{l}]", weights[l], 2, dtype)
        if w.shape[1] != sizes[l]:
            raise ValueError(f"weights[{l}] has {w.shape[1]} inputs but the previous layer has "
                             f"{sizes[l]} outputs")
        if w.shape[0] == 0:
            raise ValueError(f"weights[{l}] has 0 outputs: every layer needs at least one unit")
        sizes[l + 1] = w.shape[0]
        b = _checked(f"biases[{l}]", biases[l], dtype, (w.shape[0],), keep)
        o = _checked(f"outs[{l}]", outs[l], dtype, (n, w.shape[0]), keep)
        outputs.append((f"outs[{l}]", o))
        inputs += [(f"weights[{l}]", w), (f"biases[{l}]", b)]
        codes[l] = _act(activations[l], l == L - 1)
        keep.append(w)
        ptrs[l], ptrs[L + l], ptrs[2 * L + l] = (<size_t>_ptr(w), <size_t>_ptr(b),
                                                 <size_t>_ptr(o))
    _no_overlap(outputs, inputs)
    cdef int *ps = <int*>_ptr(sizes)
    cdef int *pc = <int*>_ptr(codes)
    cdef void **pp = <void**>_ptr(ptrs)
    cdef void *px = _ptr(X)
    cdef int rc
    cdef const eng_kernel_table *k = _table(X)
    with nogil:
        rc = k.tiled_forward(L, ps, pc, pp, pp + L, px, n, pp + 2 * L, rounded)
    if rc != 0:
        raise MemoryError("tiled_forward: out of memory")
