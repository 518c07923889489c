"""``Where`` with a build-time constant condition: a fixed selection between two tensors.

When both branches are 4-D tensors of the same shape and the condition varies only along channels (the common
"take these channels from A, those from B" case), NVIDIA's recipe applies: Concat the branches along C and select
with a one-hot 1x1 convolution. Otherwise the constant mask M gives ``A·M + B·(1−M)`` (two Scale/Prod layers and a
Sum). Both forms are exact for finite values; a constant branch holding inf/NaN would turn ``0·inf`` into NaN, so
such a Where is refused.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import const_of, dims, need_float, numpy_dtype, selection_limit


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    cond, x, y = node.inputs[:3]
    if const_of(cond) is None:
        return "the condition is computed at run time; only a build-time constant condition is a fixed selection"
    for value in (x, y):
        reason = need_float(value, "branch")
        if reason:
            return reason
        array = const_of(value)
        if array is not None and not np.all(np.isfinite(array)):
            return f"constant branch '{value.name}' holds inf/NaN, which a masked sum cannot reproduce"
    if dims(node.outputs[0]) is None:
        return "the output shape is not static (give --shapes)"
    if _channel_selection(node) is not None:
        out = dims(node.outputs[0]) or ()
        return selection_limit(2 * out[1], out[1])
    return None


def _channel_selection(node: ir.Node) -> np.ndarray | None:
    """The per-channel mask when the Concat + 1x1-conv form applies, else None."""
    cond, x, y = node.inputs[:3]
    out = dims(node.outputs[0])
    if out is None or len(out) != 4 or dims(x) != out or dims(y) != out:
        return None
    if const_of(x) is not None or const_of(y) is not None:
        return None
    mask = np.broadcast_to(np.asarray(const_of(cond), dtype=bool), out)
    per_channel = mask[0, :, 0, 0]
    if not np.array_equal(mask, np.broadcast_to(per_channel[None, :, None, None], out)):
        return None
    return per_channel


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    cond, x, y = node.inputs[:3]
    dtype = numpy_dtype(x)
    per_channel = _channel_selection(node)
    if per_channel is not None:
        channels = per_channel.size
        weight = np.zeros((channels, 2 * channels, 1, 1), dtype=dtype)
        weight[np.arange(channels), np.where(per_channel, np.arange(channels), channels + np.arange(channels))] = 1
        both = ctx.op("Concat", [x, y], {"axis": 1})
        return [ctx.op("Conv", [both, ctx.const(weight, "selector")], {"kernel_shape": [1, 1]})]
    mask = np.asarray(const_of(cond), dtype=bool)
    take_x = ctx.op("Mul", [x, ctx.const(mask.astype(dtype), "mask")])
    take_y = ctx.op("Mul", [y, ctx.const((~mask).astype(dtype), "inverse_mask")])
    return [ctx.op("Add", [take_x, take_y])]


RULE = Rule(id="where-to-conv", ops=("Where",),
            summary="Where(const cond, A, B) → Concat + 1x1 selector conv, or A·M + B·(1−M)",
            check=check, rewrite=rewrite)
