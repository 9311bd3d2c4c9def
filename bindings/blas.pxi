# Row-major GEMM for float and double over scipy.linalg.cython_blas (nothing linked at
# build time: SciPy hands out its BLAS at import).
#
# BLAS is column-major, and a row-major (r x c) matrix is the column-major (c x r)
# transpose in the same memory. So C = op(A) @ op(B) in row-major is computed as
# C^T = op(B)^T @ op(A)^T in column-major: swap the operands, keep each flag.
from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef fused real:
    float
    double


cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k,
                         real alpha, const real *a, int lda, const real *b, int ldb,
                         real beta, real *c, int ldc) noexcept nogil:
    """c (m x n) = alpha * op(a) @ op(b) + beta * c; op(a) is (m x k), op(b) is (k x n).

    lda, ldb, ldc are the row lengths of a, b and c as stored (row-major)."""
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    if real is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


ctypedef void (*_any_function)() noexcept nogil


cdef inline _any_function _blas_gemm(int itemsize) noexcept nogil:
    """BLAS's gemm for arrays of this item size, as the fused epoch's BLAS provider calls it
    (csrc/epoch_blas.h: eng_epoch_plan.blas_gemm)."""
    return <_any_function>sgemm if itemsize == 4 else <_any_function>dgemm
