"""Drop control flow that follows the network (``drop-control-flow-tail``), before the model is loaded.

Exports of detectors from TensorFlow (tf2onnx turns the OD API's per-image post-processing ``map_fn`` into a
``Loop``) and some PyTorch exports put post-processing inside ``Loop``/``If``/``Scan`` nodes. dlakit's model layer
refuses control flow (DLA cannot run it and placement cannot see inside), yet in a detector it only ever sits
*after* the heads that ``prepare`` cuts at. So here, on the protobuf, every control-flow node and everything
downstream of it is removed, and the tensors that fed the removed region (including tensors a subgraph reads from
the outer scope) become outputs. That changes no value the rest of the graph computes, so verifying against the
stripped model is verifying against the original at every tensor that is kept. Control flow in front of the
network (a preprocessing ``Loop`` that resizes the image) cannot be handled this way and is a one-line error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from dlakit.errors import DlakitError

CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


@dataclass
class TailCut:
    removed: list[tuple[str, str]] = field(default_factory=list)  # (node name or first output, op)
    outputs: list[str] = field(default_factory=list)

    @property
    def detail(self) -> str:
        ops = Counter(op for _, op in self.removed)
        return (f"removed {len(self.removed)} nodes ({', '.join(f'{op}×{n}' for op, n in ops.most_common())}) "
                f"after {len(self.outputs)} tensors")


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing scopes (used but not defined inside it), recursively."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        defined.update(node.output)
        used.update(n for n in node.input if n)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                used |= _outer_names(sub)
    used.update(o.name for o in graph.output)
    return used - defined


def _reads(node: onnx.NodeProto) -> list[str]:
    """Tensors a node reads: its inputs, then what its subgraphs read from the outer scope (in a stable order)."""
    names = [n for n in node.input if n]
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            names.extend(sorted(_outer_names(sub)))
    return list(dict.fromkeys(names))


def drop_control_flow_tail(proto: onnx.ModelProto, source: str) -> tuple[onnx.ModelProto, TailCut | None]:
    """The model without its control-flow tail (a copy), and what was removed; the model itself when it has none."""
    nodes = list(proto.graph.node)
    if not any(n.op_type in CONTROL_FLOW_OPS for n in nodes):
        return proto, None
    region: set[int] = set()
    tainted: set[str] = set()
    for index, node in enumerate(nodes):  # nodes are topologically sorted in a valid ONNX graph
        if node.op_type in CONTROL_FLOW_OPS or set(_reads(node)) & tainted:
            region.add(index)
            tainted.update(node.output)
    constants = {i.name for i in proto.graph.initializer}
    constants.update(o for n in nodes if n.op_type == "Constant" for o in n.output)
    kept_outputs = [o.name for o in proto.graph.output if o.name not in tainted]
    crossing: list[str] = []
    for index in sorted(region):
        for name in _reads(nodes[index]):
            if name not in tainted and name not in constants and name not in crossing and name not in kept_outputs:
                crossing.append(name)
    inputs = {i.name for i in proto.graph.input}
    produced = [name for name in crossing if name not in inputs]
    if not produced and not kept_outputs:
        first = nodes[min(region)]
        raise DlakitError(f"{source}: control flow ({first.op_type} '{first.name or first.output[0]}') sits at the "
                          "model's input, in front of the network; cut it off first (onnx.utils.extract_model from "
                          "the first convolution's input) and prepare the rest")
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    out.graph.node.extend(n for i, n in enumerate(nodes) if i not in region)
    old_outputs = {o.name: o for o in proto.graph.output}
    del out.graph.output[:]
    out.graph.output.extend(old_outputs[n] for n in kept_outputs)
    out.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in produced)
    cut = TailCut([(nodes[i].name or nodes[i].output[0], nodes[i].op_type) for i in sorted(region)],
                  kept_outputs + produced)
    return out, cut
