"""Lift rank-1/2/3 tensors to 4-D around element-wise ops, activations, 1-D convolutions and pools.

Every DLA layer works on 4-D NCHW tensors; a Conv1d, an activation on ``[N, C, L]`` or a bias Add on ``[N, C]``
falls back to the GPU only because of its rank. The op is rewritten to work on a 4-D view: ``[N, C, L]`` becomes
``[N, C, 1, L]`` (L on W, so 1-D kernels become 1×k), ``[N, C]`` becomes ``[N, C, 1, 1]`` and ``[C]`` becomes
``[1, C, 1, 1]``. Inputs of element-wise ops are first aligned to the output rank (numpy broadcasting), so the same
view applies to all of them. Reshapes in and out are added; back-to-back reshapes between lifted ops are merged by
``reshape-merge``. Axes (Softmax, Concat) are remapped to the 4-D view.

Lifting an element-wise op that sits among GPU-only ops (box decoding between Slice and Concat, say) would only add
GPU↔DLA transitions, so such ops are lifted only next to DLA compute (a convolution, pooling, matrix product or an
already 4-D layer, looking through pure reshapes) or when the op is the whole graph; 1-D convolutions and pools
are always lifted.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.model import is_folded
from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import const_of, dims, need_float, reshape

ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu")
#: DLA's activations (ReLU, Sigmoid, TanH, clipped and leaky ReLU) and its one unary op (ABS); lifting an op DLA
#: cannot run anyway (Exp, Log, Elu...) would gain nothing
UNARY = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "Abs")
SPATIAL = ("Conv", "MaxPool", "AveragePool")
AXIS_OPS = ("Softmax", "Concat")
#: layers whose neighbours are worth lifting: DLA compute, where most of the MACs are
COMPUTE = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "MaxPool", "AveragePool", "GlobalAveragePool",
                     "GlobalMaxPool", "BatchNormalization"})
SHAPE_ONLY = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


def to_4d(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 1:
        return (1, shape[0], 1, 1)
    if len(shape) == 2:
        return (shape[0], shape[1], 1, 1)
    return (shape[0], shape[1], 1, shape[2])


def map_axis(axis: int, rank: int) -> int:
    axis %= rank
    return {1: [1], 2: [0, 1], 3: [0, 1, 3]}[rank][axis]


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    out = dims(node.outputs[0]) if node.outputs else None
    if node.outputs and node.outputs[0].shape is not None and len(node.outputs[0].shape) >= 4:
        return NO_MATCH
    data = node.inputs if node.op_type in ELEMENTWISE + AXIS_OPS else node.inputs[:1]
    if any(v is not None and need_float(v) for v in [*data, node.outputs[0]]):
        return NO_MATCH  # integer shape arithmetic and the like: not a DLA candidate at all
    if out is None:
        return "the output shape is not static (give --shapes)"
    if not out or len(out) >= 4:
        return NO_MATCH
    inputs = [v for v in node.inputs if v is not None]
    if any(dims(v) is None for v in inputs):
        return "an input shape is not static (give --shapes)"
    if any(len(dims(v) or ()) > len(out) for v in inputs):
        return NO_MATCH
    if node.op_type in SPATIAL:
        if len(out) != 3:
            return NO_MATCH
        if node.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            return "auto_pad SAME_* would have to be resolved first"
        if node.op_type == "Conv" and dims(node.inputs[1]) is not None and len(dims(node.inputs[1]) or ()) != 3:
            return NO_MATCH
        if len(node.outputs) > 1 and node.outputs[1].uses():
            return "the pool's indices output is used"
    if node.op_type == "BatchNormalization" and (len(out) < 2 or len(node.outputs) > 1):
        return NO_MATCH
    if node.op_type not in SPATIAL and not _reaches_dla_compute(node):
        return ("no neighbouring DLA layer (convolution, pooling, matrix product or 4-D layer): lifting it alone "
                "would only add GPU↔DLA transitions")
    return None


def _reaches_dla_compute(node: ir.Node) -> bool:
    """Is a convolution-like layer or a 4-D float layer a neighbour of ``node`` (through reshapes)?"""
    def good(other: ir.Node) -> bool:
        out = other.outputs[0] if other.outputs else None
        four_d = out is not None and out.shape is not None and len(out.shape) == 4 and not need_float(out)
        return other.op_type in COMPUTE or (four_d and other.op_type not in SHAPE_ONLY)

    producers = [v.producer() for v in node.inputs if v is not None]
    consumers = [u.node for out in node.outputs for u in out.uses()]
    if all(p is None or is_folded(p) for p in producers) and not consumers:
        return True  # fed by inputs/weights, feeding only outputs: the whole graph can be DLA
    frontier, seen = [node], {node}
    for _ in range(4):
        nxt = []
        for current in frontier:
            producers = [v.producer() for v in current.inputs if v is not None]
            consumers = [u.node for out in current.outputs for u in out.uses()]
            for other in [*producers, *consumers]:
                if other is None or other in seen:
                    continue
                if good(other):
                    return True
                seen.add(other)
                if other.op_type in SHAPE_ONLY:
                    nxt.append(other)
        frontier = nxt
    return False


def _lift_input(ctx: RuleContext, value: ir.Value, rank: int) -> ir.Value:
    shape = dims(value) or ()
    padded = (1,) * (rank - len(shape)) + shape
    return reshape(ctx, value, to_4d(padded))


def _spatial_attrs(node: ir.Node) -> dict:
    attrs = {}
    for attr in node.attributes.values():
        value = attr.value
        if attr.name in ("kernel_shape", "strides", "dilations"):
            attrs[attr.name] = [1, *value]
        elif attr.name == "pads":
            attrs[attr.name] = [0, value[0], 0, value[1]]
        else:
            attrs[attr.name] = value
    return attrs


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    out = dims(node.outputs[0]) or ()
    rank = len(out)
    attrs = {a.name: a.value for a in node.attributes.values()}
    if node.op_type in SPATIAL:
        x = _lift_input(ctx, node.inputs[0], rank)
        inputs = [x]
        if node.op_type == "Conv":
            weight = dims(node.inputs[1]) or ()
            value = const_of(node.inputs[1])
            target = [weight[0], weight[1], 1, weight[2]]
            inputs.append(ctx.const(value.reshape(target), "weight") if value is not None
                          else reshape(ctx, node.inputs[1], target))
            inputs.extend(node.inputs[2:])
        y = ctx.op(node.op_type, inputs, _spatial_attrs(node))
    elif node.op_type in AXIS_OPS:
        # before opset 13 Softmax flattens to [prod(before axis), prod(from axis)]; the 4-D view keeps both products
        default = (-1 if ctx.opset >= 13 else 1) if node.op_type == "Softmax" else 0
        attrs["axis"] = map_axis(attrs.get("axis", default), rank)
        y = ctx.op(node.op_type, [_lift_input(ctx, v, rank) for v in node.inputs], attrs)
    elif node.op_type in ELEMENTWISE:
        lifted = [_lift_input(ctx, v, rank) if v is not None and dims(v) else v for v in node.inputs]
        y = ctx.op(node.op_type, lifted, attrs)
    else:  # activations, BatchNormalization: only the data input is lifted; parameters are per channel or scalar
        y = ctx.op(node.op_type, [_lift_input(ctx, node.inputs[0], rank), *node.inputs[1:]], attrs)
    return [reshape(ctx, y, out)]


RULE = Rule(id="lift-to-4d", ops=ELEMENTWISE + UNARY + SPATIAL + AXIS_OPS + ("BatchNormalization",),
            summary="rank < 4 element-wise ops, activations, 1-D conv/pool → the same op on a 4-D view",
            check=check, rewrite=rewrite)
