"""GlobalAveragePool / GlobalMaxPool → an ordinary pool with kernel H×W, or a chain when H or W exceeds 8.

TensorRT turns global pools into Reduce layers, which DLA runs (if at all) only for max on recent releases; a pool
window of at most 8×8 (chained for larger maps, e.g. 56 = 8·7) keeps the layer on DLA and computes the same value.
An average over a map whose size has a prime factor above 8 (SqueezeNet's 13×13) becomes a depthwise convolution
with a uniform kernel instead, while the kernel stays within DLA's 32×32.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import (
    dims,
    need_float,
    pool_chain,
    pool_chain_reason,
    spatial_mean_conv,
    spatial_mean_conv_reason,
)

POOL = {"GlobalAveragePool": "AveragePool", "GlobalMaxPool": "MaxPool"}


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape = dims(x)
    if shape is None or len(shape) != 4:
        return "the input is not a static 4-D NCHW tensor"
    reason = pool_chain_reason(shape[2], shape[3])
    if reason and node.op_type == "GlobalAveragePool":
        other = spatial_mean_conv_reason(*shape[1:])
        return None if other is None else f"{reason}, and {other}"
    return reason


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    shape = dims(node.inputs[0]) or ()
    if pool_chain_reason(shape[2], shape[3]) is not None:
        return [spatial_mean_conv(ctx, node.inputs[0], *shape[1:])]
    return [pool_chain(ctx, node.inputs[0], shape[2], shape[3], POOL[node.op_type])]


RULE = Rule(id="global-pool-to-pool", ops=tuple(POOL), summary="Global{Average,Max}Pool → pool(s) with window ≤ 8",
            check=check, rewrite=rewrite)
