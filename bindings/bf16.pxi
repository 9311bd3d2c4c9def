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
    if code == ENG_BF16_PORTABLE:
        gemm(bf16_round(A), bf16_round(B), C, trans_a, trans_b, 1.0, 0.0)
        return
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


def bf16_info():
    """{"path": the path gemm_bf16 takes, "paths": {name: (runs here, why)}}."""
    return {"path": BF16_PATHS[eng_bf16_path()],
            "paths": {name: (bool(eng_bf16_supported(i)), eng_bf16_reason(i).decode())
                      for i, name in enumerate(BF16_PATHS)}}


def force_bf16_path(path):
    """Make gemm_bf16 take `path` by default (None: the best again); ValueError where it
    does not run."""
    if path is None:
        eng_bf16_force(-1)
        return
    eng_bf16_force(_bf16_path_code(path))
