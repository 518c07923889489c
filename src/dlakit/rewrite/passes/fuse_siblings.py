"""Fuse sibling convolutions: convs reading the same tensor with identical attributes become one wider conv.

Detector heads often apply several small convolutions (class scores, box offsets, objectness) to the same feature
map; each is a separate DLA operation that re-reads the input. One convolution with the output channels
concatenated reads it once and fills the MAC array better; Slice layers (DLA-supported, channel axis) hand each
original consumer its channels back, under the original tensor names.

Siblings whose weights are the same initializers as an earlier group's (an unrolled recurrence: every time step's
gate convolutions share one weight per gate) share that group's fused initializers too, so fusing does not copy
weights per step. A fused convolution keeps within DLA's output maps (``conv.output-maps`` in ``rules.toml``):
siblings are fused in runs that fit. A convolution whose output feeds only an activation or a Scale is left out:
that layer rides in the convolution's SDP stage, and fusing would turn one DLA operation into a Slice plus a
separate activation (an unrolled recurrence's gates, one per gate and step, are exactly this).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx_ir as ir

from dlakit.data.opdata import op_data
from dlakit.model import constant_array, is_constant, static_dims
from dlakit.rewrite.engine import Applied, NameSource, RuleContext
from dlakit.rewrite.rules._limits import conv_output_maps_max

RULE_ID = "fuse-sibling-convs"
#: ops that ride in the SDP behind a convolution (``sdp`` in ``data/ops.toml``, as the performance model reads it)
_SDP_ACT, _SDP_SCALE = op_data().having("sdp", "act"), op_data().having("sdp", "scale")


def _key(node: ir.Node) -> tuple | None:
    if node.op_type != "Conv" or len(node.inputs) < 2 or node.inputs[0] is None:
        return None
    weight = constant_array(node.inputs[1]) if is_constant(node.inputs[1]) else None
    if weight is None or node.attributes.get_int("group", 1) != 1:
        return None
    if len(node.inputs) > 2 and node.inputs[2] is not None and constant_array(node.inputs[2]) is None:
        return None
    if _rides_behind(node):
        return None
    attrs = tuple(sorted((a.name, str(a.value)) for a in node.attributes.values()))
    return (id(node.inputs[0]), weight.shape[1:], str(weight.dtype), attrs)


def _rides_behind(node: ir.Node) -> bool:
    """Whether the conv's only consumer is an activation or a Scale that the DLA fuses behind it."""
    out = node.outputs[0]
    users = list(out.uses())
    if out.is_graph_output() or len(users) != 1:
        return False
    user = users[0][0]
    if user.op_type in _SDP_ACT:
        return True
    others = [v for v in user.inputs if v is not None and v is not out]
    if user.op_type == "Add" and len(others) == 1 and static_dims(others[0]) == static_dims(out):
        return True  # a residual Add (an LSTM's peephole term) rides in the SDP too
    return user.op_type in _SDP_SCALE and all(is_constant(v) for v in others)


def _runs(siblings: list[ir.Node], limit: int) -> list[list[ir.Node]]:
    """Consecutive runs of siblings whose output maps add up to at most ``limit``."""
    runs: list[list[ir.Node]] = [[]]
    total = 0
    for node in siblings:
        maps = constant_array(node.inputs[1]).shape[0]
        if runs[-1] and total + maps > limit:
            runs.append([])
            total = 0
        runs[-1].append(node)
        total += maps
    return [run for run in runs if len(run) > 1]


def _bias(node: ir.Node) -> ir.Value | None:
    return node.inputs[2] if len(node.inputs) > 2 else None


def fuse_sibling_convs(graph: ir.Graph, opset: int) -> list[Applied]:
    groups: dict[tuple, list[ir.Node]] = defaultdict(list)
    for node in graph:
        key = _key(node)
        if key is not None:
            groups[key].append(node)
    applied: list[Applied] = []
    names = NameSource(graph)
    # fused (weight, bias) initializers by the sibling weights/biases they were made from
    made: dict[tuple[tuple[ir.Value | None, ir.Value | None], ...], tuple[ir.Value, ir.Value]] = {}
    for siblings in (run for group in groups.values() for run in _runs(group, conv_output_maps_max())):
        first = siblings[0]
        ctx = RuleContext(graph, opset, names)
        ctx.start(f"{first.name}/{RULE_ID}")
        source = tuple((n.inputs[1], _bias(n)) for n in siblings)
        if source not in made:
            weights = [constant_array(n.inputs[1]) for n in siblings]
            biases = [constant_array(_bias(n)) if _bias(n) is not None else np.zeros(w.shape[0], dtype=w.dtype)
                      for n, w in zip(siblings, weights, strict=True)]
            made[source] = (ctx.const(np.concatenate(weights), "weight"), ctx.const(np.concatenate(biases), "bias"))
        weight, bias = made[source]
        fused = ctx.op("Conv", [first.inputs[0], weight, bias], {a.name: a.value for a in first.attributes.values()})
        # all siblings read the same tensor and constant weights, so the first sibling's place is early enough
        anchor = siblings[0]
        start = 0
        outputs: dict[ir.Node, ir.Value] = {}
        for node in siblings:
            stop = start + constant_array(node.inputs[1]).shape[0]
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
