# bf16-mixed products (csrc/bf16.c): operands rounded to bfloat16, float32 accumulation, on
# the portable, AVX512-BF16 or AMX path.

BF16_PATHS = ("portable", "avx512-bf16", "amx")
_F32 = np.dtype(np.float32)


def bf16_round(x, out=None):
    """x rounded to bfloat16 (nearest even), as float32; into `out` when given."""
    cdef cnp.ndarray X = _array("x", x, None, _F32)
    if out is None:
        out = np.empty_like(X)
    cdef cnp.ndarray O = _array("out", out, None, _F32, True)
    _shape("out", O, _dims(X))
    cdef const float *px = <const float*>_ptr(X)
    cdef float *po = <float*>_ptr(O)
    cdef int64_t n = X.size
    with nogil:
        eng_bf16_round(px, po, n)
    return out


cdef int _bf16_path_code(object path) except -2:
    if path is None:
        return eng_bf16_path()
    if path not in BF16_PATHS:
        raise ValueError(f"path must be one of {BF16_PATHS} or None; got {path!r}")
    code = BF16_PATHS.index(path)
    if not eng_bf16_supported(code):
        raise ValueError(f"the {path} bf16 path does not run here: "
                         f"{eng_bf16_reason(code).decode()}")
    return code


def gemm_bf16(a, b, out, bint trans_a=False, bint trans_b=False, path=None):
    """out = op(a) @ op(b) with a and b rounded to bfloat16 and the products summed in
    float32 (all float32 arrays), on `path` (default: the best this CPU runs, bf16_info)."""
    cdef cnp.ndarray A = _array("a", a, 2, _F32)
    cdef cnp.ndarray B = _array("b", b, 2, _F32)
    cdef cnp.ndarray C = _array("out", out, 2, _F32, True)
    cdef int64_t m = A.shape[1] if trans_a else A.shape[0]
    cdef int64_t k = A.shape[0] if trans_a else A.shape[1]
    cdef int64_t kb = B.shape[1] if trans_b else B.shape[0]
    cdef int64_t n = B.shape[0] if trans_b else B.shape[1]
    if kb != k:
        raise ValueError(f"gemm_bf16: op(a) is {m} x {k} but op(b) is {kb} x {n}")
    _shape("out", C, (m, n))
    _no_overlap([("out", C)], [("a", A), ("b", B)])
    cdef int code = _bf16_path_code(path)
    cdef const float *pa = <const float*>_ptr(A)
    cdef const float *pb = <const float*>_ptr(B)
    cdef float *pc = <float*>_ptr(C)
    cdef int rc
    with nogil:
        rc = eng_gemm_bf16(code, trans_a, trans_b, m, n, k, pa, pb, pc)
    if rc == -1:
        raise MemoryError("gemm_bf16: out of memory for the packed operands")
    if rc != 0:
        raise RuntimeError(f"gemm_bf16: the {BF16_PATHS[code]} path failed ({rc})")


def bf16_dot_vs_fma():
    """vdpbf16ps's GFLOP/s over float32 FMAs' on one thread (0 where AVX512-BF16 code is not
    built or does not run): below 1.2 the AVX512-BF16 path is not chosen unless forced."""
    return eng_bf16_dot_vs_fma()


def bf16_info():
    """{"path": the path gemm_bf16 takes, "paths": {name: (runs here, why)}}."""
    return {"path": BF16_PATHS[eng_bf16_path()],
            "paths": {name: (bool(eng_bf16_supported(i)), eng_bf16_reason(i).decode())
                      for i, name in enumerate(BF16_PATHS)}}


def bf16_peak_gflops(path=None, double seconds=0.2):
    """One thread's bf16 GFLOP/s in a register-only loop of the path's dot product (AMX
    tiles or vdpbf16ps; 0 for the portable path, which has none of its own)."""
    cdef int code = _bf16_path_code(path)
    if code == ENG_BF16_PORTABLE:
        return 0.0
    cdef int64_t iters = 1000
    cdef double rate
    with nogil:
        rate = eng_bf16_peak_gflops(code, iters)
    iters = max(<int64_t>(rate * 1e9 * seconds / (4 * 2 * 16 * 16 * 32 if code == ENG_BF16_AMX
                                                  else 8 * 2 * 32)), 1000)
    with nogil:
        rate = eng_bf16_peak_gflops(code, iters)
    return rate


