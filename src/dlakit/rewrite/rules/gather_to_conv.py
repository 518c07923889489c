"""Gather / GatherElements / GatherND with constant indices → a selection convolution (or a Slice).

Whatever the axis, a gather with constant indices is a one-hot linear map along that axis, which
:func:`axis_linear_map` turns into a 1x1 convolution (NVIDIA's recipe for channel gathers, generalised by putting the
gathered axis in channel position with Reshapes). A contiguous run of indices on a non-batch axis is just a Slice.
GatherElements qualifies when its indices are the same at every position of the other axes (then it is a Gather);
otherwise, on a short axis, it becomes a masked sum of the axis' slices (Slice, constant Prod and Sum layers).
GatherND qualifies when its index tuples are the same across the batch dims (a Gather over the flattened axes).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import (
    axis_linear_map,
    const_of,
    dims,
    need_float,
    numpy_dtype,
    one_hot_rows,
    reshape,
    selection_limit,
    slice_,
)

#: an element-wise GatherElements costs one Slice, Mul and Add per entry of the gathered axis
MAX_MASKED_DEPTH = 16


def _plan(node: ir.Node) -> tuple[tuple[int, ...], int, np.ndarray, tuple[int, ...]] | str:
    """(data shape to gather from, axis, flat indices, output shape) or the reason why not."""
    data = node.inputs[0]
    reason = need_float(data, "data")
    if reason:
        return reason
    shape, out = dims(data), dims(node.outputs[0])
    if shape is None or out is None:
        return "the data or output shape is not static (give --shapes)"
    indices = const_of(node.inputs[1])
    if indices is None:
        return "the indices are computed at run time; only constant indices make a fixed selection"
    indices = indices.astype(np.int64)
    if node.op_type == "GatherND":
        return _plan_nd(node, shape, indices, out)
    axis = node.attributes.get_int("axis", 0) % len(shape)
    depth = shape[axis]
    if np.any(indices >= depth) or np.any(indices < -depth):
        return f"an index is outside [-{depth}, {depth - 1}]"
    indices = np.where(indices < 0, indices + depth, indices)
    if node.op_type == "GatherElements":
        if indices.shape[:axis] + indices.shape[axis + 1:] != shape[:axis] + shape[axis + 1:]:
            return "the indices are smaller than the data on the non-gathered axes (a partial element-wise gather)"
        rows = np.moveaxis(indices, axis, -1).reshape(-1, indices.shape[axis])
        if not np.all(rows == rows[:1]):
            if depth > MAX_MASKED_DEPTH:
                return (f"the indices differ between positions of the other axes (an element-wise gather) and the "
                        f"axis has {depth} > {MAX_MASKED_DEPTH} entries for a masked sum")
            return "masked"
        indices = rows[0]
    return shape, axis, indices.reshape(-1), out


def _plan_nd(node: ir.Node, shape: tuple[int, ...], indices: np.ndarray,
             out: tuple[int, ...]) -> tuple[tuple[int, ...], int, np.ndarray, tuple[int, ...]] | str:
    batch = node.attributes.get_int("batch_dims", 0)
    depth = indices.shape[-1]
    spans = shape[batch:batch + depth]
    if np.any(indices >= np.array(spans)) or np.any(indices < -np.array(spans)):
        return "an index is outside the data's dimensions"
    indices = np.where(indices < 0, indices + np.array(spans), indices)
    tuples = indices.reshape(int(np.prod(indices.shape[:batch], dtype=np.int64)), -1, depth)
    if not np.all(tuples == tuples[:1]):
        return "the index tuples differ across the batch dims; only a batch-independent GatherND is a fixed selection"
    flat = np.ravel_multi_index(tuple(tuples[0].T), spans)
    merged = (*shape[:batch], int(np.prod(spans, dtype=np.int64)), *shape[batch + depth:])
    return merged, batch, flat, out


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    plan = _plan(node)
    if plan == "masked":
        return None
    if isinstance(plan, Answer):
        return plan
    shape, axis, indices, _ = plan
    if _contiguous(indices) and axis > 0:
        return None
    return selection_limit(shape[axis], indices.size)


def _contiguous(indices: np.ndarray) -> bool:
    return indices.size > 0 and bool(np.all(np.diff(indices) == 1))


def _masked_sum(node: ir.Node, ctx: RuleContext) -> ir.Value:
    """Element-wise GatherElements: ``Σ_d (indices == d) ⊙ data[d]`` with each data slice broadcast along the axis.

    Exactly one mask is 1 at every position, so the sum is the picked element (plus zeros).
    """
    data = node.inputs[0]
    shape = dims(data) or ()
    axis = node.attributes.get_int("axis", 0) % len(shape)
    depth = shape[axis]
    indices = const_of(node.inputs[1]).astype(np.int64)
    indices = np.where(indices < 0, indices + depth, indices)
    dtype = numpy_dtype(data)
    total = None
    for d in range(depth):
        mask = (indices == d).astype(dtype)
        if not mask.any():
            continue
        term = ctx.op("Mul", [slice_(ctx, data, [d], [d + 1], [axis]), ctx.const(mask, "mask")])
        total = term if total is None else ctx.op("Add", [total, term])
    return total


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    plan = _plan(node)
    if plan == "masked":
        return [_masked_sum(node, ctx)]
    assert not isinstance(plan, Answer)
    shape, axis, indices, out = plan
    data = node.inputs[0]
    if dims(data) != shape:
        data = reshape(ctx, data, shape)
    if _contiguous(indices) and axis > 0:
        picked = slice_(ctx, data, [int(indices[0])], [int(indices[-1]) + 1], [axis])
    else:
        picked = axis_linear_map(ctx, data, shape, axis, one_hot_rows(indices, shape[axis]))
    gathered = (*shape[:axis], indices.size, *shape[axis + 1:])
    return [picked if gathered == out else reshape(ctx, picked, out)]


RULE = Rule(id="gather-to-conv", ops=("Gather", "GatherElements", "GatherND"),
            summary="Gather* with constant indices → one-hot 1x1 selection conv (or Slice)",
            check=check, rewrite=rewrite)
