"""Back-to-back Reshapes become one; a Reshape to the shape its input already has disappears.

DLA's compiler does not fuse adjacent shuffles, and lifting ops to 4-D (and other rules) leaves pairs like
``[N, C, L] → [N, C, 1, L] → [N, C, L] → [N, C, 1, L]`` between neighbouring layers. Reshape of a Reshape is a
Reshape of the original to the final static shape, which is exact.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import dims, reshape


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    out = dims(node.outputs[0])
    source = node.inputs[0]
    if out is None or source is None:
        return NO_MATCH
    producer = source.producer()
    if dims(source) == out and not (node.outputs[0].is_graph_output() and producer is None):
        return None
    if producer is None or producer.op_type != "Reshape" or producer.inputs[0] is None:
        return NO_MATCH
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    out = dims(node.outputs[0]) or ()
    source = node.inputs[0]
    if dims(source) == out:
        return [source]
    original = source.producer().inputs[0]
    if dims(original) == out:
        return [original]
    return [reshape(ctx, original, list(np.asarray(out, dtype=np.int64)))]


RULE = Rule(id="reshape-merge", ops=("Reshape",), summary="Reshape∘Reshape → one Reshape; identity Reshape → removed",
            check=check, rewrite=rewrite, report_refusals=False)