def emulate_bf16_paths(bint on):
    """For the tests: on, the AVX512-BF16 (given AVX2) and AMX paths this CPU lacks run on
    their kernels emulated in software where a call names them or force_bf16_path forces
    them (never by default; bf16_info says "emulated"); off again with False."""
    eng_bf16_emulate(on)


def force_bf16_path(path):
    """Make gemm_bf16 take `path` by default (None: the best again); ValueError where it
    does not run."""
    if path is None:
        eng_bf16_force(-1)
        return
    eng_bf16_force(_bf16_path_code(path))


_U16 = np.dtype(np.uint16)


def bf16_pack_rows(X):
    """X (n x f, float32) as bfloat16 rows (uint16, nearest even) padded with zeros to a
    multiple of 32 columns: what bf16_epoch reads, made once per fit."""
    cdef cnp.ndarray XA = _array("X", X, 2, _F32)
    cdef int64_t n = XA.shape[0], f = XA.shape[1], width = (f + 31) // 32 * 32
    # on a 64-byte boundary, like the packed operands: each row is whole cache lines
    raw = np.empty(n * width + 32, dtype=_U16)
    start = (-raw.ctypes.data % 64) // 2
    out = raw[start:start + n * width].reshape(n, width)
    cdef const float *px = <const float*>_ptr(XA)
    cdef uint16_t *po = <uint16_t*>_ptr(out)
    with nogil:
        eng_bf16_rows(px, n, f, po, width)
    return out


