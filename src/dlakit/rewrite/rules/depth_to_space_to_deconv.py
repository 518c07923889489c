"""DepthToSpace → a stride-b ConvTranspose with one-hot b×b kernels (NVIDIA's recipe), for DCR and CRD.

Output pixel (h·b+i, w·b+j) of channel c is input channel ``(i·b+j)·C'+c`` (DCR) or ``c·b²+i·b+j`` (CRD) at (h, w):
exactly what a deconvolution with kernel = stride = b computes when its weight is 1 at [that channel, c, i, j].
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import dims, need_float, numpy_dtype
from dlakit.rewrite.rules._limits import channels_max, deconv_kernel_max


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape = dims(x)
    if shape is None or len(shape) != 4:
        return "the input is not a static 4-D NCHW tensor"
    block = node.attributes.get_int("blocksize")
    if block > deconv_kernel_max():
        return f"blocksize {block} exceeds DLA's deconvolution kernel/stride limit of {deconv_kernel_max()}"
    if shape[1] > channels_max():
        return f"{shape[1]} input channels exceed DLA's {channels_max()}"
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    x = node.inputs[0]
    channels = (dims(x) or ())[1]
    block = node.attributes.get_int("blocksize")
    mode = node.attributes.get_string("mode", "DCR")
    out_channels = channels // (block * block)
    weight = np.zeros((channels, out_channels, block, block), dtype=numpy_dtype(x))
    for c in range(out_channels):
        for i in range(block):
            for j in range(block):
                source = (i * block + j) * out_channels + c if mode == "DCR" else c * block * block + i * block + j
                weight[source, c, i, j] = 1.0
    attrs = {"kernel_shape": [block, block], "strides": [block, block]}
    return [ctx.op("ConvTranspose", [x, ctx.const(weight, "weight")], attrs)]


RULE = Rule(id="depth-to-space-to-deconv", ops=("DepthToSpace",),
            summary="DepthToSpace (DCR/CRD) → ConvTranspose with one-hot kernels", check=check, rewrite=rewrite)
