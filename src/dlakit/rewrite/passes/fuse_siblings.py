"""Fuse sibling convolutions: convs reading the same tensor with identical attributes become one wider conv.

Detector heads often apply several small convolutions (class scores, box offsets, objectness) to the same feature
map; each is a separate DLA operation that re-reads the input. One convolution with the output channels
concatenated reads it once and fills the MAC array better; Slice layers (DLA-supported, channel axis) hand each
original consumer its channels back, under the original tensor names.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx_ir as ir

from dlakit.model import constant_array, is_constant
from dlakit.rewrite.engine import Applied, NameSource, RuleContext

RULE_ID = "fuse-sibling-convs"


def _key(node: ir.Node) -> tuple | None:
    if node.op_type != "Conv" or len(node.inputs) < 2 or node.inputs[0] is None:
        return None
    weight = constant_array(node.inputs[1]) if is_constant(node.inputs[1]) else None
    if weight is None or node.attributes.get_int("group", 1) != 1:
        return None
    if len(node.inputs) > 2 and node.inputs[2] is not None and constant_array(node.inputs[2]) is None:
        return None
    attrs = tuple(sorted((a.name, str(a.value)) for a in node.attributes.values()))
    return (id(node.inputs[0]), weight.shape[1:], str(weight.dtype), attrs)


def fuse_sibling_convs(graph: ir.Graph, opset: int) -> list[Applied]:
    groups: dict[tuple, list[ir.Node]] = defaultdict(list)
    for node in graph:
        key = _key(node)
        if key is not None:
            groups[key].append(node)
    applied: list[Applied] = []
    names = NameSource(graph)
    for siblings in groups.values():
        if len(siblings) < 2:
            continue
        first = siblings[0]
        weights = [constant_array(n.inputs[1]) for n in siblings]
        biases = [constant_array(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] is not None
                  else np.zeros(w.shape[0], dtype=w.dtype) for n, w in zip(siblings, weights, strict=True)]
        ctx = RuleContext(graph, opset, names)
        ctx.start(f"{first.name}/{RULE_ID}")
        fused = ctx.op("Conv", [first.inputs[0], ctx.const(np.concatenate(weights), "weight"),
                                ctx.const(np.concatenate(biases), "bias")],
                       {a.name: a.value for a in first.attributes.values()})
        # all siblings read the same tensor and constant weights, so the first sibling's place is early enough
        anchor = siblings[0]
        start = 0
        outputs: dict[ir.Node, ir.Value] = {}
        for node, weight in zip(siblings, weights, strict=True):
            stop = start + weight.shape[0]
            starts, ends, axes = [start], [stop], [1]
            if opset < 10:
                part = ctx.op("Slice", [fused], {"starts": starts, "ends": ends, "axes": axes})
            else:
                part = ctx.op("Slice", [fused, ctx.const(np.array(starts, dtype=np.int64), "starts"),
                                        ctx.const(np.array(ends, dtype=np.int64), "ends"),
                                        ctx.const(np.array(axes, dtype=np.int64), "axes")])
            outputs[node] = part
            start = stop
        new_names = [n.name or "" for n in ctx.nodes]
        for value in ctx.initializers:
            graph.register_initializer(value)
        graph.insert_before(anchor, ctx.nodes)
        for node in siblings:
            old, new = node.outputs[0], outputs[node]
            new.type, new.shape = old.type, old.shape
            old.replace_all_uses_with(new, replace_graph_outputs=True)
            name = old.name
            old.name = f"{name}__fused"
            new.name = name
            graph.remove(node, safe=True)
        applied.append(Applied(RULE_ID, ", ".join(n.name or "" for n in siblings), "Conv", new_names))
    return applied
