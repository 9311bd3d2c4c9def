# cython: language_level=3
"""engine._native: the C kernels of csrc/ and SciPy's BLAS, callable from Python.

Every function validates its arguments (type, dtype, shape, contiguity) while it
holds the GIL, raising a ValueError/TypeError that names the argument, and then
releases the GIL for the work. `EpochPlan` runs a whole epoch of minibatch SGD in
C without returning to Python between minibatches.

The module is one extension built from these parts, each a file of bindings/:
  blas.pxi          row-major GEMM over scipy.linalg.cython_blas
  checks.pxi        argument checks, and the kernel table of an array's dtype
  kernels.pxi       the Python-visible kernels
  tiles_policy.pxi  which networks train on the tiles, which on BLAS
  epoch_plan.pxi    EpochPlan (the fused epoch of csrc/epoch.h, its products on the
                    tiles or from BLAS)
  runtime.pxi       build information, threads, SIMD variants
  bf16.pxi          bf16-mixed products (portable, AVX512-BF16, AMX)
"""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free
from libc.string cimport memset
cimport numpy as cnp
import numpy as np

from ckernels cimport *

cnp.import_array()

include "blas.pxi"
include "checks.pxi"
include "kernels.pxi"
include "tiles_policy.pxi"
include "epoch_plan.pxi"
include "runtime.pxi"
include "bf16.pxi"
