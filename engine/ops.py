"""The activations and the output/loss pairs, declared once for the Python side.

Activations: each row gives the code of
csrc/ops.h's X-macro list (which generates the C enum and every C switch; a test in
tests/test_backends.py holds the two lists equal), the scalar formulas from which the CUDA
backend generates its device functions (engine/backends/cuda_kernels.py), and the ONNX
nodes that compute it (engine/onnx_export.py). The backends' registries, the argument
checks and the Cython bindings read the name -> code maps below.

Adding a hidden activation is a row here, a row in csrc/ops.h and its NumPy forward and
derivative in engine/backends/numpy_backend.py (the specification every backend is tested
against); nothing else.

Formulas are Python expressions of one scalar, `z` (forward) or `a` (derivative), in the
layer's dtype; they may use ONE, ZERO, LEAK (LEAKY_SLOPE), CAP (EXP_CAP of the dtype),
sigmoid(), tanh(), exp() and min(). A derivative is written with the output a = act(z)
(DESIGN.md: layers keep only their outputs), except for activations that keep their slope:
their output does not determine z (silu: x * sigmoid(x) takes each value in (-0.28, 0)
twice), so their derivative is written with `z`, a training step's forward pass keeps
act'(z) beside the output (Workspace.s), and the backward pass reads it in the output's
place.

`onnx(g, z)` adds the nodes that compute the activation of the tensor named z to the graph
builder g (g.node(operator, *inputs, **attributes) and g.constant(value) return names) and
returns the name of the result."""
from typing import Callable, NamedTuple, Optional

LEAKY_SLOPE = 0.01                  # leaky_relu's slope below 0 (csrc/ops.h ENG_LEAKY_SLOPE)
# exp's argument is capped where the dtype still holds the result (csrc/dtype_*.h EXP_MAX)
EXP_CAP = {"float32": 88.0, "float64": 709.0}


class Activation(NamedTuple):
    code: int
    forward: Optional[str]          # None: written where it is used (softmax acts on rows)
    derivative: Optional[str]       # None: an output layer's, which comes with the loss
    onnx: Callable
    keeps_slope: bool = False


def _operator(name, **attributes):
    return lambda g, z: g.node(name, z, **attributes)


ACTIVATIONS = {
    "identity": Activation(0, "z", "ONE", _operator("Identity")),
    "sigmoid": Activation(1, "sigmoid(z)", "a * (ONE - a)", _operator("Sigmoid")),
    "relu": Activation(2, "z if z > ZERO else ZERO", "ONE if a > ZERO else ZERO",
                       _operator("Relu")),
    "tanh": Activation(3, "tanh(z)", "ONE - a * a", _operator("Tanh")),
    "softmax": Activation(4, None, None, _operator("Softmax", axis=1)),
    "exp": Activation(5, "exp(min(z, CAP))", None,
                      lambda g, z: g.node("Exp", g.node("Min", z,
                                                        g.constant(EXP_CAP["float32"])))),
    "leaky_relu": Activation(6, "z if z > ZERO else LEAK * z", "ONE if a > ZERO else LEAK",
                             _operator("LeakyRelu", alpha=LEAKY_SLOPE)),
    "silu": Activation(7, "z * sigmoid(z)", "sigmoid(z) * (ONE + z * (ONE - sigmoid(z)))",
                       lambda g, z: g.node("Mul", z, g.node("Sigmoid", z)), keeps_slope=True),
}

# hidden layers' activations: those with a derivative
HIDDEN = {name: op.code for name, op in ACTIVATIONS.items() if op.derivative is not None}
KEEPS_SLOPE = frozenset(name for name, op in ACTIVATIONS.items() if op.keeps_slope)
# output layers' activations (each in an output/loss pair of engine/backends/base.py)
OUTPUT = {name: ACTIVATIONS[name].code for name in ("sigmoid", "softmax", "identity", "exp")}
CODES = {name: op.code for name, op in ACTIVATIONS.items()}


class Pair(NamedTuple):
    code: int          # csrc/kernels.h's loss kind ENG_<c_name> (tests/test_backends.py)
    c_name: str
    targets: str       # "labels" (integer classes, one-hot inside), "indicators" (0/1 per
                       # output: binary and multi-label) or "values" (regression)


# Output/loss pairs whose delta and loss the kernels know (each backend writes the formulas:
# numpy_backend.py's are the specification, csrc/losses.h the C ones). "squared_error" is
# scikit-learn's: half the mean squared error, delta (a - y)/n (C times its gradient, as
# scikit-learn's MLPRegressor steps). The textbook's 2(a - y)/n is sigmoid + mse scaled by C,
# in engine/textbook/.
PAIRS = {("sigmoid", "mse"): Pair(0, "SIGMOID_MSE", "labels"),
         ("softmax", "cross_entropy"): Pair(1, "SOFTMAX_CE", "labels"),
         ("identity", "mse"): Pair(2, "IDENTITY_MSE", "values"),
         ("sigmoid", "binary_cross_entropy"): Pair(3, "SIGMOID_BCE", "indicators"),
         ("exp", "poisson"): Pair(4, "EXP_POISSON", "values"),
         ("identity", "squared_error"): Pair(5, "IDENTITY_HALF_MSE", "values")}
LOSSES = tuple(dict.fromkeys(loss for _, loss in PAIRS))
