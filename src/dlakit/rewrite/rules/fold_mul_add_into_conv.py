"""Constant per-channel Mul / Add / Sub and BatchNormalization after a Conv fold into its weights and bias.

NVIDIA's preparation scripts do this by hand for each reference network: a scale or shift that follows a
convolution costs a separate DLA operation (and INT8 requantization) when it could be absorbed by the convolution.
Folding is exact up to float rounding. Only a Conv whose output feeds nothing else is folded, and only constants
that are one value per output channel (shapes like [C,1,1], [1,C,1,1], [1] or scalars).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import const_of, dims


def _conv_and_operand(node: ir.Node) -> tuple[ir.Node, np.ndarray | None] | Answer:
    x = node.inputs[0]
    operand = None
    if node.op_type in ("Mul", "Add", "Sub"):
        a, b = node.inputs[:2]
        if node.op_type != "Sub" and const_of(a) is not None and const_of(b) is None:
            a, b = b, a
        x, operand = a, const_of(b)
        if operand is None:
            return NO_MATCH
    conv = x.producer() if x is not None else None
    if conv is None or conv.op_type != "Conv":
        return NO_MATCH
    if len(x.uses()) != 1 or x.is_graph_output():
        # for Mul/Add that is an ordinary element-wise op on a shared tensor (not worth a report); a BatchNorm
        # that cannot fold is worth one
        return "the convolution's output is also used elsewhere" if node.op_type == "BatchNormalization" else NO_MATCH
    weight = const_of(conv.inputs[1])
    bias = const_of(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
    if weight is None or (len(conv.inputs) > 2 and conv.inputs[2] is not None and bias is None):
        return "the convolution's weights are not constants with known values"
    return conv, operand


def _per_channel(array: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """The constant as one value per output channel, or None if it varies along other axes."""
    if array.size == 1:
        return np.full(channels, array.reshape(-1)[0])
    shape = (1,) * (rank - array.ndim) + array.shape
    if len(shape) != rank or shape[1] != channels or any(s != 1 for i, s in enumerate(shape) if i != 1):
        return None
    return array.reshape(-1)


def _folded(node: ir.Node) -> tuple[ir.Node, np.ndarray, np.ndarray] | Answer:
    found = _conv_and_operand(node)
    if isinstance(found, Answer):
        return found
    conv, operand = found
    weight = const_of(conv.inputs[1])
    channels = weight.shape[0]
    out = dims(node.outputs[0])
    rank = len(out) if out is not None else weight.ndim
    if node.op_type == "BatchNormalization":
        if len(node.outputs) > 1 and any(o.uses() for o in node.outputs[1:]):
            return "the BatchNormalization is in training mode (running statistics are used)"
        params = [const_of(v) for v in node.inputs[1:5]]
        if any(p is None for p in params):
            return "the BatchNormalization parameters are not constants"
        gamma, beta, mean, var = params
        scale = gamma / np.sqrt(var + node.attributes.get_float("epsilon", 1e-5))
        return conv, scale, beta - mean * scale
    per = _per_channel(operand, channels, rank)
    if per is None:
        return f"the constant of shape {list(operand.shape)} is not one value per output channel"
    conv_out = conv.outputs[0]
    if out is not None and dims(conv_out) != out:
        return "the constant broadcasts the convolution's output to a larger shape"
    if node.op_type == "Mul":
        return conv, per, np.zeros(channels)
    return conv, np.ones(channels), per if node.op_type == "Add" else -per


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    folded = _folded(node)
    return folded if isinstance(folded, Answer) else None


def weight_and_bias(conv: ir.Node) -> tuple[np.ndarray, np.ndarray]:
    """A Conv's constant weights and bias (zeros where it has none)."""
    weight = const_of(conv.inputs[1])
    bias_value = conv.inputs[2] if len(conv.inputs) > 2 else None
    bias = const_of(bias_value) if bias_value is not None else np.zeros(weight.shape[0], dtype=weight.dtype)
    return weight, bias


def emit_conv(ctx: RuleContext, conv: ir.Node, data: ir.Value, weight: np.ndarray, bias: np.ndarray) -> ir.Value:
    """A copy of ``conv`` (same attributes) reading ``data`` with new weights and bias, in the weights' dtype."""
    name = ctx.names.fresh(f"{ctx.prefix}/Conv")
    new = ir.Node("", "Conv", [data, ctx.const(weight.astype(weight.dtype), "weight"),
                               ctx.const(np.asarray(bias).astype(weight.dtype), "bias")],
                  attributes=list(conv.attributes.values()), outputs=[ir.Value(name=ctx.names.fresh(f"{name}_out"))],
                  name=name)
    ctx.nodes.append(new)
    return new.outputs[0]


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    conv, scale, shift = _folded(node)  # type: ignore[misc]
    weight, bias = weight_and_bias(conv)
    new_weight = (weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))).astype(weight.dtype)
    return [emit_conv(ctx, conv, conv.inputs[0], new_weight, (bias * scale + shift).astype(weight.dtype))]


RULE = Rule(id="fold-mul-add-into-conv", ops=("Mul", "Add", "Sub", "BatchNormalization"),
            summary="per-channel constant Mul/Add/Sub or BatchNormalization after Conv → conv weights/bias",
            check=check, rewrite=rewrite)
