"""``Identity`` computes nothing; removing it lets neighbouring DLA layers join one loadable.

Before a model output, the producer's tensor takes over the output's name, so the model's interface is unchanged.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    x, out = node.inputs[0], node.outputs[0]
    if x is None:
        return "it has no input"
    if out.is_graph_output() and (x.producer() is None or x.is_graph_output()):
        return ("it passes a model input or another model output straight to a model output; removing it would "
                "merge or rename the model's outputs")
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    return [node.inputs[0]]


RULE = Rule(id="identity-removal", ops=("Identity",), summary="Identity(x) → x", check=check, rewrite=rewrite)
