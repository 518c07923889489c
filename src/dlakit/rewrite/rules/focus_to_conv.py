"""YOLOv5's Focus stem (four step-2 Slices of the image, concatenated on channels) → one strided convolution.

``cat(x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2])`` puts pixel (2h+dy, 2w+dx) of
channel c in output channel ``b·C + c`` at (h, w), where b is the slice's position in the Concat: a 2×2 stride-2
convolution with weight 1 at [b·C + c, c, dy, dx] and 0 elsewhere computes exactly that (one product by 1.0 per
output). DLA runs neither strided Slices (check's ``slice.static``) nor, in practice, the Concat of four GPU
tensors, so the whole stem otherwise starts the network on the GPU. Any step s ≤ 8 (the convolution stride limit,
rules.toml) and any set of offsets works, slice chains (one Slice per axis, as torch exports them) included.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._common import attr_int, const_of, dims, need_float, numpy_dtype
from dlakit.rewrite.rules._limits import channels_max, conv_stride_max

BIG = 2**62


def _slice_params(node: ir.Node, rank: int) -> dict[int, tuple[int, int, int]] | None:
    """{axis: (start, end, step)} of a Slice with constant bounds, or None."""
    if len(node.inputs) < 3:
        return None
    given = [node.inputs[i] if i < len(node.inputs) else None for i in range(1, 5)]
    starts, ends, axes, steps = (const_of(v) if v is not None else None for v in given)
    if starts is None or ends is None or any(v is not None and const_of(v) is None for v in given):
        return None
    starts, ends = starts.reshape(-1).tolist(), ends.reshape(-1).tolist()
    axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes.reshape(-1)]
    steps = [1] * len(starts) if steps is None else steps.reshape(-1).tolist()
    return {a: (int(s), int(e), int(t)) for a, s, e, t in zip(axes, starts, ends, steps, strict=True)}


def _trace(value: ir.Value) -> tuple[ir.Value, dict[int, tuple[int, int, int]]] | Answer:
    """Follow a chain of Slices back to its source; the per-axis (start, end, step) they apply."""
    params: dict[int, tuple[int, int, int]] = {}
    node = value.producer()
    if node is None or node.op_type != "Slice":
        return NO_MATCH
    while node is not None and node.op_type == "Slice":
        source = node.inputs[0]
        shape = dims(source)
        if shape is None or len(shape) != 4:
            return "a sliced tensor is not a static 4-D NCHW tensor"
        own = _slice_params(node, 4)
        if own is None:
            return f"Slice '{node.name}' has run-time bounds"
        for axis in own:
            if axis in params:
                return f"Slices '{node.name}' and a later one both slice axis {axis}"
        params.update(own)
        value, node = source, source.producer()
    return value, params


def _plan(node: ir.Node) -> tuple[ir.Value, tuple[int, int], list[tuple[int, int]]] | Answer:
    out = dims(node.outputs[0])
    if out is None or len(out) != 4 or attr_int(node, "axis", 0) % 4 != 1 or len(node.inputs) < 2:
        return NO_MATCH
    traces = [_trace(value) if value is not None else NO_MATCH for value in node.inputs]
    if any(t == NO_MATCH for t in traces):
        return NO_MATCH
    strided = [t for t in traces if not isinstance(t, Answer)
               and any(t[1].get(a, (0, 0, 1))[2] != 1 for a in (2, 3))]
    if not strided or len({id(t[0]) for t in strided}) > 1:
        return NO_MATCH  # no spatial step, or slices of different tensors: not a Focus stem
    source = strided[0][0]
    steps: tuple[int, int] | None = None
    offsets: list[tuple[int, int]] = []
    for traced in traces:
        if isinstance(traced, Answer):
            return traced
        x, params = traced
        if x is not source:
            return "the Concat joins slices of different tensors"
        shape = dims(x) or ()
        picks = []
        for axis in range(4):
            start, end, step = params.get(axis, (0, BIG, 1))
            start = start + shape[axis] if start < 0 else start
            if step < 1:
                return f"a Slice steps backwards on axis {axis}"
            if end < shape[axis]:
                return f"a Slice stops before the end of axis {axis} ({end} < {shape[axis]})"
            if axis < 2:
                if (start, step) != (0, 1):
                    return "a Slice cuts the batch or channel axis"
                continue
            if start >= step:
                return f"a Slice starts at {start} with step {step} on axis {axis}: not one phase of a block"
            if shape[axis] % step:
                return f"axis {axis} ({shape[axis]}) is not a multiple of the step {step}"
            picks.append((start, step))
        here = (picks[0][1], picks[1][1])
        if steps is not None and here != steps:
            return "the Slices use different steps"
        steps = here
        offsets.append((picks[0][0], picks[1][0]))
    assert steps is not None
    reason = need_float(source)
    if reason:
        return reason
    if max(steps) > conv_stride_max():
        return f"step {max(steps)} exceeds DLA's convolution stride limit of {conv_stride_max()}"
    channels = (dims(source) or ())[1]
    if channels * len(offsets) > channels_max():
        return f"{channels * len(offsets)} output channels exceed DLA's {channels_max()}"
    return source, steps, offsets


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    return refusal_of(_plan(node))


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    source, (sh, sw), offsets = _plan(node)  # type: ignore[misc]
    channels = (dims(source) or ())[1]
    weight = np.zeros((channels * len(offsets), channels, sh, sw), dtype=numpy_dtype(source))
    for b, (dy, dx) in enumerate(offsets):
        for c in range(channels):
            weight[b * channels + c, c, dy, dx] = 1.0
    attrs = {"kernel_shape": [sh, sw], "strides": [sh, sw]}
    return [ctx.op("Conv", [source, ctx.const(weight, "focus_weight")], attrs)]


RULE = Rule(id="focus-to-conv", ops=("Concat",),
            summary="Focus stem (step-2 Slices + Concat) → 2×2 stride-2 conv with one-hot weights", check=check,
            rewrite=rewrite)
