"""Transpose of a Transpose becomes one Transpose, or nothing when the two are inverse; an identity Transpose goes.

DLA's compiler removes identity transposes but does not fuse adjacent ones: two shuffles cost two DLA operations.
NHWC exports leave inverse pairs (NCHW→NHWC then NHWC→NCHW) around every element-wise chain once
``transpose-through-elementwise`` has moved them together. Composition of permutations is exact.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules.transpose_through_elementwise import perm_of


def _composed(node: ir.Node) -> tuple[ir.Value, list[int]] | None:
    """(source, permutation from the source to this node's output) over a chain of two Transposes, or one."""
    x = node.inputs[0]
    p2 = perm_of(node)
    if x is None or p2 is None:
        return None
    producer = x.producer()
    if producer is not None and producer.op_type == "Transpose" and producer.inputs[0] is not None:
        p1 = perm_of(producer)
        if p1 is not None and len(p1) == len(p2):
            return producer.inputs[0], [p1[i] for i in p2]
    return x, p2


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    found = _composed(node)
    if found is None:
        return NO_MATCH
    source, perm = found
    identity = perm == sorted(perm)
    if source is node.inputs[0] and not identity:
        return NO_MATCH  # a single, non-trivial Transpose
    if identity and node.outputs[0].is_graph_output() and (source.producer() is None or source.is_graph_output()):
        return NO_MATCH  # would pass a model input (or output) straight to an output
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    source, perm = _composed(node)  # type: ignore[misc]
    if perm == sorted(perm):
        return [source]
    return [ctx.op("Transpose", [source], {"perm": perm})]


RULE = Rule(id="transpose-merge", ops=("Transpose",),
            summary="Transpose∘Transpose → one Transpose, inverse pair or identity Transpose → removed",
            check=check, rewrite=rewrite, report_refusals=False)
