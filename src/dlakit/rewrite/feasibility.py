"""Would ``fix`` apply rule X here? Asked by ``check`` before it calls a node "fixable".

A verdict of "fixable by X" is a promise: ``fix`` must then apply X or refuse it with a reason. Check's rules see
one violation (a Pad, a rank-3 tensor, a reduction over 13 elements) and name the rewrite that removes that kind
of violation; whether the rewrite works for this node's shapes and neighbours is the rule's own ``check``. This
module runs that check without rewriting anything: on the node itself when the rule anchors on its op, else on
its consumers (``fold-pad-into-conv`` anchors on the Conv behind the Pad).
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import RuleContext, verdict_of
from dlakit.verdict import APPLIES, Verdict, refuse


def _opset(node: ir.Node) -> int:
    graph = node.graph
    imports = graph.opset_imports if graph is not None else {}
    return int(imports.get("", imports.get("ai.onnx", 17)))


def fix_refusal(rule_id: str, node: ir.Node) -> Verdict:
    """Whether rule ``rule_id`` applies at ``node`` (it does when the rule is unknown: nothing to contradict);
    refused with the reason it would not, in the rule's own words."""
    from dlakit.rewrite.rules import RULES

    rule = RULES.get(rule_id)
    if rule is None or node.graph is None:
        return APPLIES
    ctx = RuleContext(node.graph, _opset(node), names=None, target=None)  # type: ignore[arg-type]
    anchors = [node] if node.op_type in rule.ops else [
        use.node for out in node.outputs for use in out.uses() if use.node.op_type in rule.ops]
    refusals = []
    for anchor in anchors:
        try:
            verdict = verdict_of(rule.check(anchor, ctx), rule_id)
        except Exception as exc:  # a rule that cannot analyse the node will not rewrite it either
            verdict = refuse(f"{type(exc).__name__}: {exc}", rule=rule_id)
        if verdict.applies:
            return verdict
        refusals.append(verdict)
    given = [v for v in refusals if v.refused]
    if given:
        return given[0]
    return refuse(f"this {node.op_type} is not in the pattern '{rule_id}' rewrites", rule=rule_id)
