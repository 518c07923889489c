"""CumSum along a constant axis → a 1x1 convolution with a triangular 0/1 matrix along that axis.

A cumulative sum is a fixed linear map (lower-triangular ones; strict for ``exclusive``, flipped for ``reverse``),
so :func:`axis_linear_map` runs it as a convolution DLA accepts.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import axis_linear_map, const_of, dims, need_float, selection_limit


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape = dims(x)
    if shape is None:
        return "the input shape is not static (give --shapes)"
    if const_of(node.inputs[1]) is None:
        return "the axis is computed at run time"
    axis = int(const_of(node.inputs[1]).reshape(-1)[0]) % len(shape)
    return selection_limit(shape[axis], shape[axis])


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    x = node.inputs[0]
    shape = dims(x) or ()
    axis = int(const_of(node.inputs[1]).reshape(-1)[0]) % len(shape)
    depth = shape[axis]
    rows, cols = np.indices((depth, depth))
    reverse = node.attributes.get_int("reverse", 0)
    exclusive = node.attributes.get_int("exclusive", 0)
    take = (cols >= rows) if reverse else (cols <= rows)
    if exclusive:
        take &= cols != rows
    return [axis_linear_map(ctx, x, shape, axis, take.astype(np.float32))]


RULE = Rule(id="cumsum-to-conv", ops=("CumSum",), summary="CumSum → 1x1 conv with a triangular matrix",
            check=check, rewrite=rewrite)
