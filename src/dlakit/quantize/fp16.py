"""Turn the FP32 Q/DQ model into the FP16 one TensorRT 11.4's strongly typed DLA builds expect.

A strongly typed network takes every tensor's type from the ONNX graph, and DLA computes only INT8 and FP16: a
layer left in FP32 cannot run on it. So for those releases the Q/DQ model carries FP16 everywhere a tensor is not
INT8: FP16 inputs and outputs, FP16 weights, biases and Q/DQ scales (a DequantizeLinear's output type is its
scale's type). Shape-like inputs (Resize scales/sizes, Reshape shapes) keep their types.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

#: (op, input index) pairs that must stay FP32 whatever the compute precision
KEEP_FLOAT32_INPUTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)


FP16_QDQ_OPSET = 19  # QuantizeLinear / DequantizeLinear take FP16 scales from opset 19


def to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """An FP16 copy of ``model`` (opset raised to 19 where lower) and the names of scales below FP16's normal range
    (they keep fewer significant bits).

    Run the result in ONNX Runtime with optimizations at basic level: ORT 1.32's full optimizer fuses FP16 Q/DQ
    graphs wrongly (about -10 dB on EfficientNet-Lite0), the same family of bug as int8_baseline.md pitfall 4.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), FP16_QDQ_OPSET)
    if opset < FP16_QDQ_OPSET:
        from onnx import version_converter

        from dlakit.errors import OptionError

        source = onnx.ModelProto()
        source.CopyFrom(model)
        source.ir_version = max(source.ir_version, 7)  # IR < 4 would require every initializer to be a graph input
        try:
            out = version_converter.convert_version(source, FP16_QDQ_OPSET)
        except Exception as exc:  # the converter raises its own types
            raise OptionError(f"{{qdq_precision}} fp16: converting the Q/DQ model to opset {FP16_QDQ_OPSET} failed "
                              f"({str(exc).splitlines()[0][:120]}); re-export the model with a newer opset",
                              "qdq_precision") from None
    else:
        out = onnx.ModelProto()
        out.CopyFrom(model)
    graph = out.graph
    keep = {node.input[i] for node in graph.node for op, i in KEEP_FLOAT32_INPUTS
            if node.op_type == op and len(node.input) > i}
    scale_inputs = {node.input[1] for node in graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")}
    subnormal: list[str] = []
    for index, init in enumerate(graph.initializer):
        if init.data_type != TensorProto.FLOAT or init.name in keep:
            continue
        value = numpy_helper.to_array(init)
        if init.name in scale_inputs and np.any((value > 0) & (value < FP16_MIN_NORMAL)):
            subnormal.append(init.name)
        graph.initializer[index].CopyFrom(numpy_helper.from_array(value.astype(np.float16), init.name))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.FLOAT16
            if (attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT \
                    and node.op_type != "ConstantOfShape") or (node.op_type == "Constant" and attribute.name == "value"
                                                               and attribute.t.data_type == TensorProto.FLOAT):
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float16),
                                                             attribute.t.name))
    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]
    return out, subnormal


def to_fp32(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 form of an FP16 model (weights, constants, casts, inputs and outputs), to analyse or translate it."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT16:
            value = numpy_helper.to_array(init).astype(np.float32)
            graph.initializer[index].CopyFrom(numpy_helper.from_array(value, init.name))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == TensorProto.FLOAT16:
                attribute.i = TensorProto.FLOAT
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT16:
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float32),
                                                             attribute.t.name))
    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    del graph.value_info[:]
    return out


def is_fp16(model: onnx.ModelProto) -> bool:
    return any(v.type.tensor_type.elem_type == TensorProto.FLOAT16 for v in model.graph.input) or any(
        i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
