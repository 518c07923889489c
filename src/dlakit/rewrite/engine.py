"""The rewrite engine: rules anchored on one node, applied to a fixpoint with clean-up between rounds.

Why our own matcher rather than ``onnxscript.rewriter``: every dlakit rule is anchored on a single operator whose
applicability depends on *inferred shapes and build-time constant values* (is the condition constant, which axis does
the gather select, is H×W small enough for one pool window). onnxscript's pattern matcher is built for multi-node
structural patterns and reports why a pattern failed only through its debugging tracer, while we must give the user
the reason for every refused node. A rule here is therefore a small record: the ops it anchors on, ``check(node,
ctx)`` answering whether it applies, and ``rewrite(node, ctx)`` that emits replacement nodes and returns the values
that replace the anchor's outputs. The answer is a :class:`dlakit.verdict.Verdict` (:data:`NO_MATCH` when the node is
not the rule's pattern at all: nothing is reported), with two shorthands the rules use: ``None`` (it applies) and a
string (refused, with that user-facing "why not"); :func:`verdict_of` is the one place that reads the answer. Rules
emit nodes through :class:`RuleContext`, which keeps them off the graph until the rewrite has succeeded, so a failing
rule never leaves a half-rewritten graph.

After each round dead nodes are dropped and shapes and build-time constants are re-inferred with the model layer's
own pass (what :func:`dlakit.model.load_model` runs): rules always see the same view of the model that ``check``
does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from dlakit.data.opdata import op_data
from dlakit.model import LoadedModel, is_folded
from dlakit.model.folding import propagate
from dlakit.verdict import APPLIES, DOES_NOT_APPLY, Verdict, refuse

if TYPE_CHECKING:
    from dlakit.targets import Target

#: ops whose output type is not their first input's (everything else a rule emits keeps the type)
TYPE_CHANGING = op_data().onnx_ops("type_changing")  # data/ops.toml [onnx]
#: ``check`` returns this to say "not this rule's pattern at all" (nothing is reported to the user).
NO_MATCH = DOES_NOT_APPLY
#: What a rule's helpers return instead of their plan: a Verdict (NO_MATCH, a refusal) or a refusal reason.
Answer = Verdict | str


def refusal_of(plan: object) -> Answer | None:
    """A rule's ``check`` from its ``_plan``: the plan's answer when it is one (a refusal, or NO_MATCH), None when it
    is a rewrite to make."""
    return plan if isinstance(plan, Answer) else None

CheckFn = Callable[[ir.Node, "RuleContext"], "Verdict | str | None"]
RewriteFn = Callable[[ir.Node, "RuleContext"], Sequence[ir.Value]]


@dataclass(frozen=True)
class Rule:
    """One rewrite: the ops it anchors on, when it applies (with a reason when not), and the replacement."""

    id: str
    ops: tuple[str, ...]
    summary: str
    check: CheckFn
    rewrite: RewriteFn
    #: optimisation rules (folding, fusion) see many nodes that merely do not match: their refusals are noise
    report_refusals: bool = True
    #: shown with every application (e.g. "Log stays on the GPU")
    note: str | None = None


@dataclass
class Applied:
    rule: str
    node: str
    op: str
    new_nodes: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class Refused:
    rule: str
    node: str
    op: str
    reason: str


class NameSource:
    """Unique value, node and initializer names for one graph (ONNX needs them unique; TensorRT names layers so)."""

    def __init__(self, graph: ir.Graph) -> None:
        self.used: set[str] = set(graph.initializers)
        for value in graph.inputs:
            self.used.add(value.name or "")
        for node in graph:
            self.used.add(node.name or "")
            self.used.update(out.name or "" for out in node.outputs)

    def fresh(self, base: str) -> str:
        name = base
        for index in itertools.count(1):
            if name not in self.used:
                break
            name = f"{base}_{index}"
        self.used.add(name)
        return name


class RuleContext:
    """What a rule sees: the graph, the opset, the target, and a builder whose nodes are committed only on success."""

    def __init__(self, graph: ir.Graph, opset: int, names: NameSource, target: Target | None = None) -> None:
        self.graph = graph
        self.opset = opset
        self.names = names
        self.target = target
        self.prefix = "rewrite"
        self.nodes: list[ir.Node] = []
        self.initializers: list[ir.Value] = []

    def start(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes = []
        self.initializers = []

    def op(self, op_type: str, inputs: Sequence[ir.Value | None], attributes: Mapping[str, Any] | None = None,
           *, num_outputs: int = 1) -> ir.Value:
        """Emit one node (not yet in the graph) and return its first output."""
        return self.op_multi(op_type, inputs, attributes, num_outputs=num_outputs)[0]

    def op_multi(self, op_type: str, inputs: Sequence[ir.Value | None],
                 attributes: Mapping[str, Any] | None = None, *, num_outputs: int = 1) -> Sequence[ir.Value]:
        attrs = ir.convenience.convert_attributes(dict(attributes or {}))
        name = self.names.fresh(f"{self.prefix}/{op_type}")
        outputs = [ir.Value(name=self.names.fresh(f"{name}_out{i}" if num_outputs > 1 else f"{name}_out"))
                   for i in range(num_outputs)]
        node = ir.Node("", op_type, list(inputs), attributes=attrs, outputs=outputs, name=name)
        first = next((v for v in inputs if v is not None), None)
        if op_type not in TYPE_CHANGING and first is not None and first.dtype is not None:
            for out in outputs:  # rules size their constants by the dtype of what they build on (FP16 models)
                out.dtype = first.dtype
        self.nodes.append(node)
        return node.outputs

    def const(self, array: np.ndarray | float | int | Sequence[Any], hint: str = "const",
              dtype: np.dtype | type | None = None) -> ir.Value:
        """A new initializer holding ``array`` (registered in the graph when the rewrite commits)."""
        data = np.asarray(array, dtype=dtype) if dtype is not None else np.asarray(array)
        name = self.names.fresh(f"{self.prefix}/{hint}")
        tensor = ir.tensor(data, name=name)
        value = ir.Value(name=name, shape=ir.Shape(list(data.shape)), type=ir.TensorType(tensor.dtype),
                         const_value=tensor)
        self.initializers.append(value)
        return value


def commit(graph: ir.Graph, anchor: ir.Node, ctx: RuleContext, replacements: Sequence[ir.Value]) -> None:
    """Insert the context's nodes before ``anchor``, reroute the anchor's outputs, and drop the anchor.

    Replacement values take over the old values' names, types and shapes, so graph outputs keep their names (users
    and the verification compare outputs by name) and later rules in the same round still see shapes.
    """
    for value in ctx.initializers:
        graph.register_initializer(value)
    if ctx.nodes:
        graph.insert_before(anchor, ctx.nodes)
    created = {out for node in ctx.nodes for out in node.outputs}
    for old, new in zip(anchor.outputs, replacements, strict=False):
        if new is None or old is new:
            continue
        if new not in created and old.is_graph_output() and _renamable(new):
            # the producer's tensor takes over the output's name (e.g. a removed Identity before an output)
            old.replace_all_uses_with(new, replace_graph_outputs=True)
            name = old.name
            old.name = f"{name}__replaced"
            new.name = name
            continue
        if new not in created and old.is_graph_output():
            # an existing value cannot take over a graph output's name: keep the name with an Identity
            ctx.start(f"{anchor.name}/keep-output")
            new = ctx.op("Identity", [new])
            graph.insert_before(anchor, ctx.nodes)
            created.add(new)
        if old.type is not None:
            new.type = old.type
        if old.shape is not None:
            new.shape = old.shape
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        if new in created:
            name = old.name
            old.name = f"{name}__replaced"
            new.name = name
    graph.remove(anchor, safe=True)


def _renamable(value: ir.Value) -> bool:
    """A node output that is not itself a graph output can be renamed without changing the model's interface."""
    return value.producer() is not None and not value.is_graph_output() and not value.is_graph_input()


