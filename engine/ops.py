"""The activations, declared once for the Python side: name -> code. The codes are those of
csrc/ops.h's X-macro list, which generates the C enum and every C switch; the backends'
registries, the argument checks, the Cython bindings and the CUDA kernels all read this
table, and tests/test_backends.py holds it equal to the C list (engine._native.op_code).

An activation's formulas live with each backend (the NumPy backend's are the
specification): adding one is a row here, a row in csrc/ops.h, its NumPy forward and
derivative, and its CUDA device-function case."""

# hidden layers' activations; derivatives are taken from the outputs a = act(z), except for
# those in KEEPS_SLOPE, whose output does not determine z (silu: x * sigmoid(x) takes each
# value in (-0.28, 0) twice): a training step's forward pass keeps their slope act'(z) in
# the workspace (Workspace.s), and the backward pass reads it in the output's place
HIDDEN = {"identity": 0, "sigmoid": 1, "relu": 2, "tanh": 3, "leaky_relu": 6, "silu": 7}
KEEPS_SLOPE = frozenset({"silu"})
# output layers' activations (each in an output/loss pair of engine/backends/base.py)
OUTPUT = {"sigmoid": 1, "softmax": 4, "identity": 0, "exp": 5}
CODES = {**HIDDEN, **OUTPUT}
# leaky_relu's slope below 0 (csrc/ops.h ENG_LEAKY_SLOPE)
LEAKY_SLOPE = 0.01
