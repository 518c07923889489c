"""ReduceMean / ReduceMax / ReduceMin / ReduceSum over contiguous non-batch axes → pooling or a 1x1 convolution.

DLA pools over H and W with windows of at most 8, so a reduction over a spatial extent is a chain of
non-overlapping pools whose windows multiply to the extent (the mean of equal-block means is the mean; the max of
maxima is the max). Reductions over other axes are first reshaped so the reduced axes become H. Sums are means
times the count; a Min is ``−max(−x)``. Mean and sum over channels of NCHW use a 1x1 convolution with constant
weights instead, which DLA runs natively.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import (
    axis_linear_map,
    dims,
    need_float,
    pool_chain,
    pool_factors,
    reduce_axes,
    reshape,
    scalar,
    selection_limit,
    spatial_mean_conv,
    spatial_mean_conv_reason,
)

POOL = {"ReduceMean": "AveragePool", "ReduceSum": "AveragePool", "ReduceMax": "MaxPool", "ReduceMin": "MaxPool"}


def _plan(node: ir.Node) -> tuple[tuple[int, ...], list[int]] | str:
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape = dims(x)
    if shape is None or dims(node.outputs[0]) is None:
        return "the input or output shape is not static (give --shapes)"
    if 0 in shape:
        return "the input is empty"
    axes, reason = reduce_axes(node)
    if reason:
        return reason
    if not axes:
        if node.attributes.get_int("noop_with_empty_axes", 0):
            return "it reduces no axis (noop_with_empty_axes); nothing to rewrite"
        axes = list(range(len(shape)))
    axes = sorted({a % len(shape) for a in axes})
    if 0 in axes:
        return "it reduces over the batch axis 0, which DLA pooling and convolution never mix"
    if axes != list(range(axes[0], axes[-1] + 1)):
        return f"the axes {axes} are not contiguous"
    return shape, axes


def _uses_conv(node: ir.Node, shape: tuple[int, ...], axes: list[int]) -> bool:
    spatial = len(shape) == 4 and axes[0] >= 2
    if spatial or node.op_type in ("ReduceMax", "ReduceMin"):
        return False
    return pool_factors(int(np.prod([shape[a] for a in axes]))) is None or (len(shape) == 4 and axes == [1])


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    plan = _plan(node)
    if isinstance(plan, Answer):
        return plan
    shape, axes = plan
    extent = int(np.prod([shape[a] for a in axes]))
    if _uses_conv(node, shape, axes):
        return selection_limit(extent, 1)
    sizes = [shape[a] for a in (2, 3) if a in axes] if len(shape) == 4 and axes[0] >= 2 else [extent]
    for size in sizes:
        if pool_factors(size) is None:
            reason = (f"the reduced extent {size} has a prime factor above 8, so no chain of DLA pooling windows "
                      "(≤ 8) covers it exactly")
            window = _mean_window(node, shape, axes)
            if window is None:
                return reason
            other = spatial_mean_conv_reason(shape[1], *window)
            return None if other is None else f"{reason}, and {other}"
    return None


def _mean_window(node: ir.Node, shape: tuple[int, ...], axes: list[int]) -> tuple[int, int] | None:
    """The depthwise-convolution window of a spatial mean/sum no pool chain covers (SqueezeNet's 13×13)."""
    if node.op_type not in ("ReduceMean", "ReduceSum") or len(shape) != 4 or axes[0] < 2:
        return None
    if all(pool_factors(shape[a]) is not None for a in axes):
        return None
    return (shape[2] if 2 in axes else 1, shape[3] if 3 in axes else 1)


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    plan = _plan(node)
    assert not isinstance(plan, Answer)
    shape, axes = plan
    x = node.inputs[0]
    out = dims(node.outputs[0]) or ()
    extent = int(np.prod([shape[a] for a in axes]))
    if _uses_conv(node, shape, axes):
        merged = (*shape[:axes[0]], extent, *shape[axes[-1] + 1:])
        source = x if merged == shape else reshape(ctx, x, merged)
        weight = np.full((1, extent), 1.0 if node.op_type == "ReduceSum" else 1.0 / extent, dtype=np.float32)
        y = axis_linear_map(ctx, source, merged, axes[0], weight)
        return [reshape(ctx, y, out)]
    window = _mean_window(node, shape, axes)
    if window is not None:
        y = spatial_mean_conv(ctx, x, shape[1], *window)
        if node.op_type == "ReduceSum":
            y = ctx.op("Mul", [y, scalar(ctx, x, float(window[0] * window[1]), "count")])
        pooled = tuple(1 if a in axes else s for a, s in enumerate(shape))
        return [y if pooled == out else reshape(ctx, y, out)]
    negate = node.op_type == "ReduceMin"
    if negate:
        x = ctx.op("Mul", [x, scalar(ctx, x, -1.0, "minus_one")])
    if len(shape) == 4 and axes[0] >= 2:
        y = pool_chain(ctx, x, shape[2] if 2 in axes else 1, shape[3] if 3 in axes else 1, POOL[node.op_type])
        pooled = tuple(1 if a in axes else s for a, s in enumerate(shape))
    else:
        # [S0, middle, extent, after]: the batch axis stays first (DLA shuffles may not touch it)
        middle = int(np.prod(shape[1:axes[0]], dtype=np.int64))
        after = int(np.prod(shape[axes[-1] + 1:], dtype=np.int64))
        y = pool_chain(ctx, reshape(ctx, x, [shape[0], middle, extent, after]), extent, 1, POOL[node.op_type])
        pooled = (shape[0], middle, 1, after)
    if negate:
        y = ctx.op("Mul", [y, scalar(ctx, x, -1.0, "minus_one")])
    if node.op_type == "ReduceSum":
        y = ctx.op("Mul", [y, scalar(ctx, x, float(extent), "count")])
    return [y if pooled == out else reshape(ctx, y, out)]


RULE = Rule(id="reduce-to-pool", ops=tuple(POOL),
            summary="Reduce{Mean,Max,Min,Sum} → pooling chain (H,W) or 1x1 conv (C)", check=check, rewrite=rewrite)
