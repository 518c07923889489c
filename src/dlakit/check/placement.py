"""Per-node placement: which TensorRT layer an ONNX node becomes and whether that layer can run on the DLA."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import onnx_ir as ir

from dlakit.check import registry
from dlakit.check.context import NodeContext
from dlakit.check.registry import OpSpec, Reason, RuleSpec, load_ops, load_rules
from dlakit.model import is_constant, is_folded, node_macs, node_params
from dlakit.targets import Target
from dlakit.vocab import Placement

DLA, GPU, FOLDED, FIXABLE = Placement.DLA, Placement.GPU, Placement.FOLDED, Placement.FIXABLE
NOOP = "noop"
PLACEMENTS = (DLA, GPU, FOLDED, FIXABLE)


@dataclass
class NodePlacement:
    """The verdict for one node, with every reason that moved it off the DLA and every non-blocking note."""

    name: str
    op: str
    layer: str
    placement: Placement
    macs: int
    params: int
    reasons: list[Reason] = field(default_factory=list)
    notes: list[Reason] = field(default_factory=list)
    subgraph: int | None = None
    node: ir.Node | None = field(default=None, repr=False, compare=False)

    @property
    def fix(self) -> str | None:
        """The rewrite that would bring the node onto the DLA, when every blocking reason has one."""
        if self.placement != FIXABLE:
            return None
        return next((r.fix for r in self.reasons if r.fix), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "layer": self.layer,
            "placement": self.placement,
            "subgraph": self.subgraph,
            "macs": self.macs,
            "params": self.params,
            "fix": self.fix,
            "reasons": [r.as_dict() for r in self.reasons],
            "notes": [r.as_dict() for r in self.notes],
        }


def scale_ops() -> tuple[str, ...]:
    """ONNX ops that TensorRT turns into a Scale layer when one operand is a constant (rules.toml scale.mode)."""
    return tuple(registry.rule_spec("scale.mode").limits["ops"])


def layer_of(node: ir.Node, spec: OpSpec) -> str:
    """TensorRT's layer for the node: Add/Sub/Mul with one constant operand becomes a Scale layer; every other
    element-wise op (Div, Pow, Max, Min) stays an ElementWise layer and meets the release's element-wise list."""
    if spec.layer == "elementwise" and node.op_type in scale_ops() and len(node.inputs) == 2:
        constant = [is_constant(v) for v in node.inputs]
        if sum(constant) == 1:
            return "scale"
    return spec.layer


def _fix_refusal(node: ir.Node, reasons: list[Reason]) -> Reason | None:
    """A note when a named fix rule would refuse this node, else None (see :mod:`dlakit.rewrite.feasibility`)."""
    from dlakit.rewrite.feasibility import fix_refusal  # late: rewrite's rules import check's data

    for rule_id in dict.fromkeys(r.fix for r in reasons if r.fix):
        verdict = fix_refusal(rule_id, node)
        if verdict.refused:
            return Reason(rule="fix.refused", message=f"fix rule '{rule_id}' does not apply here: {verdict.reason}",
                          fix=None, blocking=False)
    return None


@cache
def rules_for(layer: str, op: str) -> tuple[RuleSpec, ...]:
    """The rules that apply to ``layer`` made from ``op``, in data order: decided once per layer and op, not once
    per node and rule. An unknown layer gets op.unknown alone, and only it (the rule says nothing elsewhere); a rule
    limited to some ops (:func:`~dlakit.check.registry.rule`) is left out for the others."""
    return tuple(spec for spec in load_rules()
                 if spec.applies_to(layer) and (layer == "unknown") == (spec.name == "op.unknown")
                 and (registry.rule_ops(spec.name) is None or op in registry.rule_ops(spec.name)))


def place_node(node: ir.Node, target: Target, precision: str) -> NodePlacement:
    if is_folded(node):
        return NodePlacement(node.name, node.op_type, "constant", FOLDED, 0, 0, node=node)
    macs, params = node_macs(node), node_params(node)
    spec = load_ops().get(node.op_type) or OpSpec(op=node.op_type, layer="unknown")
    layer = layer_of(node, spec)
    if layer == NOOP:
        note = Reason(rule="op.unsupported", message=f"{node.op_type} is removed by TensorRT at build time",
                      blocking=False)
        return NodePlacement(node.name, node.op_type, layer, FOLDED, macs, params, notes=[note], node=node)
    ctx = NodeContext(node=node, layer=layer, target=target, precision=precision, op_spec=spec)
    reasons: list[Reason] = []
    notes: list[Reason] = []
    for rule_spec in rules_for(layer, node.op_type):
        for reason in rule_spec.evaluate(ctx):
            (reasons if reason.blocking else notes).append(reason)
    if not reasons:
        verdict = DLA
    elif all(r.fix for r in reasons):
        verdict = FIXABLE
        refusal = _fix_refusal(node, reasons)
        if refusal is not None:  # "fixable" is a promise fix keeps: where its rule refuses, the node is GPU
            verdict = GPU
            notes.append(refusal)
    else:
        verdict = GPU
    return NodePlacement(node.name, node.op_type, layer, verdict, macs, params, reasons, notes, node=node)
