"""SpaceToDepth → a stride-b b×b convolution whose one-hot weights move each pixel of a block to its channel.

Output channel ``(i·b+j)·C+c`` at (h, w) is input channel c at (h·b+i, w·b+j): a convolution with weight 1 at
[that channel, c, i, j]. DLA limits convolution strides to 8, hence blocksize ≤ 8.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import dims, need_float, numpy_dtype
from dlakit.rewrite.rules._limits import channels_max, conv_stride_max


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape = dims(x)
    if shape is None or len(shape) != 4:
        return "the input is not a static 4-D NCHW tensor"
    block = node.attributes.get_int("blocksize")
    if block > conv_stride_max():
        return f"blocksize {block} exceeds DLA's convolution stride limit of {conv_stride_max()}"
    if shape[1] * block * block > channels_max():
        return f"{shape[1] * block * block} output channels exceed DLA's {channels_max()}"
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    x = node.inputs[0]
    channels = (dims(x) or ())[1]
    block = node.attributes.get_int("blocksize")
    weight = np.zeros((channels * block * block, channels, block, block), dtype=numpy_dtype(x))
    for c in range(channels):
        for i in range(block):
            for j in range(block):
                weight[(i * block + j) * channels + c, c, i, j] = 1.0
    attrs = {"kernel_shape": [block, block], "strides": [block, block]}
    return [ctx.op("Conv", [x, ctx.const(weight, "weight")], attrs)]


RULE = Rule(id="space-to-depth-to-conv", ops=("SpaceToDepth",),
            summary="SpaceToDepth → strided conv with one-hot weights", check=check, rewrite=rewrite)
