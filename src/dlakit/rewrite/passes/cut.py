"""Cut the graph: at tensors the user names (``--outputs``) or automatically before post-processing.

DLA never runs TopK, ArgMax or NonMaxSuppression, nor the box decoding in front of them (Exp, Sigmoid, Gather,
Concat off the channel axis, Slice on the anchor axis...). NVIDIA's per-model scripts cut those off by node name so
the network body is one DLA loadable and post-processing stays on the GPU or CPU. Here the cut is found
structurally: everything downstream of a post-processing op, plus every decoding-type node that feeds only what is
cut, walking backwards until a "network" op (convolution, pooling, matrix product...) or a tensor that something
kept still needs. Decoded tensors that the published model also exports (``boxes``, ``scores``, ``probabilities``)
go with the decoding: they are post-processing results, listed as dropped outputs. The tensors crossing the cut
become the new graph outputs, and the report says exactly what was removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from dlakit.errors import DlakitError
from dlakit.model import is_constant

POSTPROCESS_OPS = frozenset({"TopK", "ArgMax", "ArgMin", "NonMaxSuppression"})
#: Ops that appear in box/score decoding; a node of one of these types that feeds only the cut region is cut too.
DECODING_OPS = frozenset({
    "Reshape", "Transpose", "Concat", "Slice", "Split", "Squeeze", "Unsqueeze", "Flatten", "Gather", "GatherND",
    "GatherElements", "Sigmoid", "Softmax", "LogSoftmax", "Exp", "Log", "Mul", "Add", "Sub", "Div", "Cast", "Max",
    "Min", "Clip", "Sqrt", "Tile", "Expand", "ReduceMax", "ReduceMin", "Equal", "Greater", "Less", "Where", "Not",
    "And", "Or", "Identity", "Shape", "ConstantOfShape", "Range", "Neg", "Abs", "Pow", "Floor", "Ceil", "Round",
    "NonZero",
})


@dataclass
class CutReport:
    """What a cut removed and which tensors became the outputs."""

    reason: str
    removed: list[tuple[str, str]] = field(default_factory=list)  # (node name, op)
    outputs: list[str] = field(default_factory=list)
    dropped_outputs: list[str] = field(default_factory=list)


def _values_by_name(graph: ir.Graph) -> dict[str, ir.Value]:
    values = {v.name: v for v in graph.inputs if v.name}
    for node in graph:
        values.update({out.name: out for out in node.outputs if out.name})
    return values


def _set_outputs(graph: ir.Graph, outputs: list[ir.Value]) -> list[str]:
    dropped = [v.name or "" for v in graph.outputs if v not in outputs]
    graph.outputs.clear()
    graph.outputs.extend(outputs)
    return dropped


def _removed(graph: ir.Graph) -> list[tuple[str, str]]:
    """Nodes that no graph output depends on (what the cut takes away)."""
    alive: set[ir.Node] = set()
    stack = [v.producer() for v in graph.outputs]
    while stack:
        node = stack.pop()
        if node is None or node in alive:
            continue
        alive.add(node)
        stack.extend(v.producer() for v in node.inputs if v is not None)
    return [(n.name or "", n.op_type) for n in graph if n not in alive]


def cut_at_outputs(graph: ir.Graph, names: list[str]) -> CutReport:
    """Make the named tensors the graph outputs (in that order); the caller removes the dead nodes."""
    values = _values_by_name(graph)
    missing = [n for n in names if n not in values]
    if missing:
        hint = ", ".join(sorted(v.name or "" for v in graph.outputs)[:5])
        raise DlakitError(f"--outputs: tensor '{missing[0]}' is not in the model; tensor names are as in Netron "
                          f"(the current outputs are: {hint})")
    inputs = [n for n in names if values[n].producer() is None]
    if inputs:
        raise DlakitError(f"--outputs: '{inputs[0]}' is a graph input or a weight, not computed by the model; name "
                          "a tensor a node produces")
    outputs = [values[n] for n in names]
    report = CutReport(reason="--outputs", outputs=list(names))
    report.dropped_outputs = _set_outputs(graph, outputs)
    report.removed = _removed(graph)
    return report


def cut_postprocess(graph: ir.Graph) -> CutReport | None:
    """Cut before TopK/ArgMax/NMS and their decoding; None when the model has no post-processing."""
    nodes = list(graph)
    cut = {n for n in nodes if n.op_type in POSTPROCESS_OPS}
    if not cut:
        return None
    for node in nodes:  # everything downstream of post-processing is post-processing
        if any(v is not None and v.producer() in cut for v in node.inputs):
            cut.add(node)
    changed = True
    while changed:
        changed = False
        for node in reversed(nodes):
            if node in cut or node.op_type not in DECODING_OPS:
                continue
            users = [use.node for out in node.outputs for use in out.uses()]
            if users and all(user in cut for user in users):
                cut.add(node)
                changed = True
    kept_outputs = [v for v in graph.outputs if v.producer() not in cut]
    crossing: list[ir.Value] = []
    taken = set(kept_outputs)  # membership by set: a cut may cross thousands of tensors
    for node in nodes:
        if node not in cut:
            continue
        for value in node.inputs:
            if value is None or value in taken or is_constant(value):
                continue
            if value.producer() not in cut:
                crossing.append(value)
                taken.add(value)
    outputs = kept_outputs + crossing
    if not outputs:
        return None
    report = CutReport(reason="post-processing (" + ", ".join(sorted({n.op_type for n in cut} & POSTPROCESS_OPS))
                       + ")")
    report.outputs = [v.name or "" for v in outputs]
    report.dropped_outputs = _set_outputs(graph, outputs)
    report.removed = _removed(graph)
    return report
