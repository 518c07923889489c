"""HardSigmoid has no DLA activation; max(0, min(1, αx+β)) is a Scale layer and a clipped ReLU (clip 1)."""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import clip, need_float, scalar


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    return need_float(node.inputs[0])


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    x = node.inputs[0]
    alpha = node.attributes.get_float("alpha", 0.2)
    beta = node.attributes.get_float("beta", 0.5)
    scaled = ctx.op("Add", [ctx.op("Mul", [x, scalar(ctx, x, alpha, "alpha")]), scalar(ctx, x, beta, "beta")])
    return [clip(ctx, scaled, 0.0, 1.0)]


RULE = Rule(id="hardsigmoid-decompose", ops=("HardSigmoid",), summary="HardSigmoid → Mul(α)+Add(β) → Clip(0,1)",
            check=check, rewrite=rewrite)
