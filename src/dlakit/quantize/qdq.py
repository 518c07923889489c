"""Q/DQ graphs: write a model with DLA's INT8 numerics as QuantizeLinear/DequantizeLinear nodes, and read one back.

One writer serves three consumers that differ only in how weights and biases are expressed:
- the emulator (``weights="fake"``): fake-quantized float weights, float bias, FP16 casts on unscaled DLA tensors;
- TensorRT explicit quantization / strongly typed DLA (``weights="int8"``): INT8 weight initializers with
  per-output-channel DequantizeLinear, float bias (TensorRT folds it into the layer), no casts;
- ONNX Runtime's integer kernels (``weights="int8", int32_bias=True``): the bias as INT32 with scale s_x·s_w so
  that ORT fuses DQ→Conv→Q into QLinearConv — the independent check of the emulator's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlakit.quantize.numerics import (
    INT8_MAX,
    activation_scale,
    bias_safe_weight_scales,
    fake_quant_weight,
    quantize_weight,
    weight_scales,
)
from dlakit.quantize.plan import QuantPlan

ZERO_POINT = "dlakit_int8_zero_point"


@dataclass
class QdqModel:
    model: onnx.ModelProto
    compare_names: dict[str, str]  # original tensor -> name of its quantized (or FP16) value in ``model``
    scales: dict[str, float]
    widened_channels: int = 0  # weight channels widened so that an INT32 bias fits (int8_baseline.md pitfall 3)


def _rewire(nodes: list[onnx.NodeProto], old: str, new: str) -> None:
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _quantize_weights(graph: onnx.GraphProto, plan: QuantPlan, scales: dict[str, float], weights: str,
                      int32_bias: bool, rounding: str = "even") -> tuple[list[onnx.NodeProto], int]:
    inits = {init.name: init for init in graph.initializer}
    nodes = {node.name: node for node in graph.node}
    front: list[onnx.NodeProto] = []
    widened = 0
    for spec in plan.weights:
        if spec.weight not in inits:
            continue  # a weight made by a Constant node: left in float (rare; TensorRT folds it)
        node = nodes[spec.node]
        weight = numpy_helper.to_array(inits[spec.weight])
        if weights == "fake":
            name = f"{spec.weight}__dla_int8_{spec.axis}"
            if name not in inits:
                inits[name] = numpy_helper.from_array(fake_quant_weight(weight, spec.axis, rounding), name)
                graph.initializer.append(inits[name])
            node.input[1] = name
            continue
        bias = numpy_helper.to_array(inits[spec.bias]) if spec.bias in inits else None
        x_scale = scales.get(spec.activation)
        if int32_bias and bias is not None and x_scale is not None:
            w_scales = bias_safe_weight_scales(weight, spec.axis, bias, x_scale)
            widened += int(np.sum(w_scales != weight_scales(weight, spec.axis)))
        else:
            w_scales = weight_scales(weight, spec.axis)
        q, w_scales = quantize_weight(weight, spec.axis, w_scales)
        prefix = f"{spec.node}__weight"
        graph.initializer.extend([
            numpy_helper.from_array(q, f"{prefix}_int8"),
            numpy_helper.from_array(w_scales, f"{prefix}_scale"),
            numpy_helper.from_array(np.zeros(len(w_scales), np.int8), f"{prefix}_zero_point")])
        front.append(helper.make_node("DequantizeLinear", [f"{prefix}_int8", f"{prefix}_scale",
                                                           f"{prefix}_zero_point"], [f"{prefix}_dq"],
                                      name=f"{prefix}_dequantize", axis=spec.axis))
        node.input[1] = f"{prefix}_dq"
        if int32_bias and bias is not None and x_scale is not None:
            b_scale = (np.float64(x_scale) * w_scales.astype(np.float64)).astype(np.float32)
            b_q = np.clip(np.rint(bias / b_scale), -(2**31), 2**31 - 1).astype(np.int32)
            graph.initializer.extend([
                numpy_helper.from_array(b_q, f"{spec.node}__bias_int32"),
                numpy_helper.from_array(b_scale, f"{spec.node}__bias_scale"),
                numpy_helper.from_array(np.zeros(len(b_q), np.int32), f"{spec.node}__bias_zero_point")])
            front.append(helper.make_node("DequantizeLinear", [f"{spec.node}__bias_int32", f"{spec.node}__bias_scale",
                                                               f"{spec.node}__bias_zero_point"],
                                          [f"{spec.node}__bias_dq"], name=f"{spec.node}__bias_dequantize", axis=0))
            node.input[2] = f"{spec.node}__bias_dq"
    return front, widened


def _unique(name: str, used: set[str]) -> str:
    candidate, index = name, 1
    while candidate in used:
        candidate, index = f"{name}_{index}", index + 1
    used.add(candidate)
    return candidate


def _round_away_nodes(tensor: str, source: str, result: str, scale_name: str) -> list[onnx.NodeProto]:
    """Fake quantization with ties rounded away from zero, built from float ops (QuantizeLinear rounds to even)."""
    p = f"{tensor}__away"
    return [helper.make_node("Div", [source, scale_name], [f"{p}_x"], name=f"{p}_div"),
            helper.make_node("Abs", [f"{p}_x"], [f"{p}_abs"], name=f"{p}_abs"),
            helper.make_node("Add", [f"{p}_abs", "dlakit_half"], [f"{p}_shift"], name=f"{p}_add"),
            helper.make_node("Floor", [f"{p}_shift"], [f"{p}_floor"], name=f"{p}_floor"),
            helper.make_node("Sign", [f"{p}_x"], [f"{p}_sign"], name=f"{p}_sign"),
            helper.make_node("Mul", [f"{p}_floor", f"{p}_sign"], [f"{p}_q"], name=f"{p}_signed"),
            helper.make_node("Clip", [f"{p}_q", "dlakit_int8_min", "dlakit_int8_max"], [f"{p}_sat"],
                             name=f"{p}_saturate"),
            helper.make_node("Mul", [f"{p}_sat", scale_name], [result], name=f"{p}_dequantize")]


def _hoist_constant_weights(graph: onnx.GraphProto, plan: QuantPlan) -> None:
    """Planned weights and biases made by Constant nodes (PaddlePaddle exports) become initializers, so that they
    are quantized like any other weight instead of silently staying float."""
    wanted = {s.weight for s in plan.weights} | {s.bias for s in plan.weights if s.bias}
    have = {i.name for i in graph.initializer}
    kept = []
    for node in graph.node:
        if (node.op_type == "Constant" and node.output[0] in wanted and node.output[0] not in have
                and len(node.attribute) == 1 and node.attribute[0].name == "value"):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def insert_qdq(model: onnx.ModelProto, plan: QuantPlan, amax: dict[str, float], weights: str = "fake",
               fp16_casts: bool = True, int32_bias: bool = False, rounding: str = "even") -> QdqModel:
    """Copy ``model`` with Q/DQ pairs on every scaled tensor of ``plan`` (``amax`` after constraints).

    ``rounding="away"`` (emulator only) rounds ties away from zero in activations and weights instead of to even.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    _hoist_constant_weights(graph, plan)
    scales = {name: float(activation_scale(amax[name])) for name in plan.tensors if name in amax}
    front, widened = _quantize_weights(graph, plan, scales, weights, int32_bias, rounding)
    graph.initializer.append(numpy_helper.from_array(np.array(0, np.int8), ZERO_POINT))
    if rounding == "away":
        graph.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
                                  (("dlakit_half", 0.5), ("dlakit_int8_min", -128.0), ("dlakit_int8_max", 127.0))])
    graph_inputs = {i.name for i in graph.input}
    inserted_after: dict[str, list[onnx.NodeProto]] = {}
    compare: dict[str, str] = {}
    # DLA tensors without a scale run in FP16: the unscaled outputs of FP16 layers, and planned tensors the
    # scales do not cover (a calibration cache from elsewhere)
    unscaled = [n for n in [*plan.tensors, *plan.fp16_tensors] if n not in scales]
    casts = list(dict.fromkeys(unscaled)) if fp16_casts else []
    producers = {name: node for node in graph.node for name in node.output}
    used = {n for node in graph.node for n in (*node.input, *node.output)} | graph_inputs
    graph_outputs = {o.name for o in graph.output}
    for tensor in [*scales, *casts]:
        # the quantized tensor keeps its name (scales are looked up by it, as in QAT exports); only a graph output
        # must keep its name on the Q/DQ result, so there the producer's tensor is renamed instead
        if tensor in graph_outputs and tensor not in graph_inputs:
            source, result = _unique(f"{tensor}__fp32", used), tensor
        else:
            source, result = tensor, _unique(f"{tensor}__dla", used)
        if tensor in scales:
            scale_name = f"{tensor}__scale"
            graph.initializer.append(numpy_helper.from_array(np.array(scales[tensor], np.float32), scale_name))
            new = _round_away_nodes(tensor, source, result, scale_name) if rounding == "away" else [
                   helper.make_node("QuantizeLinear", [source, scale_name, ZERO_POINT], [f"{tensor}__int8"],
                                    name=f"{tensor}__quantize"),
                   helper.make_node("DequantizeLinear", [f"{tensor}__int8", scale_name, ZERO_POINT], [result],
                                    name=f"{tensor}__dequantize")]
        else:
            new = [helper.make_node("Cast", [source], [f"{tensor}__fp16"], to=TensorProto.FLOAT16,
                                    name=f"{tensor}__to_fp16"),
                   helper.make_node("Cast", [f"{tensor}__fp16"], [result], to=TensorProto.FLOAT,
                                    name=f"{tensor}__from_fp16")]
        if source == tensor:
            _rewire(list(graph.node), tensor, result)
            if tensor in graph_inputs:
                front += new
            elif tensor in producers:
                inserted_after.setdefault(producers[tensor].name, []).extend(new)
            else:
                continue
        elif tensor in producers:
            node = producers[tensor]
            node.output[list(node.output).index(tensor)] = source
            inserted_after.setdefault(node.name, []).extend(new)
        else:
            continue
        compare[tensor] = result
    ordered = list(front)
    for node in graph.node:
        ordered.append(node)
        ordered.extend(inserted_after.get(node.name, []))
    del graph.node[:]
    graph.node.extend(ordered)
    return QdqModel(out, compare, scales, widened)


