"""A per-channel constant Mul / Div / Add / Sub right before a Conv folds into its weights and bias.

Input normalisation (``(x − mean) / std`` per colour channel) and batch norms placed before a convolution (Keras
pre-activation blocks, NHWC exports once their Transposes have moved) cost a DLA scale operation, or a GPU op and
two transitions at the model input. ``conv(x · s) = conv'(x)`` with each input channel's weights scaled by s, exact
with any padding (padded zeros stay zero). ``conv(x + b) = conv(x) + Σ W·b`` only without padding: padded borders
would see 0 instead of b, so a shift before a padded convolution is left alone. Only an op whose output feeds just
this convolution is folded.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._common import attr_int, attr_ints, const_of, dims
from dlakit.rewrite.rules.fold_mul_add_into_conv import _per_channel, emit_conv, weight_and_bias

OPS = ("Mul", "Div", "Add", "Sub")


def _plan(conv: ir.Node) -> tuple[ir.Node, str, np.ndarray] | Answer:
    """(the op before the conv, "scale" or "shift", one value per input channel)."""
    x = conv.inputs[0]
    op = x.producer() if x is not None else None
    if op is None or op.op_type not in OPS or len(x.uses()) != 1 or x.is_graph_output():
        return NO_MATCH
    a, b = op.inputs[:2]
    if op.op_type in ("Mul", "Add") and const_of(a) is not None and const_of(b) is None:
        a, b = b, a
    operand = const_of(b)
    if operand is None or const_of(a) is not None:
        return NO_MATCH
    weight = const_of(conv.inputs[1])
    if weight is None or (len(conv.inputs) > 2 and conv.inputs[2] is not None and const_of(conv.inputs[2]) is None):
        return NO_MATCH
    shape = dims(x)
    if shape is None or dims(a) != shape or len(shape) != weight.ndim:
        return NO_MATCH  # the constant would broadcast the input to a larger shape
    per = _per_channel(operand, shape[1], len(shape))
    if per is None:
        return NO_MATCH
    if op.op_type == "Div":
        if not np.all(per):
            return NO_MATCH
        return op, "scale", 1.0 / per
    if op.op_type == "Mul":
        return op, "scale", per
    auto = conv.attributes.get_string("auto_pad", "NOTSET")
    if any(attr_ints(conv, "pads", [0]) or [0]) or auto not in ("NOTSET", "VALID"):
        return "the convolution pads its input: a shift before it would differ at the borders"
    return op, "shift", per if op.op_type == "Add" else -per


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    return refusal_of(_plan(node))


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    op, kind, per = _plan(node)  # type: ignore[misc]
    weight, bias = weight_and_bias(node)
    groups = attr_int(node, "group", 1)
    out_c, in_per_group = weight.shape[:2]
    # input channel of weight[k, j]: group of k times the group's width, plus j
    channel = (np.arange(out_c) // (out_c // groups))[:, None] * in_per_group + np.arange(in_per_group)[None, :]
    values = per[channel].reshape(out_c, in_per_group, *([1] * (weight.ndim - 2)))
    if kind == "scale":
        weight = (weight * values).astype(weight.dtype)
    else:
        bias = bias + (weight * values).reshape(out_c, -1).sum(axis=1)
    data = op.inputs[0] if const_of(op.inputs[0]) is None else op.inputs[1]
    return [emit_conv(ctx, node, data, weight, bias)]


RULE = Rule(id="fold-mul-add-before-conv", ops=("Conv",),
            summary="per-channel constant Mul/Div (any Conv) or Add/Sub (unpadded Conv) before a Conv → its weights",
            check=check, rewrite=rewrite, report_refusals=False)
