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

from dlakit.check.placement import DLA, FIXABLE, GPU, NOOP, NodePlacement
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


def placed_producers(placements: list[NodePlacement]) -> dict[int, list[NodePlacement]]:
    """Per layer node (by ``id``): the placed producers of its inputs, looking through nodes TensorRT removes.

    Identity and Dropout (``noop``) vanish at build time, so a layer after them depends on what feeds them. One pass
    in topological order with the look-through memoised per removed node: linear, and no recursion on long chains
    of removed nodes."""
    by_node = {id(p.node): p for p in placements}
    through: dict[int, list[NodePlacement]] = {}  # removed node → the layers it stands for
    found: dict[int, list[NodePlacement]] = {}
    for p in placements:
        preds: list[NodePlacement] = []
        for value in p.node.inputs:
            producer = value.producer() if value is not None else None
            q = by_node.get(id(producer)) if producer is not None else None
            if q is None:
                continue
            if q.layer == NOOP:
                preds.extend(through.get(id(producer), ()))
            else:
                preds.append(q)
        (through if p.layer == NOOP else found)[id(p.node)] = preds
    return found


def form_subgraphs(placements: list[NodePlacement]) -> list[DlaSubgraph]:
    """Assign ``subgraph`` to every DLA placement (topologically ordered list) and return the subgraphs.

    Every layer carries ``reach`` (the subgraphs it is reachable from) and ``left`` (those that reach it through a
    layer outside them: joining one of those would make it depend on itself). Both sets hold only *live* subgraphs,
    those with a member whose consumers are not all placed yet: a subgraph none of whose members feeds a later
    layer can never be joined or merged again, so dropping it changes no decision. This keeps the sets as small as
    the graph is wide, not as long as it is deep: a chain of any length costs O(1) per node, and a graph costs
    O((nodes + edges) x live subgraphs), with union-find (path halving, union by size) for the merges."""
    preds_of = placed_producers(placements)
    position = {id(p.node): i for i, p in enumerate(placements)}
    last_use: dict[int, int] = {}  # layer → position of its last consumer layer
    for p in placements:
        for q in preds_of.get(id(p.node), ()):
            last_use[id(q.node)] = position[id(p.node)]
    parent: dict[int, int] = {}
    expiry: dict[int, int] = {}  # root → last position at which a member still feeds a layer
    first: dict[int, int] = {}  # root → position of its first member (the subgraphs' order)
    size: dict[int, int] = {}
    group_left: dict[int, set[int]] = {}  # root → union of its members' ``left`` sets

    def find(group: int) -> int:
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    def depends(a: int, b: int, now: int) -> bool:
        """True when subgraph ``b`` has a node that ``a`` reaches through a node outside ``a``."""
        live = {r for r in map(find, group_left[b]) if expiry[r] >= now}
        group_left[b] = live
        return a in live

    reach: dict[int, set[int]] = {}
    left: dict[int, set[int]] = {}
    for now, p in enumerate(placements):
        if p.layer == NOOP:
            continue
        preds = preds_of[id(p.node)]
        reach_in = {r for q in preds for r in map(find, reach[id(q.node)]) if expiry[r] >= now}
        left_in = {r for q in preds for r in map(find, left[id(q.node)]) if expiry[r] >= now}
        group = None
        if p.placement == DLA:
            candidates: list[int] = []
            seen: set[int] = set()
            for q in preds:
                if q.placement == DLA and q.subgraph is not None:
                    g = find(q.subgraph)
                    if g not in left_in and g not in seen:
                        seen.add(g)
                        candidates.append(g)
            if candidates:
                group = candidates[0]
                for other in candidates[1:]:
                    if not depends(other, group, now) and not depends(group, other, now):
                        group = _union(group, other, parent, size, first, expiry, group_left)
            else:
                group = len(parent)
                parent[group] = group
                size[group] = 0
                first[group] = now
                expiry[group] = now
                group_left[group] = set()
            size[group] += 1
            expiry[group] = max(expiry[group], last_use.get(id(p.node), now))
            p.subgraph = group
        own = {group} if group is not None else set()
        reach[id(p.node)] = reach_in | own
        # by class: a subgraph merged into this node's own at this node does not reach it from outside
        left[id(p.node)] = left_in | {r for r in map(find, reach_in) if r not in own}
        if group is not None:
            group_left[group] |= left[id(p.node)]
    buckets: dict[int, list[NodePlacement]] = {}
    for p in placements:
        if p.placement == DLA and p.subgraph is not None:
            buckets.setdefault(find(p.subgraph), []).append(p)
    ordered = sorted(buckets.items(), key=lambda item: first[item[0]])
    subgraphs = []
    for index, (_, nodes) in enumerate(ordered):
        for n in nodes:
            n.subgraph = index
        subgraphs.append(DlaSubgraph(index=index, nodes=nodes))
    return subgraphs


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
              if p.placement in (DLA, GPU, FIXABLE)}
    by_node = {id(p.node): p for p in placements}

    def consumers(value: ir.Value) -> list[ir.Node]:
        """Users of ``value``, looking through removed nodes (iteratively: chains of them may be long)."""
        found, stack = [], [value]
        while stack:
            for user, _ in stack.pop().uses():
                p = by_node.get(id(user))
                if p is not None and p.layer == NOOP:
                    stack.extend(reversed(user.outputs))
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


def _union(keep: int, other: int, parent: dict[int, int], size: dict[int, int], first: dict[int, int],
           expiry: dict[int, int], group_left: dict[int, set[int]]) -> int:
    """Merge roots ``keep`` and ``other`` (union by size) and return the new root; the merged subgraph keeps
    ``keep``'s first member, which orders the subgraphs."""
    root, child = (keep, other) if size[keep] >= size[other] else (other, keep)
    parent[child] = root
    size[root] += size.pop(child)
    first[root] = first.pop(keep) if root != keep else first[keep]
    first.pop(child, None)
    expiry[root] = max(expiry[root], expiry.pop(child))
    mine, theirs = group_left.pop(root), group_left.pop(child)
    if len(mine) < len(theirs):
        mine, theirs = theirs, mine
    mine |= theirs
    group_left[root] = mine
    return root