def bf16_forward(weights, biases, activations, x, acts, path=None):
    """acts[l] = activations[l](acts[l-1] @ weights[l].T + biases[l]), acts[-1] standing
    for x, with the products on bfloat16 operands and float32 sums (csrc/bf16_forward.c),
    on any path (float32 arrays; x may instead be rows of bf16_pack_rows)."""
    cdef int L = len(weights)
    if L < 1 or L > ENG_MAX_LAYERS:
        raise ValueError(f"weights must hold 1 to {ENG_MAX_LAYERS} matrices; got {L}")
    keep = []
    packed = isinstance(x, np.ndarray) and x.dtype == _U16
    cdef cnp.ndarray XA = _array("x", x, 2, _U16 if packed else _F32)
    cdef int64_t n = XA.shape[0]
    sizes = np.array([np.shape(weights[0])[1]] + [np.shape(w)[0] for w in weights],
                     dtype=np.intc)
    codes = np.array([_act(a, i == L - 1) for i, a in enumerate(activations)], dtype=np.intc)
    if codes.shape[0] != L or len(biases) != L or len(acts) != L:
        raise ValueError(f"biases, activations and acts must have {L} entries")
    _shape("x", XA, (n, (int(sizes[0]) + 31) // 32 * 32 if packed else int(sizes[0])))
    cdef const float **W = <const float**>_float_ptrs(
        "weights", list(weights), [(int(sizes[l + 1]), int(sizes[l])) for l in range(L)], keep)
    cdef const float **B = <const float**>_float_ptrs(
        "biases", list(biases), [(int(sizes[l + 1]),) for l in range(L)], keep)
    cdef float **A = _float_ptrs("acts", list(acts), [(n, int(sizes[l + 1])) for l in range(L)],
                                 keep)
    _no_overlap([(f"acts[{l}]", acts[l]) for l in range(L)],
                [("x", XA)] + [(f"weights[{l}]", weights[l]) for l in range(L)]
                + [(f"biases[{l}]", biases[l]) for l in range(L)])
    cdef int code = _bf16_path_code(path)
    cdef const int *ps = <const int*>_ptr(sizes)
    cdef const int *pc = <const int*>_ptr(codes)
    cdef const float *px = NULL if packed else <const float*>_ptr(XA)
    cdef const uint16_t *pp = <const uint16_t*>_ptr(XA) if packed else NULL
    cdef int rc
    with nogil:
        rc = eng_bf16_forward(code, L, ps, W, B, pc, px, pp, n, A)
    if rc == -1:
        raise MemoryError("bf16_forward: out of memory for the packed operands")
    if rc != 0:
        raise RuntimeError(f"bf16_forward: the {BF16_PATHS[code]} path failed ({rc})")


cdef float **_float_ptrs(str name, list arrays, list shapes, list keep) except NULL:
    """A C array of pointers to float32 arrays of the given shapes (kept alive by keep)."""
    cdef cnp.ndarray holder = np.empty(len(arrays), dtype=np.uintp)
    keep.append(holder)
    for i, (arr, shape) in enumerate(zip(arrays, shapes)):
        holder[i] = <size_t>_ptr(_checked(f"{name}[{i}]", arr, _F32, shape, keep))
    return <float**>_ptr(holder)


cdef _check_team(int threads, int most_threads):
    if threads < 0 or most_threads < 0:
        raise ValueError(f"threads and most_threads must be >= 0; got {threads}, {most_threads}")


def bf16_epoch(weights, biases, weight_grads, bias_grads, acts, deltas, t, activations,
               str loss, Xb, y, order, rule, double alpha, batch_losses, state=(), path=None,
               int threads=0, slopes=None, int most_threads=0):
    """One bf16-mixed epoch in C (csrc/bf16_epoch.c) on any bf16 path: minibatches
    of t.shape[0] rows over Xb[order] (Xb from bf16_pack_rows; y int64 labels or float32
    target rows), float32 master weights stepped by `rule` (its t: the steps before this
    epoch) with L2 `alpha`; state: the rule's state arrays per parameter (weights, then
    biases), one list per state kind; threads: the team (0: the epoch's choice,
    bf16_epoch_team, of at most most_threads where that is > 0); slopes: per layer, where an
    activation of engine/ops.py KEEPS_SLOPE keeps them (as EpochPlan's).
    Returns the minibatches trained."""
    cdef int L = len(weights), l
    if L < 1 or L > ENG_MAX_LAYERS:
        raise ValueError(f"weights must hold 1 to {ENG_MAX_LAYERS} matrices; got {L}")
    keep = []
    cdef cnp.ndarray T = _array("t", t, 2, _F32, True)
    cdef int64_t batch = T.shape[0]
    if batch < 1:
        raise ValueError("t must have at least one row (its rows are the batch size)")
    sizes = np.empty(L + 1, dtype=np.intc)
    sizes[0] = np.shape(weights[0])[1]
    for l in range(L):
        sizes[l + 1] = np.shape(weights[l])[0]
    wshapes = [(int(sizes[l + 1]), int(sizes[l])) for l in range(L)]
    bshapes = [(int(sizes[l + 1]),) for l in range(L)]
    rshapes = [(batch, int(sizes[l + 1])) for l in range(L)]
    _shape("t", T, (batch, int(sizes[L])))
    codes = np.array([_act(a, i == L - 1) for i, a in enumerate(activations)], dtype=np.intc)
    if codes.shape[0] != L:
        raise ValueError(f"activations must have {L} entries; got {codes.shape[0]}")
    cdef eng_bf16_plan p
    _check_team(threads, most_threads)
    p.n_layers, p.batch, p.team, p.most_threads = L, batch, threads, most_threads
    p.loss_kind = _pair(activations[L - 1], loss)
    p.path = _bf16_path_code(path)
    p.sizes, p.acts = <const int*>_ptr(sizes), <const int*>_ptr(codes)
    keep += [sizes, codes]
    p.W = _float_ptrs("weights", list(weights), wshapes, keep)
    p.B = _float_ptrs("biases", list(biases), bshapes, keep)
    p.GW = _float_ptrs("weight_grads", list(weight_grads), wshapes, keep)
    p.GB = _float_ptrs("bias_grads", list(bias_grads), bshapes, keep)
    p.A = _float_ptrs("acts", list(acts), rshapes, keep)
    p.D = _float_ptrs("deltas", list(deltas), rshapes, keep)
    cdef cnp.ndarray slope_ptrs = np.zeros(L, dtype=np.uintp)
    keep.append(slope_ptrs)
    for l in range(L):
        slope_ptrs[l] = <size_t>_slope_ptr(slopes, l, L, activations[l], _F32, rshapes[l], keep)
    p.SL = <float**>_ptr(slope_ptrs) if slope_ptrs.any() else NULL
    p.t = <float*>_ptr(T)
    cdef eng_rule r = _rule(rule)
    needed = _STATE_ARRAYS[r.kind]
    state = list(state)
    if len(state) < needed:
        raise ValueError(f"a {rule.kind} step needs {needed} state list(s); got {len(state)}")
    p.S1 = _float_ptrs("state[0]", list(state[0]), wshapes + bshapes, keep) if needed >= 1 \
        else NULL
    p.S2 = _float_ptrs("state[1]", list(state[1]), wshapes + bshapes, keep) if needed >= 2 \
        else NULL
    if alpha < 0 or alpha != alpha:
        raise ValueError(f"alpha must be >= 0; got {alpha}")
    cdef cnp.ndarray XB = _array("Xb", Xb, 2, _U16)
    if XB.shape[1] < (sizes[0] + 31) // 32 * 32:
        raise ValueError(f"Xb must have {(sizes[0] + 31) // 32 * 32} columns (bf16_pack_rows "
                         f"of {sizes[0]}); got {XB.shape[1]}")
    cdef int64_t n = XB.shape[0]
    cdef cnp.ndarray Y = _targets("y", y, n, int(sizes[L]), _F32)
    cdef cnp.ndarray O = _array("order", order, 1, _INT64)
    cdef cnp.ndarray BL = _array("batch_losses", batch_losses, 1, np.dtype(np.float64), True)
    cdef int64_t count = O.shape[0]
    if BL.shape[0] < (count + batch - 1) // batch:
        raise ValueError(f"batch_losses needs {(count + batch - 1) // batch} entries; got "
                         f"{BL.shape[0]}")
    cdef int64_t bad = _first_bad(<int64_t*>_ptr(O), count, n)
    if bad >= 0:
        raise ValueError(f"order[{bad}] = {O[bad]} is outside [0, {n})")
    outs = [("weights", list(weights)), ("biases", list(biases)), ("acts", list(acts)),
            ("deltas", list(deltas)), ("weight_grads", list(weight_grads)),
            ("bias_grads", list(bias_grads))]
    _no_overlap([(f"{name}[{i}]", a) for name, arrs in outs for i, a in enumerate(arrs)]
                + [("t", T)], [("Xb", XB), ("y", Y)])
    cdef const uint16_t *px = <const uint16_t*>_ptr(XB)
    cdef int64_t stride = XB.shape[1]
    cdef const int64_t *py = NULL if Y.ndim == 2 else <const int64_t*>_ptr(Y)
    cdef const float *pt = <const float*>_ptr(Y) if Y.ndim == 2 else NULL
    cdef const int64_t *po = <const int64_t*>_ptr(O)
    cdef double *pl = <double*>_ptr(BL)
    cdef int64_t done
    with nogil:
        done = eng_bf16_epoch(&p, px, stride, py, pt, po, count, &r, alpha, pl)
    if done == -1:
        raise MemoryError("bf16_epoch: out of memory for the packed operands")
    if done < 0:
        raise RuntimeError(f"bf16_epoch failed ({done})")
    return done


def bf16_epoch_team(sizes, int batch, path=None, int threads=0, int most_threads=0):
    """The threads bf16_epoch runs a network of these layer sizes on (csrc/bf16_epoch.c
    eng_bf16_team): `threads` where it is > 0; else a team of get_epoch_threads(), at most
    most_threads (> 0), once a minibatch has enough multiply-adds for the path, else 1."""
    s = np.ascontiguousarray(sizes, dtype=np.intc)
    if s.ndim != 1 or not 2 <= s.shape[0] <= ENG_MAX_LAYERS + 1 or s.min() < 1 or batch < 1:
        raise ValueError(f"sizes must be 2 to {ENG_MAX_LAYERS + 1} positive layer sizes and "
                         f"batch positive; got {list(sizes)}, {batch}")
    _check_team(threads, most_threads)
    return eng_bf16_team(_bf16_path_code(path), s.shape[0] - 1, <const int*>_ptr(s), batch,
                         threads, most_threads)
