"""Boolean logic on DLA: DLA has no boolean tensors, but on 0/1 values logic is arithmetic.

NVIDIA's reconstructions compute And as a product, Or as a maximum, Xor as a squared difference and Not as ``1 - x``
(a Scale layer). The boolean inputs are cast to float and the result back to bool so the graph keeps its types;
in a real network the bool comes from a comparison whose output TensorRT must cast anyway.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import scalar

FLOAT = ir.DataType.FLOAT


def check_bool(node: ir.Node, ctx: RuleContext) -> str | None:
    for value in node.inputs:
        if value is None or value.dtype is None:
            return "an input's type is unknown"
        if value.dtype != ir.DataType.BOOL:
            return f"input '{value.name}' is {value.dtype.name}, not BOOL"
    return None


def cast(ctx: RuleContext, value: ir.Value, to: ir.DataType) -> ir.Value:
    """Cast in the opset's form (before opset 6, ``to`` was a type name string)."""
    out = ctx.op("Cast", [value], {"to": to.name if ctx.opset < 6 else to})
    out.dtype = to
    return out


def as_float(ctx: RuleContext, value: ir.Value) -> ir.Value:
    return cast(ctx, value, FLOAT)


def logic_rule(rule_id: str, op: str, summary: str,
               body: Callable[[RuleContext, list[ir.Value]], ir.Value]) -> Rule:
    def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
        values = [as_float(ctx, v) for v in node.inputs if v is not None]
        return [cast(ctx, body(ctx, values), ir.DataType.BOOL)]

    return Rule(id=rule_id, ops=(op,), summary=summary, check=check_bool, rewrite=rewrite)


def one_minus(ctx: RuleContext, value: ir.Value) -> ir.Value:
    negated = ctx.op("Mul", [value, scalar(ctx, value, -1.0, "minus_one")])
    return ctx.op("Add", [negated, scalar(ctx, value, 1.0, "one")])
