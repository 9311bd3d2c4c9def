"""The backend registry: names, per-instance options, and what backends share."""
import os

import numpy as np
import pytest

import engine
from engine.backends import backend_choices, get_backend

from helpers import AVAILABLE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_choices_come_from_the_registry():
    assert backend_choices() == ("auto",) + engine.backend_names()


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
def test_native_options_belong_to_the_instance(monkeypatch):
    shared = get_backend("native")
    tiles = get_backend("native", gemm="tiles", threads=1)
    blas = get_backend("native", gemm="blas")
    assert tiles is not shared and blas is not tiles
    assert (tiles.epoch_gemm, tiles.threads) == ("tiles", 1)
    assert blas.epoch_gemm == "blas"
    assert get_backend("native") is shared          # the shared default is untouched
    assert get_backend(tiles) is tiles               # an instance passes through
    X = np.random.default_rng(0).random((60, 8)).astype(np.float32)
    y = np.arange(60) % 3
    a = engine.MLP([8, 5, 3], backend=tiles, seed=2)
    b = engine.MLP([8, 5, 3], backend=blas, seed=2)
    a.fit(X, y, epochs=2, batch_size=20, progress=False)
    b.fit(X, y, epochs=2, batch_size=20, progress=False)
    assert a.backend is tiles and b.backend is blas
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    # the environment variable is a default only: read when an instance is made
    monkeypatch.setenv("ENGINE_NATIVE_GEMM", "blas")
    assert get_backend("native", threads=2).epoch_gemm == "blas"
    assert tiles.epoch_gemm == "tiles"
    with pytest.raises(ValueError, match="gemm must be"):
        get_backend("native", gemm="fast")
    with pytest.raises(ValueError, match="threads"):
        get_backend("native", threads=0)


def test_options_need_a_name():
    with pytest.raises(TypeError, match="auto"):
        get_backend("auto", gemm="tiles")
    with pytest.raises(TypeError, match="instance"):
        get_backend(get_backend("numpy"), gemm="tiles")
    with pytest.raises(TypeError):
        get_backend("numpy", gemm="tiles")          # numpy takes no options


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
def test_cuda_kernel_codes_match_the_c_enums():
    """The CUDA kernels carry their own activation and output/loss codes; they must be the
    C kernels' (csrc/kernels.h), which engine._native exports."""
    from engine import _native
    from engine.backends import cuda_kernels
    assert cuda_kernels.ACTIVATIONS == _native.ACTIVATIONS
    assert cuda_kernels.OUTPUT_LOSS == _native.OUTPUT_LOSS
    assert cuda_kernels.SOFTMAX_CE == _native.OUTPUT_LOSS["softmax", "cross_entropy"]


@pytest.mark.skipif("native" not in AVAILABLE, reason="the native extension is not built")
def test_the_python_op_table_is_the_c_one():
    """engine/ops.py (what the Python side reads) against csrc/ops.h's X-macro list (what
    generates the C enum and switches): the same names with the same codes, both ways."""
    from engine import _native, ops
    for name, code in ops.CODES.items():
        assert _native.op_code(name.upper()) == code, name
    assert _native.op_code("NO_SUCH_ACTIVATION") == -1
    c_names = [line.split("(")[1].split(",")[0] for line in
               open(os.path.join(ROOT, "csrc", "ops.h")) if line.strip().startswith("X(")]
    assert sorted(n.lower() for n in c_names) == sorted(ops.CODES)
    # the activations whose slope a training step keeps: ENG_SLOPE_OPS
    assert {name for name, code in ops.CODES.items() if _native.op_keeps_slope(code)} \
        == ops.KEEPS_SLOPE
    # the output/loss pairs: each pair's code is its C loss kind's, and every kind has one
    assert {p.c_name: p.code for p in ops.PAIRS.values()} == _native.C_LOSS_KINDS
    c_kinds = open(os.path.join(ROOT, "csrc", "kernels.h")).read().split(
        "/* output/loss pairs")[1].split("};")[0]
    assert c_kinds.count("ENG_") == len(ops.PAIRS)


def test_set_params_is_a_deprecated_alias_of_set_weights():
    model = engine.MLP([3, 2], "sigmoid", "sigmoid", "mse", backend="numpy")
    w, b = [np.ones((2, 3))], [np.zeros(2)]
    with pytest.warns(DeprecationWarning, match="set_weights"):
        model.set_params(w, b)
    np.testing.assert_array_equal(model.weights[0], w[0])


def test_auto_takes_the_gpu_only_for_networks_big_enough_to_win():
    from engine.backends import CUDA_MIN_PARAMS, auto_choice
    lecture, wide = [784, 100, 10], [784, 1024, 1024, 10]
    assert auto_choice(lecture, ["numpy", "native", "cuda"])[0] == "native"
    assert auto_choice(wide, ["numpy", "native", "cuda"])[0] == "cuda"
    assert auto_choice(wide, ["numpy", "cuda"])[0] == "cuda"
    assert auto_choice(lecture, ["numpy", "cuda"])[0] == "numpy"
    assert auto_choice(wide, ["numpy", "native"])[0] == "native"
    name, why = auto_choice(lecture, ["numpy", "native", "cuda"])
    assert f"{CUDA_MIN_PARAMS:,}" in why


def test_auto_model_on_this_machine_uses_the_machines_best():
    import engine
    from engine.backends import auto_choice, runnable_backends
    model = engine.MLP([4, 3, 2], "relu", backend="auto")
    assert model.backend.name == auto_choice([4, 3, 2], runnable_backends())[0]
