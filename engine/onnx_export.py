"""ONNX export of an engine.MLP: a float32 graph of Gemm + activation nodes that
onnxruntime (or any ONNX runtime) evaluates as `predict_proba` and `predict` do.

Inputs: "X" (n x n_features, float32). Outputs: "probabilities" (the output activations,
n x n_outputs) and "label" (int64: the argmax class for labels, 0/1 per output for
binary_cross_entropy, absent for regression, whose "probabilities" are the predictions).
Needs the `onnx` package (the [onnx] extra)."""
from __future__ import annotations

import numpy as np

from . import ops
from .io import atomic_write_bytes


class _Graph:
    """The nodes and initializers of a graph being built; each node's output gets a fresh
    name (engine/ops.py's onnx builders add an activation's nodes through node/constant)."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []

    def _name(self, stem):
        return f"{stem}{len(self.nodes) + len(self.initializers)}"

    def node(self, operator, *inputs, **attributes):
        out = self._name(operator.lower())
        self.nodes.append(self.helper.make_node(operator, list(inputs), [out], **attributes))
        return out

    def constant(self, value):
        name = self._name("constant")
        self.initializers.append(self.numpy_helper.from_array(np.array(value, np.float32), name))
        return name


def to_onnx(model, opset=17):
    """The ModelProto of `model` (an engine.MLP) in float32 at the given opset (>= 13)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install \"engine[onnx]\"") \
            from None
    if not isinstance(opset, int) or opset < 13:
        raise ValueError(f"opset must be an integer >= 13; got {opset!r}")
    L = len(model.layer_sizes) - 1
    g = _Graph(helper, numpy_helper)
    x = "X"
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        g.initializers += [numpy_helper.from_array(np.asarray(w, np.float32), f"W{l}"),
                           numpy_helper.from_array(np.asarray(b, np.float32), f"b{l}")]
        act = model.output_activation if l == L - 1 else model.hidden_activation
        x = ops.ACTIVATIONS[act].onnx(g, g.node("Gemm", x, f"W{l}", f"b{l}", transB=1))
    g.nodes[-1].output[0] = "probabilities"
    n_out = model.layer_sizes[-1]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_out])]
    if model.target_kind == "labels":
        g.nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1,
                                        keepdims=0))
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64, [None]))
    elif model.target_kind == "indicators":
        above = g.node("Greater", "probabilities", g.constant(0.5))
        g.nodes.append(helper.make_node("Cast", [above], ["label"], to=TensorProto.INT64))
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64,
                                                        [None, n_out]))
    graph = helper.make_graph(
        g.nodes, "engine_mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, model.layer_sizes[0]])],
        outputs, g.initializers)
    proto = helper.make_model(graph, producer_name="engine",
                              opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 9)   # readable by onnxruntime releases since 1.16
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path, opset=17):
    """Write `model` as an ONNX file at path (atomically)."""
    atomic_write_bytes(path, to_onnx(model, opset).SerializeToString())
