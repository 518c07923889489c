"""``Neg`` has no DLA unary layer, but a multiply by the constant −1 is a uniform Scale layer."""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import need_float, scalar


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    return need_float(node.inputs[0])


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    x = node.inputs[0]
    return [ctx.op("Mul", [x, scalar(ctx, x, -1.0, "minus_one")])]


RULE = Rule(id="neg-to-scale", ops=("Neg",), summary="Neg(x) → x·(−1)", check=check, rewrite=rewrite)
