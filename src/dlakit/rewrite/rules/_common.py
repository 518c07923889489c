"""Building blocks shared by the rules: shape look-ups, opset-aware emitters, the selection convolution.

The *selection convolution* is the workhorse of NVIDIA's reconstructions: any linear map along one axis with a
constant matrix (gather, scatter, cumulative sum, channel mean) becomes a 1x1 convolution once that axis is put in
the channel position by a Reshape to ``[prod(before), D, prod(after), 1]``. With one-hot weights it is exact (each
output is one input times 1.0 plus zeros), and it uses only layers DLA runs (Shuffle and Convolution).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from dlakit.model import constant_array, is_constant, static_dims
from dlakit.rewrite.engine import RuleContext
from dlakit.rewrite.rules._limits import channels_max, conv_kernel_max, pool_window_max

FLOAT_TYPES = (ir.DataType.FLOAT, ir.DataType.FLOAT16)


def dims(value: ir.Value | None) -> tuple[int, ...] | None:
    return None if value is None else static_dims(value)


def numpy_dtype(value: ir.Value) -> np.dtype:
    return value.dtype.numpy() if value.dtype is not None else np.dtype(np.float32)


def need_float(value: ir.Value | None, what: str = "input") -> str | None:
    """Reason to refuse when a tensor is not FP32/FP16: DLA computes only in FP16/INT8."""
    if value is None or value.dtype is None:
        return f"the {what}'s type is unknown"
    if value.dtype not in FLOAT_TYPES:
        return f"the {what} is {value.dtype.name}; DLA computes only FP16/INT8, so only float tensors are rewritten"
    return None


def need_static(*values: ir.Value | None) -> str | None:
    for value in values:
        if value is not None and dims(value) is None:
            return f"tensor '{value.name}' has no static shape (give --shapes)"
    return None


def float_nchw_io(node: ir.Node) -> tuple[tuple[int, ...], tuple[int, ...]] | str:
    """(input dims, output dims) of a node on a static 4-D float NCHW tensor, or why it is not one."""
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape, out = dims(x), dims(node.outputs[0])
    if shape is None or len(shape) != 4 or out is None:
        return "the input is not a static 4-D NCHW tensor (give --shapes)"
    return shape, out


def const_of(value: ir.Value | None) -> np.ndarray | None:
    """The value of a build-time constant, or None if it is not constant or its value is unknown."""
    if value is None or not is_constant(value):
        return None
    return constant_array(value)


def attr_int(node: ir.Node, name: str, default: int) -> int:
    return node.attributes.get_int(name, default)


def attr_ints(node: ir.Node, name: str, default: Sequence[int] | None = None) -> list[int] | None:
    attr = node.attributes.get(name)
    if attr is None:
        return None if default is None else list(default)
    return [int(v) for v in attr.value]


def reshape(ctx: RuleContext, x: ir.Value, shape: Sequence[int]) -> ir.Value:
    return ctx.op("Reshape", [x, ctx.const(np.array(list(shape), dtype=np.int64), "shape")])


def clip(ctx: RuleContext, x: ir.Value, low: float, high: float) -> ir.Value:
    """Clip in the form of the model's opset (attributes before opset 11, inputs after)."""
    if ctx.opset < 11:
        return ctx.op("Clip", [x], {"min": float(low), "max": float(high)})
    dtype = numpy_dtype(x) if x.dtype is not None else np.float32
    return ctx.op("Clip", [x, ctx.const(np.array(low, dtype=dtype), "min"),
                           ctx.const(np.array(high, dtype=dtype), "max")])


def scalar(ctx: RuleContext, like: ir.Value, number: float, hint: str = "scalar") -> ir.Value:
    return ctx.const(np.array(number, dtype=numpy_dtype(like)), hint)


def selection_limit(depth: int, count: int) -> str | None:
    if depth > channels_max() or count > channels_max():
        return (f"the selection convolution would need {depth} input / {count} output channels, above DLA's "
                f"{channels_max()}")
    return None


def _channel_layout(shape: Sequence[int], axis: int) -> tuple[list[int] | None, list[int]]:
    """(transpose perm or None, 4-D view) that puts ``axis`` in channel position and keeps axis 0 as the batch.

    TensorRT's DLA shuffles may not move or merge the batch axis (check's ``shuffle.batch-axis``), so the view is
    ``[S0, S_axis, rest, 1]`` with a Transpose when the axis is not already second. Only a map along axis 0 itself
    has to make it the channels of a batch-1 view.
    """
    rank = len(shape)
    if axis == 0:
        return None, [1, shape[0], int(np.prod(shape[1:], dtype=np.int64)), 1]
    rest = int(np.prod([s for i, s in enumerate(shape) if i not in (0, axis)], dtype=np.int64))
    perm = None if axis == 1 else [0, axis, *(i for i in range(1, rank) if i != axis)]
    return perm, [shape[0], shape[axis], rest, 1]


def channel_view(ctx: RuleContext, x: ir.Value, shape: Sequence[int], axis: int) -> ir.Value:
    """``x`` as a 4-D tensor whose channels are ``axis``."""
    axis %= len(shape)
    if len(shape) == 4 and axis == 1:
        return x
    perm, view = _channel_layout(shape, axis)
    if perm is not None:
        x = ctx.op("Transpose", [x], {"perm": perm})
    return reshape(ctx, x, view)


