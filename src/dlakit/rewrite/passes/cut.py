"""Cut the graph: at tensors the user names (``--outputs``) or automatically before post-processing.

DLA never runs TopK, ArgMax or NonMaxSuppression, nor the box decoding in front of them (Exp, Sigmoid, Gather,
Concat off the channel axis, Slice on the anchor axis...). NVIDIA's per-model scripts cut those off by node name so
the network body is one DLA loadable and post-processing stays on the GPU or CPU. Here the cut is found
structurally: everything downstream of a post-processing op, plus every decoding-type node that feeds only what is
cut, walking backwards until a "network" op (convolution, pooling, matrix product...) or a tensor that something
kept still needs. Decoded tensors that the published model also exports (``boxes``, ``scores``, ``probabilities``)
go with the decoding: they are post-processing results, listed as dropped outputs. The tensors crossing the cut
become the new graph outputs, and the report says exactly what was removed.

Detectors exported without NMS (YOLOv5/X/v8/11) end in a decode tail instead: the last 4-D head convolutions
are reshaped off the NCHW layout (Reshape/Transpose to 3-D or 5-D), then Sigmoid, grid arithmetic and a Concat
of the levels follow. That tail is found by structure (rank-changing shuffles of static 4-D tensors whose every
consumer is decoding, ending in graph outputs, with a Concat and an activation in it) and cut the same way. Both
cuts also return the removed part as a model of its own (:attr:`CutReport.tail`) whose inputs are the cut
tensors, so the user keeps a runnable GPU part: running the cut model and then the tail equals the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
import onnx_ir as ir

from dlakit.data.opdata import op_data
from dlakit.errors import DlakitError
from dlakit.model import constant_array, is_constant

#: Post-processing ops (``data/ops.toml`` ``postprocess``): DLA never runs them; everything downstream is cut.
POSTPROCESS_OPS = op_data().having("postprocess", True)
#: Ops that appear in box/score decoding (``decoding``); a node of one of these types that feeds only the cut region
#: is cut too.
DECODING_OPS = op_data().having("decoding", True)


@dataclass
class CutReport:
    """What a cut removed and which tensors became the outputs."""

    reason: str
    removed: list[tuple[str, str]] = field(default_factory=list)  # (node name, op)
    outputs: list[str] = field(default_factory=list)
    dropped_outputs: list[str] = field(default_factory=list)
    #: the removed post-processing as a model whose inputs are the cut tensors (None for --outputs cuts)
    tail: onnx.ModelProto | None = None


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


#: rank-changing shuffles: the ops TensorRT makes a Shuffle layer of
RESHAPING = frozenset(op for op, info in op_data().ops.items() if info.layer == "shuffle")
#: decode tails may also hold YOLOv8's distribution-focal-loss head: Softmax then a small constant 1x1 Conv
TAIL_OPS = DECODING_OPS | {"Conv"}
DECODE_SIGNS = frozenset({"Sigmoid", "Exp", "Softmax"})
MAX_TAIL_CONV_CHANNELS = 64


def _rank(value: ir.Value | None) -> int | None:
    return None if value is None or value.shape is None else len(value.shape)


def _static_4d(value: ir.Value | None) -> bool:
    return value is not None and value.shape is not None and len(value.shape) == 4 and all(
        isinstance(d, int) for d in value.shape)


def _tail_conv(node: ir.Node) -> bool:
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    shape = weight.shape if weight is not None else None
    return (shape is not None and is_constant(weight) and len(shape) == 4 and tuple(shape[2:]) == (1, 1)
            and isinstance(shape[1], int) and shape[1] <= MAX_TAIL_CONV_CHANNELS)


def _downstream(nodes: list[ir.Node], seeds: set[ir.Node]) -> set[ir.Node]:
    found = set(seeds)
    for node in nodes:  # topological order
        if node not in found and any(v is not None and v.producer() in found for v in node.inputs):
            found.add(node)
    return found


def _decode_tail(nodes: list[ir.Node]) -> set[ir.Node] | None:
    """The decode tail of a detector exported without NMS, or None when the graph does not end in one."""
    starts = set()
    for node in nodes:
        if node.op_type not in RESHAPING or not _static_4d(node.inputs[0]):
            continue
        if _rank(node.outputs[0]) != 4 or (node.op_type == "Transpose" and all(
                use.node.op_type in RESHAPING for use in node.outputs[0].uses())):
            starts.add(node)
    tail = _downstream(nodes, starts)
    if not tail or any(n.op_type not in TAIL_OPS or (n.op_type == "Conv" and not _tail_conv(n)) for n in tail):
        return None
    ops = {n.op_type for n in tail}
    if "Concat" not in ops or not ops & DECODE_SIGNS:
        return None
    return tail


def _absorb_decoding(nodes: list[ir.Node], cut: set[ir.Node], *, keep_4d: bool) -> None:
    """Add decoding-type nodes that feed only the cut region (with ``keep_4d``, not those making 4-D tensors)."""
    changed = True
    while changed:
        changed = False
        for node in reversed(nodes):
            if node in cut or node.op_type not in DECODING_OPS:
                continue
            if keep_4d and any(_rank(out) == 4 for out in node.outputs):
                continue
            users = [use.node for out in node.outputs for use in out.uses()]
            if users and all(user in cut for user in users):
                cut.add(node)
                changed = True


def tail_model(graph: ir.Graph, cut: set[ir.Node], inputs: list[ir.Value], outputs: list[ir.Value],
               opsets: dict[str, int], ir_version: int) -> onnx.ModelProto:
    """The cut nodes as a model of their own: ``inputs`` (the cut tensors) in, the dropped outputs out.

    Weights and build-time constants the tail reads become its initializers; graph inputs it reads directly
    (an image-size input, say) stay inputs.
    """
    nodes = [n for n in graph if n in cut]
    produced = {out for n in nodes for out in n.outputs}
    feeds = list(inputs)
    initializers: list[onnx.TensorProto] = []
    seen = set(feeds)
    for node in nodes:
        for value in node.inputs:
            if value is None or value in produced or value in seen:
                continue
            seen.add(value)
            array = constant_array(value) if is_constant(value) else None
            if array is not None:
                initializers.append(onnx.numpy_helper.from_array(array, value.name or ""))
            else:
                feeds.append(value)
    graph_proto = onnx.helper.make_graph(
        [ir.serde.serialize_node(n) for n in nodes], f"{graph.name or 'model'}_postprocess",
        [ir.serde.serialize_value(v) for v in feeds], [ir.serde.serialize_value(v) for v in outputs], initializers)
    model = onnx.helper.make_model(graph_proto, opset_imports=[onnx.helper.make_opsetid(d, v)
                                                               for d, v in opsets.items()])
    model.ir_version = ir_version
    return model


def cut_postprocess(graph: ir.Graph, opsets: dict[str, int] | None = None, ir_version: int = 8) -> CutReport | None:
    """Cut before TopK/ArgMax/NMS and their decoding, or before a detector's decode tail; None when neither is
    there. The report's ``tail`` is the removed part as a runnable model."""
    nodes = list(graph)
    cut = {n for n in nodes if n.op_type in POSTPROCESS_OPS}
    if cut:
        cut = _downstream(nodes, cut)  # everything downstream of post-processing is post-processing
        _absorb_decoding(nodes, cut, keep_4d=False)
        reason = "post-processing (" + ", ".join(sorted({n.op_type for n in cut} & POSTPROCESS_OPS)) + ")"
    else:
        tail = _decode_tail(nodes)
        if tail is None:
            return None
        cut = tail
        _absorb_decoding(nodes, cut, keep_4d=True)
        reason = "detector decode tail (" + ", ".join(sorted({n.op_type for n in cut} & (DECODE_SIGNS | {
            "Reshape", "Transpose", "Concat"}))) + ")"
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
    report = CutReport(reason=reason)
    removed_outputs = [v for v in graph.outputs if v.producer() in cut]
    tail_inputs = [v for v in crossing if v.producer() is not None]
    report.tail = tail_model(graph, cut, tail_inputs, removed_outputs, opsets or {"": 17}, ir_version)
    report.outputs = [v.name or "" for v in outputs]
    report.dropped_outputs = _set_outputs(graph, outputs)
    report.removed = _removed(graph)
    return report
