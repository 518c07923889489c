"""ScatterElements with constant indices → Concat(data, updates) + a 1x1 selection convolution.

When the indices are the same at every position of the non-scattered axes, each output slice along the axis is
either the data's own slice or one of the updates' slices (the last write wins, as ONNX Runtime does; with
``reduction="add"`` the updates are summed in). That is a constant linear map over the concatenation of data and
updates along the axis: NVIDIA's ScatterElements recipe, generalised to any axis by the same Reshape trick as the
gather rule.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import (
    channel_view,
    const_of,
    dims,
    from_channel_view,
    need_float,
    numpy_dtype,
    selection_limit,
)


def _plan(node: ir.Node) -> tuple[tuple[int, ...], tuple[int, ...], int, np.ndarray] | str:
    data, indices_value, updates = node.inputs[:3]
    for value, what in ((data, "data"), (updates, "updates")):
        reason = need_float(value, what)
        if reason:
            return reason
    reduction = node.attributes.get_string("reduction", "none")
    if reduction not in ("none", "add"):
        return f"reduction '{reduction}' is not linear, so no convolution reproduces it"
    shape, upd_shape = dims(data), dims(updates)
    if shape is None or upd_shape is None:
        return "the data or updates shape is not static (give --shapes)"
    indices = const_of(indices_value)
    if indices is None:
        return "the indices are computed at run time; only constant indices make a fixed scatter"
    axis = node.attributes.get_int("axis", 0) % len(shape)
    if upd_shape[:axis] + upd_shape[axis + 1:] != shape[:axis] + shape[axis + 1:]:
        return "the updates do not cover the data on the non-scattered axes (a partial element-wise scatter)"
    depth = shape[axis]
    indices = indices.astype(np.int64)
    if np.any(indices >= depth) or np.any(indices < -depth):
        return f"an index is outside [-{depth}, {depth - 1}]"
    indices = np.where(indices < 0, indices + depth, indices)
    rows = np.moveaxis(indices, axis, -1).reshape(-1, indices.shape[axis])
    if not np.all(rows == rows[:1]):
        return "the indices differ between positions of the other axes: an element-wise scatter"
    count = upd_shape[axis]
    matrix = np.zeros((depth, depth + count), dtype=np.float32)
    if reduction == "none":
        matrix[np.arange(depth), np.arange(depth)] = 1.0
        for j, k in enumerate(rows[0]):  # a later update to the same index overwrites an earlier one
            matrix[k, :] = 0.0
            matrix[k, depth + j] = 1.0
    else:
        matrix[np.arange(depth), np.arange(depth)] = 1.0
        for j, k in enumerate(rows[0]):
            matrix[k, depth + j] += 1.0
    return shape, upd_shape, axis, matrix


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    plan = _plan(node)
    if isinstance(plan, Answer):
        return plan
    _, _, _, matrix = plan
    return selection_limit(matrix.shape[1], matrix.shape[0])


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    plan = _plan(node)
    assert not isinstance(plan, Answer)
    shape, upd_shape, axis, matrix = plan
    data, updates = node.inputs[0], node.inputs[2]
    weight = ctx.const(matrix.reshape(*matrix.shape, 1, 1).astype(numpy_dtype(data)), "selector")
    both = ctx.op("Concat", [channel_view(ctx, data, shape, axis), channel_view(ctx, updates, upd_shape, axis)],
                  {"axis": 1})
    conv = ctx.op("Conv", [both, weight], {"kernel_shape": [1, 1]})
    return [from_channel_view(ctx, conv, shape, axis, shape[axis])]


RULE = Rule(id="scatter-elements-to-conv", ops=("ScatterElements",),
            summary="ScatterElements with constant indices → Concat + 1x1 selection conv",
            check=check, rewrite=rewrite)