def reload(loaded: LoadedModel) -> LoadedModel:
    """Drop dead nodes and unused weights, then re-infer shapes and build-time constants in place.

    This is :func:`dlakit.model.load_model`'s analysis without the serialisation round trip, which for a model with
    hundreds of MB of weights would dominate the run time and double the memory.
    """
    RemoveUnusedNodesPass()(loaded.model)
    propagate(loaded.model)
    return loaded


def verdict_of(answer: Verdict | str | None, rule_id: str = "") -> Verdict:
    """A rule ``check``'s answer as a Verdict: ``None`` applies, a string is a refusal with that reason."""
    if answer is None:
        return APPLIES
    if isinstance(answer, Verdict):
        return answer
    if not answer:  # the old "" sentinel: say which rule still uses it rather than guess what it meant
        return refuse(f"rule '{rule_id}' gave an empty reason (return NO_MATCH for 'not this pattern')", rule=rule_id)
    return refuse(answer, rule=rule_id)


def rule_verdict(rule: Rule, node: ir.Node, ctx: RuleContext) -> Verdict:
    """Whether ``rule`` applies at ``node`` (a rule that fails to analyse the node refuses it, naming the error)."""
    try:
        answer = rule.check(node, ctx)
    except Exception as exc:
        return refuse(f"rule '{rule.id}' could not analyse this node ({type(exc).__name__}: {exc})", rule=rule.id)
    return verdict_of(answer, rule.id)


def apply_rules(loaded: LoadedModel, rules: Iterable[Rule], *, target: Target | None = None,
                max_rounds: int = 12) -> tuple[LoadedModel, list[Applied], list[Refused]]:
    """Apply ``rules`` until no rule applies any more; return the model, what was applied, what was refused.

    Refusals are those of the last round only: a node refused in an early round because its producer was not yet
    rewritten (shape unknown) may be rewritten later.
    """
    by_op: dict[str, list[Rule]] = {}
    for rule in rules:
        for op in rule.ops:
            by_op.setdefault(op, []).append(rule)
    applied: list[Applied] = []
    refused: dict[tuple[str, str], Refused] = {}
    for _ in range(max_rounds):
        graph = loaded.graph
        names = NameSource(graph)
        ctx = RuleContext(graph, loaded.opset, names, target)
        refused = {}
        changed = False
        for node in list(graph):
            if node.graph is None or is_folded(node) or node.domain not in ("", "ai.onnx"):
                continue
            for rule in by_op.get(node.op_type, ()):
                verdict = rule_verdict(rule, node, ctx)
                if verdict.applies:
                    ctx.start(f"{node.name}/{rule.id}")
                    try:
                        replacements = rule.rewrite(node, ctx)
                    except Exception as exc:
                        verdict = refuse(f"rule '{rule.id}' failed to rewrite this node ({type(exc).__name__}: "
                                         f"{exc})", rule=rule.id)
                    else:
                        new_names = [n.name or "" for n in ctx.nodes]
                        commit(graph, node, ctx, replacements)
                        applied.append(Applied(rule.id, node.name or "", node.op_type, new_names, rule.note))
                        changed = True
                        break
                if verdict.refused and rule.report_refusals:
                    refused[(rule.id, node.name or "")] = Refused(rule.id, node.name or "", node.op_type,
                                                                  verdict.reason)
        if not changed:
            break
        loaded = reload(loaded)
    return loaded, applied, list(refused.values())
