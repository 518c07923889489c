"""MaxPool with a window above DLA's 8 (SPP's 9×9 / 13×13, stride 1, 'same' padding) → a chain of smaller pools.

A stride-1 max over 9 rows is the max over 5 rows of maxima over 5 rows (spans 4 + 4), with the padding split
between the two pools; borders stay exact because max pooling pads with −∞. 13×13 becomes 7∘7. Non-overlapping
windows (stride = window) chain by factors instead (max of block maxima). See ``_large_pool`` for the proofs.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._large_pool import block_chain, ceil_changes_size, pool_shape, span_chain


def _plan(node: ir.Node) -> list[dict] | Answer:
    geo = pool_shape(node)
    if isinstance(geo, Answer):
        return geo
    if ceil_changes_size(node, geo):
        return "ceil_mode adds a partial window at the border, which no chain of full windows reproduces"
    if geo.strides == geo.kernel and not any(geo.pads):
        blocks = block_chain(geo)
        if isinstance(blocks, Answer):
            return blocks
        return [{"kernel_shape": [h, w], "strides": [h, w]} for h, w in blocks]
    chain = span_chain(geo)
    if isinstance(chain, Answer):
        return chain
    return [{"kernel_shape": k, "strides": [1, 1], "pads": p} for k, p in chain]


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    return refusal_of(_plan(node))


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    plan = _plan(node)
    assert not isinstance(plan, Answer)
    x = node.inputs[0]
    for attrs in plan:
        x = ctx.op("MaxPool", [x], attrs)
    return [x]


RULE = Rule(id="maxpool-chain", ops=("MaxPool",),
            summary="MaxPool window > 8 (SPP 9×9, 13×13) → chain of pools within DLA's window", check=check,
            rewrite=rewrite)
