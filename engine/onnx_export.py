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

# engine activation -> the ONNX operator that computes it (silu: z times Sigmoid(z), below)
OPS = {"identity": "Identity", "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
       "leaky_relu": "LeakyRelu", "softmax": "Softmax", "exp": "Exp"}
# each operator's attributes
ATTRIBUTES = {"softmax": {"axis": 1}, "leaky_relu": {"alpha": ops.LEAKY_SLOPE}}
EXP_CAP = 88.0          # the engine caps exp's argument where float32 still holds the result


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
    nodes, inits = [], []
    x = "X"
    for l, (w, b) in enumerate(zip(model.weights, model.biases)):
        inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"W{l}"),
                  numpy_helper.from_array(np.asarray(b, np.float32), f"b{l}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{l}", f"b{l}"], [f"z{l}"], transB=1))
        act = model.output_activation if l == L - 1 else model.hidden_activation
        out = "probabilities" if l == L - 1 else f"a{l}"
        z = f"z{l}"
        if act == "exp":                          # exp(min(z, cap)), as the engine computes it
            inits.append(numpy_helper.from_array(np.array(EXP_CAP, np.float32), "exp_cap"))
            nodes.append(helper.make_node("Min", [z, "exp_cap"], [f"capped{l}"]))
            z = f"capped{l}"
        if act == "silu":
            nodes += [helper.make_node("Sigmoid", [z], [f"sigmoid{l}"]),
                      helper.make_node("Mul", [z, f"sigmoid{l}"], [out])]
        else:
            nodes.append(helper.make_node(OPS[act], [z], [out], **ATTRIBUTES.get(act, {})))
        x = out
    n_out = model.layer_sizes[-1]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_out])]
    if model.target_kind == "labels":
        nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1,
                                      keepdims=0))
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64, [None]))
    elif model.target_kind == "indicators":
        inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        nodes += [helper.make_node("Greater", ["probabilities", "half"], ["above"]),
                  helper.make_node("Cast", ["above"], ["label"], to=TensorProto.INT64)]
        outputs.insert(0, helper.make_tensor_value_info("label", TensorProto.INT64,
                                                        [None, n_out]))
    graph = helper.make_graph(
        nodes, "engine_mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, model.layer_sizes[0]])],
        outputs, inits)
    proto = helper.make_model(graph, producer_name="engine",
                              opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 9)   # readable by onnxruntime releases since 1.16
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path, opset=17):
    """Write `model` as an ONNX file at path (atomically)."""
    atomic_write_bytes(path, to_onnx(model, opset).SerializeToString())
