"""Group DLA nodes into loadables the way TensorRT does, and count what crosses between DLA and GPU.

TensorRT hands each maximal region of DLA layers to the DLA compiler as one loadable (a ``{ForeignNode[...]}`` in
its log). A region must not depend on itself through the GPU: if a GPU layer sits between two DLA layers of the
same region, the region splits. We walk the graph in topological order and let a DLA node join a predecessor's
subgraph only when no path from that subgraph reaches the node through a layer outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

from dlakit.check.placement import DLA, GPU, NOOP, NodePlacement
from dlakit.check.registry import Reason, rule_spec, trt_message


@dataclass
class DlaSubgraph:
    index: int
    nodes: list[NodePlacement] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def name(self) -> str:
        """TensorRT's log name for the loadable."""
        return f"{{ForeignNode[{self.nodes[0].name}...{self.nodes[-1].name}]}}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "nodes": [n.name for n in self.nodes],
            "macs": self.macs,
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


def form_subgraphs(placements: list[NodePlacement]) -> list[DlaSubgraph]:
    """Assign ``subgraph`` to every DLA placement (topologically ordered list) and return the subgraphs."""
    by_node = {id(p.node): p for p in placements}
    parent: dict[int, int] = {}

    def find(group: int) -> int:
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    def producers(node: ir.Node) -> list[NodePlacement]:
        """Placed producers of the node's inputs, looking through nodes TensorRT removes (Identity, Dropout)."""
        found = []
        for value in node.inputs:
            producer = value.producer() if value is not None else None
            if producer is None or id(producer) not in by_node:
                continue
            q = by_node[id(producer)]
            found.extend(producers(producer) if q.layer == NOOP else [q])
        return found

    reach: dict[int, set[int]] = {}  # node → subgraphs it is reachable from
    left: dict[int, set[int]] = {}  # node → subgraphs that reach it through a node outside them
    members: dict[int, list[NodePlacement]] = {}
    for p in placements:
        if p.layer == NOOP:
            continue
        preds = producers(p.node)
        reach_in = {find(g) for q in preds for g in reach[id(q.node)]}
        left_in = {find(g) for q in preds for g in left[id(q.node)]}
        group = None
        if p.placement == DLA:
            candidates = []
            for q in preds:
                if q.placement == DLA and q.subgraph is not None:
                    g = find(q.subgraph)
                    if g not in left_in and g not in candidates:
                        candidates.append(g)
            if candidates:
                group = candidates[0]
                for other in candidates[1:]:
                    if not _depends(other, group, members, left, find) and not _depends(group, other, members, left,
                                                                                        find):
                        parent[other] = group
                        members[group].extend(members.pop(other))
            else:
                group = len(parent)
                parent[group] = group
                members[group] = []
            members[group].append(p)
            p.subgraph = group
        own = {group} if group is not None else set()
        reach[id(p.node)] = reach_in | own
        left[id(p.node)] = left_in | (reach_in - own)
    ordered = sorted(members.values(), key=lambda ms: placements.index(ms[0]))
    subgraphs = []
    for index, nodes in enumerate(ordered):
        for n in nodes:
            n.subgraph = index
        subgraphs.append(DlaSubgraph(index=index, nodes=sorted(nodes, key=placements.index)))
    return subgraphs


def _depends(a: int, b: int, members: dict, left: dict, find) -> bool:
    """True when subgraph ``b`` has a node that ``a`` reaches through a node outside ``a``."""
    return any(a in {find(g) for g in left[id(n.node)]} for n in members[b])


def apply_loadable_limit(placements: list[NodePlacement], subgraphs: list[DlaSubgraph],
                         limit: int, hard: bool = True, trt_version: tuple[int, ...] = (10,)) -> list[DlaSubgraph]:
    """Move the layers of every subgraph past the per-core limit to the GPU, as TensorRT does.

    With ``hard=False`` (TensorRT 8.4: its guide's "at most four can be used concurrently", while NVIDIA's own 8.4
    log builds five DLA subgraphs) the excess subgraphs stay on the DLA and each of their layers carries a note."""
    if len(subgraphs) <= limit:
        return subgraphs
    spec = rule_spec("general.loadable-limit")
    if not hard:
        for subgraph in subgraphs[limit:]:
            for node in subgraph.nodes:
                node.notes.append(Reason(
                    rule=spec.name,
                    message=f"subgraph {subgraph.index + 1} of {len(subgraphs)}: the guide says at most {limit} DLA "
                            "loadables per core are used concurrently, but this release builds more (NVIDIA's "
                            "8.4 log shows 5); TensorRT may still switch it to the GPU",
                    value=len(subgraphs),
                    allowed=[1, limit],
                    confidence="low",
                    blocking=False,
                    source=spec.source,
                ))
        return subgraphs
    for subgraph in subgraphs[limit:]:
        for node in subgraph.nodes:
            node.placement = GPU
            node.subgraph = None
            node.reasons.append(Reason(
                rule=spec.name,
                message=f"DLA supports only {limit} subgraphs per DLA core; switching to GPU for layer {node.name}",
                value=len(subgraphs),
                allowed=[1, limit],
                confidence=spec.confidence,
                source=spec.source,
                trt_message=trt_message(spec, node.name, node.layer, node.op, trt_version, {"limit": limit}),
            ))
    return subgraphs[:limit]


def boundaries(placements: list[NodePlacement], subgraphs: list[DlaSubgraph], graph: ir.Graph) -> tuple[int, int]:
    """Fill each subgraph's input/output tensors; return (GPU↔DLA transitions, DLA tensors at the network I/O)."""
    region = {id(p.node): (f"dla{p.subgraph}" if p.placement == DLA else "gpu") for p in placements
              if p.placement in (DLA, GPU, "fixable")}
    by_node = {id(p.node): p for p in placements}

    def consumers(value: ir.Value) -> list[ir.Node]:
        found = []
        for user, _ in value.uses():
            p = by_node.get(id(user))
            if p is not None and p.layer == NOOP:
                found.extend(c for out in user.outputs for c in consumers(out))
            else:
                found.append(user)
        return found

    transitions = io = 0
    for p in placements:
        if id(p.node) not in region:
            continue
        for value in p.node.outputs:
            if value is None:
                continue
            source = region[id(p.node)]
            targets = {region[id(user)] for user in consumers(value) if id(user) in region}
            crossing = targets - {source}
            transitions += len(crossing)
            if source != "gpu" and (crossing or value.is_graph_output()):
                subgraphs[p.subgraph].outputs.append(value.name)
            if value.is_graph_output() and source != "gpu":
                io += 1
            for target in crossing:
                if target != "gpu":
                    subgraphs[int(target[3:])].inputs.append(value.name)
    for value in graph.inputs:
        targets = {region[id(user)] for user in consumers(value) if id(user) in region}
        for target in targets - {"gpu"}:
            subgraphs[int(target[3:])].inputs.append(value.name)
            io += 1
    return transitions, io
