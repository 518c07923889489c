"""Graph steps of the recipes that ``dlakit.rewrite`` does not provide (yet), each small and named in the report.

* ``fuse-head-siblings``: :func:`dlakit.rewrite.passes.fuse_sibling_convs` restricted to the recipe's head
  convolutions. The pass itself fuses *every* group of sibling convolutions, which in a ResNet also merges a
  stage's first 1x1 convolution with its 1x1 projection shortcut (same input, same attributes): legal, but not what
  NVIDIA's preparation does, and it adds Slice layers inside the body. The other convolutions are hidden from the
  pass by a temporary marker attribute (part of its grouping key) and restored afterwards.
* ``expose-fused-heads``: after fusion each head is a Conv followed by one channel Slice per original head, and the
  slices are graph outputs. DLA writes the fused convolution's output directly; the post-processing on the GPU
  splits channels for free, so the Slices go and the fused tensor becomes one output.
* ``four-d-outputs``: an output that is a 4-D tensor with its unit dimensions squeezed away (``(N, C, 1, 1)`` →
  ``(N, C)``) becomes the 4-D tensor itself, the layout DLA writes; the numbers are the same.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx_ir as ir

from dlakit.model import LoadedModel, constant_array, static_dims
from dlakit.rewrite.engine import Applied, reload
from dlakit.rewrite.passes import fuse_sibling_convs

HIDE = "_dlakit_prepare_keep_apart"


def fuse_head_siblings(model: LoadedModel, heads: Iterable[str]) -> list[Applied]:
    """Fuse sibling convolutions among the convs producing ``heads`` (tensor names) only."""
    wanted = set(heads)
    hidden: list[ir.Node] = []
    for index, node in enumerate(model.graph):
        if node.op_type == "Conv" and not any(out.name in wanted for out in node.outputs):
            node.attributes[HIDE] = ir.AttrInt64(HIDE, index)
            hidden.append(node)
    try:
        applied = fuse_sibling_convs(model.graph, model.opset)
    finally:
        for node in hidden:
            if node.graph is not None:
                del node.attributes[HIDE]
    if applied:
        reload(model)
    return applied


def _channel_slice(node: ir.Node) -> tuple[int, int] | None:
    """(start, end) of a Slice that cuts only the channel axis, from constant inputs (opset ≥ 10)."""
    if node.op_type != "Slice" or len(node.inputs) < 4:
        return None
    starts, ends, axes = (constant_array(v) for v in node.inputs[1:4])
    steps = constant_array(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
    if starts is None or ends is None or axes is None or (steps is not None and np.any(steps != 1)):
        return None
    if [int(a) for a in axes.reshape(-1)] != [1]:
        return None
    return int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])


def expose_fused_heads(model: LoadedModel) -> dict[str, list[str]]:
    """Replace output Slices of a fused conv by the conv's output; return {new output: [the outputs it joins]}."""
    graph = model.graph
    joined: dict[str, list[str]] = {}
    for node in list(graph):
        if node.op_type != "Conv":
            continue
        out = node.outputs[0]
        shape = static_dims(out)
        users = [use.node for use in out.uses()]
        if shape is None or len(users) < 2 or out.is_graph_output():
            continue
        spans = [_channel_slice(user) for user in users]
        if any(s is None for s in spans) or not all(u.outputs[0].is_graph_output() for u in users):
            continue
        ordered = sorted(zip(spans, users, strict=True), key=lambda item: item[0])  # type: ignore[arg-type, return-value]
        edges = [0] + [span[1] for span, _ in ordered]  # type: ignore[index]
        if [span[0] for span, _ in ordered] != edges[:-1] or edges[-1] != shape[1]:  # type: ignore[index]
            continue
        names = [user.outputs[0].name or "" for _, user in ordered]
        positions = [i for i, v in enumerate(graph.outputs) if v.producer() in users]
        outputs = [v for v in graph.outputs if v.producer() not in users]
        outputs.insert(min(positions), out)
        graph.outputs.clear()
        graph.outputs.extend(outputs)
        for user in users:
            user.outputs[0].name = f"{user.outputs[0].name}__sliced"
            graph.remove(user, safe=True)
        taken = {v.name for n in graph for v in n.outputs} | {v.name for v in graph.inputs} | set(graph.initializers)
        out.name = _joined_name(names, taken)
        joined[out.name] = names
    if joined:
        reload(model)
    return joined


def _joined_name(names: list[str], taken: set[str | None]) -> str:
    """The heads' common prefix up to a separator (``box_predictor.0.box``, ``box_predictor.0.class`` →
    ``box_predictor.0``) when there is one and it is free, else the names joined with ``+``."""
    prefix = names[0]
    for name in names[1:]:
        pairs = enumerate(zip(prefix, name, strict=False))
        size = next((i for i, (a, b) in pairs if a != b), min(len(prefix), len(name)))
        prefix = prefix[:size]
    cut = max(prefix.rfind(sep) for sep in "._/:")
    stem = prefix[:cut] if cut > 0 else ""
    return stem if stem and stem not in taken else "+".join(names)


def four_d_outputs(model: LoadedModel) -> list[str]:
    """Outputs that squeeze unit dims off a 4-D tensor become that tensor (same name); return their names."""
    graph = model.graph
    changed: list[str] = []
    for index, value in enumerate(list(graph.outputs)):
        node = value.producer()
        if node is None or node.op_type not in ("Reshape", "Flatten", "Squeeze"):
            continue
        x = node.inputs[0]
        before, after = static_dims(x) if x is not None else None, static_dims(value)
        if x is None or before is None or after is None or len(before) != 4:
            continue
        if [d for d in before if d != 1] != [d for d in after if d != 1] or before[0] != after[0]:
            continue
        if x.is_graph_input() or x.is_graph_output() or len(x.uses()) != 1 or x.producer() is None:
            continue
        name = value.name
        graph.outputs[index] = x
        value.name = f"{name}__squeezed"
        graph.remove(node, safe=True)
        x.name = name
        changed.append(name or "")
    if changed:
        reload(model)
    return changed
