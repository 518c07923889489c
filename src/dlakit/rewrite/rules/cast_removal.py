"""A Cast to the type its input already has computes nothing (TF exports leave them: ``Cast(to=FLOAT)`` on floats).

Cast is not a DLA layer: a no-op Cast between DLA layers splits the loadable and costs two transitions. Removing it
is exact; before a model output the producer's tensor takes over the output's name.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules import identity_removal


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    x = node.inputs[0]
    if x is None or x.dtype is None:
        return NO_MATCH
    target = node.inputs[1].dtype if node.op_type == "CastLike" and len(node.inputs) > 1 and node.inputs[1] else None
    if node.op_type == "Cast":
        to = node.attributes.get_int("to", 0)
        target = ir.DataType(to) if to else None
    if target is None or target != x.dtype:
        return NO_MATCH
    return identity_removal.check(node, ctx)  # a pass-through from now on, with Identity's one exception


RULE = Rule(id="cast-removal", ops=("Cast", "CastLike"), summary="Cast(x, to=type of x) → x",
            check=check, rewrite=identity_removal.rewrite, report_refusals=False)
