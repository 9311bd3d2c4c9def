"""What several test modules share: which backends and SIMD variants run here, and a way
to run a block of code on one SIMD variant. Import it as `helpers` (pytest puts tests/ on
sys.path); conftest.py only holds fixtures and hooks."""
import contextlib
import os

import numpy as np

# The CUDA kernels are tested on the CPU under Numba's simulator unless a real GPU run
# is asked for (ENGINE_TEST_REAL_GPU=1). Set before anything imports numba.
if os.environ.get("ENGINE_TEST_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

from engine.data import default_cache_dir  # noqa: E402

# The suite never writes the user's cache (~/.cache/engine: the native tuning table, MNIST):
# this process and every process it starts use a temporary one. REAL_CACHE_DIR is the
# user's, for the test that reads the full MNIST there when it exists (read only).
REAL_CACHE_DIR = default_cache_dir()
os.environ["ENGINE_DATA"] = tempfile.mkdtemp(prefix="engine-tests-")
atexit.register(shutil.rmtree, os.environ["ENGINE_DATA"], True)

from engine.backends import runnable_backends  # noqa: E402

SIMULATED_CUDA = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")
# Every backend that can run here at full size. The simulated GPU is correct but runs each
# CUDA thread as a Python thread: it only gets the tiny shapes of test_cuda.py.
AVAILABLE = runnable_backends()
FAST = [name for name in AVAILABLE if name != "numpy"]

try:
    from engine import _native
    # every compiled SIMD variant of the native workers that this CPU can run
    SIMD_VARIANTS = [name for name, runs in _native.simd_variants().items() if runs]
except ImportError:
    _native = None
    SIMD_VARIANTS = []


@contextlib.contextmanager
def simd_variant(name):
    """Run the native workers of one SIMD variant inside the block."""
    _native.force_simd(name)
    try:
        yield
    finally:
        _native.force_simd(None)


def plan_arrays(sizes, batch, dtype=np.float64):
    """Keyword arguments for an engine._native.EpochPlan of these widths: the arrays a
    workspace holds, made directly (weights 0.1, everything else zero)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    z = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    return dict(weights=[z(o, i) + 0.1 for i, o in layers], biases=[z(o) for _, o in layers],
                acts=[z(batch, o) for _, o in layers], deltas=[z(batch, o) for _, o in layers],
                bias_grads=[z(o) for _, o in layers], x=z(batch, sizes[0]),
                activations=("sigmoid",) * (len(layers) - 1) + ("softmax",),
                loss="cross_entropy")


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def check(got, want, k=1, magnitude=None):
    """Compare a backend result with the NumPy one: shape, dtype, then values."""
    got = np.asarray(got)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
    if want.dtype == np.float64:
        atol = 1e-300 if magnitude is None else 1e-12 * k * magnitude + 1e-300
        err = np.abs(got - want)
        assert np.all(err <= 1e-12 * np.abs(want) + atol), \
            f"max relative error {np.max(err / (np.abs(want) + 1e-300)):.3g} exceeds 1e-12"
    else:
        mag = np.abs(want) if magnitude is None else magnitude
        bound = 4 * k * np.finfo(np.float32).eps * mag + 1e-30
        assert np.all(np.abs(got.astype(np.float64) - want) <= bound), \
            f"max err {np.max(np.abs(got - want))} exceeds the k={k} bound"


PAIRS = [("sigmoid", "mse"), ("softmax", "cross_entropy"),
         ("identity", "mse"), ("sigmoid", "binary_cross_entropy"), ("exp", "poisson"),
         ("identity", "squared_error")]


def outputs_and_targets(rng, output, n, c, dtype, loss="mse"):
    """Outputs of the activation and targets of the kind the loss trains on."""
    z = rng.standard_normal((n, c)) * 2
    a = {"softmax": lambda: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
         "sigmoid": lambda: 1 / (1 + np.exp(-z)), "identity": lambda: z,
         "exp": lambda: np.exp(z)}[output]()
    if loss == "binary_cross_entropy":
        t = rng.integers(0, 2, (n, c)).astype(float)
    elif output in ("identity", "exp"):
        t = np.abs(rng.standard_normal((n, c))) * 3        # values, or counts
        t[0, 0] = 0.0                                       # 0 log 0 is 0
    else:
        t = np.zeros((n, c))
        t[np.arange(n), rng.integers(0, c, n)] = 1
    return a.astype(dtype), t.astype(dtype)


def pair_targets(rng, output, loss, n, c, mean_count=1.0):
    """Targets of the kind each output/loss pair trains on: 0/1 indicators, real values,
    counts (Poisson with mean_count), or integer labels."""
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, c)).astype(float)
    if output == "identity":
        return rng.normal(size=(n, c))
    if output == "exp":
        return rng.poisson(mean_count, (n, c)).astype(float)
    return rng.integers(0, c, size=n)


def package_modules():
    """{dotted name: path} of every module of the engine package."""
    import pathlib

    import engine
    root = pathlib.Path(engine.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def engine_imports(name, path, known):
    """The engine names module `name` (at `path`) imports anywhere in its source, functions
    included, relative imports resolved; `from x import y` counts as x.y when x.y is one of
    `known`, else as x."""
    import ast
    import pathlib
    package = name if pathlib.Path(path).name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(pathlib.Path(path).read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("engine")}


def bf16_spec_forward(x, W, B, acts):
    """Each layer's outputs for rows x under the NumPy specification of bf16-mixed (the
    products on rounded operands, float32 sums): what the native bf16 passes are held to."""
    from engine.backends import get_backend
    spec, outs, z = get_backend("numpy"), [], x
    for w, b, act in zip(W, B, acts):
        out = np.empty((x.shape[0], w.shape[0]), np.float32)
        spec.gemm_bf16(z, w, out, trans_b=True)
        spec.bias_act_(out, b, act)
        outs.append(out)
        z = out
    return outs
