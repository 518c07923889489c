"""HardSwish has no DLA activation; x·ReLU6(x+3)/6 uses a Scale, a clipped ReLU (clip 6) and a Prod."""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import clip, need_float, scalar


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    return need_float(node.inputs[0])


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    x = node.inputs[0]
    shifted = ctx.op("Add", [x, scalar(ctx, x, 3.0, "three")])
    gate = ctx.op("Mul", [clip(ctx, shifted, 0.0, 6.0), scalar(ctx, x, 1.0 / 6.0, "sixth")])
    return [ctx.op("Mul", [x, gate])]


RULE = Rule(id="hardswish-decompose", ops=("HardSwish",), summary="HardSwish → Add(3)·Clip(0,6)·Mul(1/6)·Mul(x)",
            check=check, rewrite=rewrite)
