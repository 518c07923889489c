"""AveragePool with a window above DLA's 8 → a chain of non-overlapping pools, or a depthwise convolution.

Non-overlapping windows (stride = window, no padding) chain by factors of the window, as ``reduce-to-pool`` and
``global-pool-to-pool`` do for whole axes (the mean of equal-block means is the block mean). Any other geometry
is a depthwise convolution with a constant 1/(kh·kw) kernel and the pool's strides and padding: exact when padded
zeros count in the average (``count_include_pad=1``) or nothing is padded, within DLA's convolution limits
(kernel ≤ 32, stride ≤ 8, padding ≤ 31, from rules.toml).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._common import attr_int, numpy_dtype
from dlakit.rewrite.rules._large_pool import PoolShape, block_chain, ceil_changes_size, pool_shape
from dlakit.rewrite.rules._limits import channels_max, conv_kernel_max, conv_pad_max, conv_stride_max


def _conv_reason(node: ir.Node, geo: PoolShape) -> str | None:
    if any(geo.pads) and not attr_int(node, "count_include_pad", 0):
        return ("the pool pads and excludes the padding from its average (count_include_pad=0), so border "
                "windows have other divisors than a constant-weight convolution")
    if max(geo.kernel) > conv_kernel_max():
        return f"the {geo.kernel} window exceeds DLA's convolution kernel limit of {conv_kernel_max()}"
    if max(geo.strides) > conv_stride_max():
        return f"strides {geo.strides} exceed DLA's convolution stride limit of {conv_stride_max()}"
    if max(geo.pads) > conv_pad_max():
        return f"padding {geo.pads} exceeds DLA's convolution padding limit of {conv_pad_max()}"
    if geo.shape[1] > channels_max():
        return f"{geo.shape[1]} channels exceed DLA's {channels_max()}"
    return None


def _plan(node: ir.Node) -> tuple[PoolShape, list[tuple[int, int]] | None] | Answer:
    geo = pool_shape(node)
    if isinstance(geo, Answer):
        return geo
    if ceil_changes_size(node, geo):
        return "ceil_mode adds a partial window at the border, which neither a chain nor a convolution reproduces"
    blocks = block_chain(geo)
    if not isinstance(blocks, Answer):
        return geo, blocks
    reason = _conv_reason(node, geo)
    if reason:
        return f"no pooling chain fits ({blocks}), and as a depthwise convolution {reason}"
    return geo, None


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    return refusal_of(_plan(node))


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    plan = _plan(node)
    assert not isinstance(plan, Answer)
    geo, blocks = plan
    x = node.inputs[0]
    if blocks is not None:
        for h, w in blocks:
            x = ctx.op("AveragePool", [x], {"kernel_shape": [h, w], "strides": [h, w]})
        return [x]
    channels, (kh, kw) = geo.shape[1], geo.kernel
    weight = np.full((channels, 1, kh, kw), 1.0 / (kh * kw), dtype=numpy_dtype(x))
    attrs = {"kernel_shape": [kh, kw], "strides": geo.strides, "pads": geo.pads, "group": channels}
    return [ctx.op("Conv", [x, ctx.const(weight, "mean_weight")], attrs)]


RULE = Rule(id="avgpool-split", ops=("AveragePool",),
            summary="AveragePool window > 8 → chain of pools or depthwise conv with constant weights", check=check,
            rewrite=rewrite)
