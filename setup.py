"""Builds engine._native from bindings/_native.pyx and csrc/kernels.c.

Environment variables (all optional):
  ENGINE_NATIVE_ARCH=1  add -march=native (a wheel built so may crash on another CPU)
  ENGINE_FAST_MATH=1    add -ffast-math (it flushes subnormals for the whole process)
  ENGINE_DEBUG_BUILD=1  Cython bounds/wraparound/initialization checks, -O1 -g, asserts on
  ENGINE_NO_OPENMP=1    build without OpenMP even when the compiler has it
  ENGINE_SANITIZE=1     -fsanitize=address,undefined (run with libasan preloaded; .ci/run does)
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def compiler_has_openmp():
    """Compile and link a tiny OpenMP program with the compiler Python was built with."""
    cc = os.environ.get("CC") or (sysconfig.get_config_var("CC") or "cc").split()[0]
    if not shutil.which(cc):
        return False
    src = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        cmd = [cc, "-fopenmp", path, "-o", os.path.join(tmp, "probe")]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


debug = env_flag("ENGINE_DEBUG_BUILD")
# -fno-trapping-math lets GCC if-convert and vectorize the branch-free exp/sigmoid loops;
# it gives up floating-point exception flags only (results and subnormals are unchanged).
# -fno-math-errno lets it vectorize Adam's sqrt: errno is never set by sqrt of the
# non-negative moments anyway; results are unchanged.
compile_args = ((["-O1", "-g", "-UNDEBUG"] if debug else ["-O3"])
                + ["-fno-trapping-math", "-fno-math-errno"])
link_args = []
if env_flag("ENGINE_NATIVE_ARCH"):
    compile_args.append("-march=native")
if env_flag("ENGINE_FAST_MATH"):
    compile_args.append("-ffast-math")
if env_flag("ENGINE_SANITIZE"):
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                "-fno-omit-frame-pointer"]
    compile_args += sanitize
    link_args += sanitize
openmp = not env_flag("ENGINE_NO_OPENMP") and sys.platform != "win32" and compiler_has_openmp()
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
elif not env_flag("ENGINE_NO_OPENMP"):
    warnings.warn("the C compiler has no OpenMP: engine._native is built single-threaded "
                  "(BLAS still uses its own threads)")

extension = Extension(
    "engine._native",
    sources=["bindings/_native.pyx", "csrc/kernels.c", "csrc/runtime.c", "csrc/bf16.c",
             "csrc/bf16_pack.c", "csrc/bf16_pack_avx512.c", "csrc/bf16_kernels.c",
             "csrc/bf16_epoch.c", "csrc/bf16_forward.c", "csrc/bf16_emulated.c"],
    include_dirs=["csrc", "bindings", np.get_include()],
    depends=sorted(glob.glob("csrc/*.h") + glob.glob("bindings/*.pxd")
                   + glob.glob("bindings/*.pxi")),
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

directives = {"language_level": 3, "boundscheck": debug, "wraparound": debug,
              "initializedcheck": debug, "cdivision": not debug, "embedsignature": True}

setup(
    ext_modules=cythonize(
        [extension], compiler_directives=directives, include_path=["bindings"],
        compile_time_env={"ENGINE_COMPILE_ARGS": " ".join(compile_args),
                          "ENGINE_DEBUG_BUILD": int(debug)},
        force=debug),
)