@dataclass
class WeightScaleMismatch:
    layer: str
    weight: str
    channels: int
    worst_ratio: float  # Q/DQ scale / (max|W|/127), worst channel

    def as_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "weight": self.weight, "channels": self.channels,
                "worst_ratio": round(self.worst_ratio, 6)}


@dataclass
class Translation:
    """A Q/DQ model taken apart: the float model TensorRT's implicit path builds, and its scales."""

    model: onnx.ModelProto
    scales: dict[str, float] = field(default_factory=dict)
    mismatches: list[WeightScaleMismatch] = field(default_factory=list)
    weights_checked: int = 0
    unsigned: set[str] = field(default_factory=set)  # UINT8 (zero point 0) activations: range = 255·scale


def _const(inits: dict[str, onnx.TensorProto], constants: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    if name in constants:
        return constants[name]
    return numpy_helper.to_array(inits[name]) if name in inits else None


def translate_qdq(model: onnx.ModelProto, rtol: float = 1e-3) -> Translation:
    """Strip Q/DQ nodes: activation Q→DQ pairs become per-tensor scales on the quantized tensor; DQ'd weights become
    their dequantized float values, whose per-channel scale is checked against TensorRT's max|W|/127 rule (TensorRT
    recomputes weight scales from the float weights, so a mismatch means the device will not reproduce the QAT
    weights' quantization)."""
    from dlakit.quantize.fp16 import is_fp16, to_fp32

    out = onnx.ModelProto()
    out.CopyFrom(to_fp32(model) if is_fp16(model) else model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                 if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    producers = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    result = Translation(out)
    drop: set[str] = set()
    replace: dict[str, str] = {}
    new_inits: list[onnx.TensorProto] = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.name in drop:
            continue
        x_name = node.input[0]
        scale = _const(inits, constants, node.input[1])
        zero = _const(inits, constants, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        q_node = producers.get(x_name)
        if q_node is not None and q_node.op_type == "QuantizeLinear":
            source = q_node.input[0]
            if source in inits or source in constants:  # Q→DQ on a float weight: use its fake-quantized value
                value = _dequantize(_quantize(_const(inits, constants, source), scale, zero, node), scale, zero, node)
                new_inits.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
                _check_weight(result, node, consumers.get(node.output[0], []), value, scale, rtol)
            else:
                if scale is not None and scale.size == 1:
                    value = float(scale.reshape(-1)[0])
                    if zero is not None and np.any(zero != 0):
                        from dlakit.errors import DlakitError

                        raise DlakitError(f"Q/DQ pair on '{source}' has zero point {zero.reshape(-1)[0]}: DLA INT8 is "
                                          "symmetric (zero point 0); re-quantize with symmetric activations")
                    if zero is not None and zero.dtype == np.uint8:
                        result.unsigned.add(source)
                        value *= 255.0 / INT8_MAX  # the same range as DLA's symmetric scale (range = 127·scale)
                    result.scales[source] = value
                replace[node.output[0]] = source
            drop.update({node.name, q_node.name} if len(consumers.get(x_name, [])) == 1 else {node.name})
        elif x_name in inits or x_name in constants:
            value = _dequantize(_const(inits, constants, x_name), scale, zero, node)
            new_inits.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
            if value.dtype != np.int32 and _const(inits, constants, x_name).dtype in (np.int8, np.uint8):
                _check_weight(result, node, consumers.get(node.output[0], []), value, scale, rtol)
            drop.add(node.name)
    kept = [n for n in graph.node if n.name not in drop and not (n.op_type == "QuantizeLinear" and n.name in drop)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = replace.get(name, name)
    producers_kept = {name: node for node in kept for name in node.output}
    for output in graph.output:
        source = replace.get(output.name)
        if source is None:
            continue
        if source in producers_kept:  # give the quantized tensor its graph-output name back
            for node in kept:
                node.input[:] = [output.name if n == source else n for n in node.input]
                node.output[:] = [output.name if n == source else n for n in node.output]
            if source in result.scales:
                result.scales[output.name] = result.scales.pop(source)
        else:  # a graph input straight to an output
            kept.append(helper.make_node("Identity", [source], [output.name], name=f"{output.name}__identity"))
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(new_inits)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep_inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep_inits)
    return result


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _broadcast(param: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if param.size == 1:
        return param.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return param.reshape(shape)


def _quantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, node: onnx.NodeProto) -> np.ndarray:
    axis = _axis(node)
    z = _broadcast(zero.astype(np.float64), x.ndim, axis) if zero is not None else 0.0
    return np.clip(np.rint(x / _broadcast(scale.astype(np.float64), x.ndim, axis)) + z, -128, 127)


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, node: onnx.NodeProto) -> np.ndarray:
    axis = _axis(node)
    z = _broadcast(zero.astype(np.float64), q.ndim, axis) if zero is not None else 0.0
    return ((q.astype(np.float64) - z) * _broadcast(scale.astype(np.float64), q.ndim, axis)).astype(np.float32)


def _check_weight(result: Translation, dq: onnx.NodeProto, users: list[onnx.NodeProto], value: np.ndarray,
                  scale: np.ndarray, rtol: float) -> None:
    layer = next((u for u in users if u.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")), None)
    if layer is None or scale is None:
        return
    axis = _axis(dq) % value.ndim if scale.size > 1 else 0
    expected = np.abs(np.moveaxis(value, axis, 0).reshape(value.shape[axis], -1)).max(axis=1) / INT8_MAX
    given = np.broadcast_to(scale.reshape(-1).astype(np.float64), expected.shape)
    live = expected > 0
    ratio = np.where(live, given / np.where(live, expected, 1.0), 1.0)
    bad = np.abs(ratio - 1.0) > rtol
    result.weights_checked += 1
    if bad.any():
        worst = float(ratio[np.argmax(np.abs(ratio - 1.0))])
        result.mismatches.append(WeightScaleMismatch(layer.name, dq.input[0], int(bad.sum()), worst))