def from_channel_view(ctx: RuleContext, y: ir.Value, shape: Sequence[int], axis: int, count: int) -> ir.Value:
    """Undo :func:`channel_view` for a result with ``count`` channels."""
    axis %= len(shape)
    if len(shape) == 4 and axis == 1:
        return y
    out_shape = [*shape[:axis], count, *shape[axis + 1:]]
    perm, _ = _channel_layout(shape, axis)
    if perm is None:
        return reshape(ctx, y, out_shape)
    y = reshape(ctx, y, [out_shape[p] for p in perm])
    return ctx.op("Transpose", [y], {"perm": [int(i) for i in np.argsort(perm)]})


def axis_linear_map(ctx: RuleContext, x: ir.Value, shape: Sequence[int], axis: int,
                    matrix: np.ndarray, bias: np.ndarray | None = None) -> ir.Value:
    """``y[..., k, ...] = sum_d matrix[k, d] * x[..., d, ...]`` along ``axis``, as a 1x1 convolution.

    ``shape`` is ``x``'s static shape; the result has ``shape`` with ``shape[axis]`` replaced by ``matrix.shape[0]``.
    """
    axis %= len(shape)
    count, depth = matrix.shape
    dtype = numpy_dtype(x)
    inputs = [channel_view(ctx, x, shape, axis), ctx.const(matrix.reshape(count, depth, 1, 1).astype(dtype), "weight")]
    if bias is not None:
        inputs.append(ctx.const(bias.astype(dtype), "bias"))
    conv = ctx.op("Conv", inputs, {"kernel_shape": [1, 1]})
    return from_channel_view(ctx, conv, shape, axis, count)


def one_hot_rows(indices: Sequence[int], depth: int) -> np.ndarray:
    """Matrix whose row k selects element ``indices[k]``."""
    matrix = np.zeros((len(indices), depth), dtype=np.float32)
    matrix[np.arange(len(indices)), np.asarray(indices, dtype=np.int64)] = 1.0
    return matrix


def slice_(ctx: RuleContext, x: ir.Value, starts: Sequence[int], ends: Sequence[int],
           axes: Sequence[int]) -> ir.Value:
    if ctx.opset < 10:
        return ctx.op("Slice", [x], {"starts": list(starts), "ends": list(ends), "axes": list(axes)})
    i64 = np.int64
    return ctx.op("Slice", [x, ctx.const(np.array(starts, dtype=i64), "starts"),
                            ctx.const(np.array(ends, dtype=i64), "ends"),
                            ctx.const(np.array(axes, dtype=i64), "axes")])


def reduce_axes(node: ir.Node) -> tuple[list[int] | None, str | None]:
    """Axes of a Reduce* node (attribute before opset 18, input after); None means all axes."""
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        array = const_of(node.inputs[1])
        if array is None:
            return None, "the axes input is not a build-time constant"
        return [int(a) for a in array.reshape(-1)], None
    return attr_ints(node, "axes"), None


def pool_factors(size: int, limit: int | None = None) -> list[int] | None:
    """Split ``size`` into factors each ≤ ``limit`` (default DLA's pool window, from rules.toml; largest first);
    None if a prime factor exceeds it."""
    if limit is None:
        limit = pool_window_max()
    factors: list[int] = []
    rest = size
    while rest > limit:
        for f in range(limit, 1, -1):
            if rest % f == 0:
                factors.append(f)
                rest //= f
                break
        else:
            return None
    if rest > 1 or not factors:
        factors.append(rest)
    return factors


def pool_chain(ctx: RuleContext, x: ir.Value, height: int, width: int, op: str) -> ir.Value:
    """Average or max over the whole H×W as a chain of DLA-sized pools (window ≤ 8, non-overlapping)."""
    fh, fw = pool_factors(height) or [height], pool_factors(width) or [width]
    steps = max(len(fh), len(fw))
    fh += [1] * (steps - len(fh))
    fw += [1] * (steps - len(fw))
    for kh, kw in zip(fh, fw, strict=True):
        x = ctx.op(op, [x], {"kernel_shape": [kh, kw], "strides": [kh, kw]})
    return x


def pool_chain_reason(height: int, width: int) -> str | None:
    for name, size in (("H", height), ("W", width)):
        if pool_factors(size) is None:
            return (f"{name}={size} has a prime factor above 8, so no chain of DLA pooling windows (≤ 8) covers it "
                    "exactly")
    return None




def spatial_mean_conv(ctx: RuleContext, x: ir.Value, channels: int, height: int, width: int) -> ir.Value:
    """Mean over H×W as a depthwise convolution with a uniform kernel: the fallback when no pool chain fits
    (e.g. SqueezeNet's 13×13), valid while the kernel stays within DLA's 32×32."""
    weight = np.full((channels, 1, height, width), 1.0 / (height * width), dtype=numpy_dtype(x))
    return ctx.op("Conv", [x, ctx.const(weight, "mean_weight")],
                  {"kernel_shape": [height, width], "group": channels})


def spatial_mean_conv_reason(channels: int, height: int, width: int) -> str | None:
    if max(height, width) > conv_kernel_max():
        return f"a {height}x{width} mean kernel exceeds DLA's convolution kernel limit of {conv_kernel_max()}"
    if channels > channels_max():
        return f"{channels} channels exceed DLA's {channels_max()} groups"
    return None
