"""LayerNorm / InstanceNorm / GroupNorm → ReduceMean, Sub, Mul, Pow and per-channel Scale layers.

TensorRT's Normalization layer has no DLA support. Written out, a normalization is two means (which the
``reduce-to-pool`` rule then turns into pooling chains or 1x1 convolutions), element-wise Sub/Prod, and an affine
per-channel Scale — all DLA layers. Only ``(var + ε)^−½`` remains: no DLA release dlakit knows has a square root
(Unary is ABS only; element-wise Pow appears only in the newest documentation), so that one op on the small
``[N, groups, 1, 1]`` statistics tensor stays on the GPU unless the release runs Pow. GroupNorm reshapes to
``[N, G, C/G·H·W]`` first, so its statistics are per group.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._common import dims, need_float, reshape, scalar


def _plan(node: ir.Node) -> tuple[tuple[int, ...], list[int], tuple[int, ...] | None] | str:
    """(input shape, normalised axes, shape to view the input in first, or None)."""
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape = dims(x)
    if shape is None:
        return "the input shape is not static (give --shapes)"
    rank = len(shape)
    if node.op_type == "LayerNormalization":
        axis = node.attributes.get_int("axis", -1) % rank
        if axis == 0:
            return "it normalises over the batch axis too"
        return shape, list(range(axis, rank)), None
    if rank < 3:
        return f"the input has rank {rank}; {node.op_type} needs N, C and spatial axes"
    if node.op_type == "InstanceNormalization":
        return shape, list(range(2, rank)), None
    groups = node.attributes.get_int("num_groups")
    if shape[1] % groups:
        return f"{shape[1]} channels do not split into {groups} groups"
    view = (shape[0], groups, int(np.prod(shape[1:], dtype=np.int64)) // groups)
    return shape, [2], view


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    return refusal_of(_plan(node))


def _mean(ctx: RuleContext, x: ir.Value, axes: list[int]) -> ir.Value:
    if ctx.opset >= 18:
        return ctx.op("ReduceMean", [x, ctx.const(np.array(axes, dtype=np.int64), "axes")], {"keepdims": 1})
    return ctx.op("ReduceMean", [x], {"axes": axes, "keepdims": 1})


def _affine(ctx: RuleContext, node: ir.Node, y: ir.Value, shape: tuple[int, ...], per_group: bool) -> ir.Value:
    """Multiply by scale and add bias, broadcast the way the op defines them (constants or tensors alike)."""
    inputs = [*node.inputs, None, None]
    for index, op in ((1, "Mul"), (2, "Add")):
        value = inputs[index]
        if value is None:
            continue
        if node.op_type != "LayerNormalization":
            size = (dims(value) or (shape[1],))[0]
            value = reshape(ctx, value, [size, 1] if per_group else [size, *([1] * (len(shape) - 2))])
        y = ctx.op(op, [y, value])
    return y


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    plan = _plan(node)
    assert not isinstance(plan, Answer)
    shape, axes, view = plan
    x = node.inputs[0]
    epsilon = node.attributes.get_float("epsilon", 1e-5)
    per_group = False
    if view is not None:
        x = reshape(ctx, x, view)
        scale = dims(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        per_group = scale is not None and scale[0] == view[1] and view[1] != shape[1]
    mean = _mean(ctx, x, axes)
    centred = ctx.op("Sub", [x, mean])
    variance = _mean(ctx, ctx.op("Mul", [centred, centred]), axes)
    inv_std = ctx.op("Pow", [ctx.op("Add", [variance, scalar(ctx, x, epsilon, "epsilon")]),
                             scalar(ctx, x, -0.5, "minus_half")])
    y = ctx.op("Mul", [centred, inv_std])
    if view is not None and per_group:
        y = reshape(ctx, _affine(ctx, node, y, shape, True), shape)
    elif view is not None:
        y = _affine(ctx, node, reshape(ctx, y, shape), shape, False)
    else:
        y = _affine(ctx, node, y, shape, False)
    return [y, mean, inv_std][:len(node.outputs)]


RULE = Rule(id="norm-decompose", ops=("LayerNormalization", "InstanceNormalization", "GroupNormalization"),
            summary="Layer/Instance/GroupNorm → ReduceMean, Sub, Mul, Pow, Scale", check=check, rewrite=rewrite,
            note="(var+ε)^−½ has no DLA layer in most releases and stays on the GPU (on the small statistics "
                 "tensor); the means become pooling/convolution via reduce-to-pool")
