"""Analysis scales with graph size: the fast subgraph formation agrees with its plain definition, and long chains
go through check, estimate and fix without recursion limits.

No test here is timed. The differential test compares :func:`form_subgraphs` with a direct transcription of the
rule it implements (per-node reachability sets over *all* subgraphs, quadratic), on random DAGs with GPU layers,
removed Identity nodes and merges, so the pruning of dead subgraphs can never change a decision unnoticed.
"""

from __future__ import annotations

import json
import random

import onnx_ir as ir
from onnx import helper

from dlakit.check.placement import DLA, FIXABLE, FOLDED, GPU, NOOP, NodePlacement
from dlakit.check.subgraphs import form_subgraphs
from tests.cli import run
from tests.graphs import make_model, tensor


def reference_subgraphs(placements: list[NodePlacement]) -> list[list[str]]:
    """The rule, spelled out: a DLA layer joins a predecessor's subgraph unless that subgraph reaches it through a
    layer outside it; two joinable subgraphs merge unless one reaches the other from outside. Returns the member
    names of every subgraph, in subgraph order."""
    by_node = {id(p.node): p for p in placements}
    parent: dict[int, int] = {}

    def find(group: int) -> int:
        while parent[group] != group:
            group = parent[group]
        return group

    def producers(node: ir.Node) -> list[NodePlacement]:
        found = []
        for value in node.inputs:
            producer = value.producer() if value is not None else None
            if producer is None or id(producer) not in by_node:
                continue
            q = by_node[id(producer)]
            found.extend(producers(producer) if q.layer == NOOP else [q])
        return found

    def depends(a: int, b: int) -> bool:
        return any(a in {find(g) for g in left[id(n.node)]} for n in members[b])

    reach: dict[int, set[int]] = {}
    left: dict[int, set[int]] = {}
    members: dict[int, list[NodePlacement]] = {}
    group_of: dict[int, int] = {}
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
                if q.placement == DLA:
                    g = find(group_of[id(q.node)])
                    if g not in left_in and g not in candidates:
                        candidates.append(g)
            if candidates:
                group = candidates[0]
                for other in candidates[1:]:
                    if not depends(other, group) and not depends(group, other):
                        parent[other] = group
                        members[group].extend(members.pop(other))
            else:
                group = len(parent)
                parent[group] = group
                members[group] = []
            members[group].append(p)
            group_of[id(p.node)] = group
        own = {find(group)} if group is not None else set()
        reach[id(p.node)] = reach_in | own
        # by class: a subgraph merged into this node's own at this node does not reach it from outside
        left[id(p.node)] = left_in | {r for r in map(find, reach_in) if r not in own}
    position = {id(p.node): i for i, p in enumerate(placements)}
    ordered = sorted(members.values(), key=lambda ms: position[id(ms[0].node)])
    return [[n.name for n in sorted(ms, key=lambda n: position[id(n.node)])] for ms in ordered]


def random_placements(rng: random.Random, size: int) -> list[NodePlacement]:
    """A random DAG in topological order: mostly DLA layers, some GPU, fixable, folded and removed (Identity) ones,
    each reading one to three earlier tensors."""
    values = [ir.Value(name="x")]
    placements = []
    for i in range(size):
        kind = rng.choices([DLA, GPU, FIXABLE, FOLDED, NOOP], weights=[8, 3, 1, 1, 1])[0]
        fan_in = 1 if kind == NOOP else rng.choice([1, 1, 1, 2, 2, 3])
        recent = values[-6:] if rng.random() < 0.8 else values
        inputs = [rng.choice(recent) for _ in range(fan_in)]
        node = ir.Node("", "Identity" if kind == NOOP else "Op", inputs, num_outputs=1, name=f"n{i}")
        values.append(node.outputs[0])
        layer = NOOP if kind == NOOP else "constant" if kind == FOLDED else "elementwise"
        placement = FOLDED if kind == NOOP else kind
        placements.append(NodePlacement(f"n{i}", node.op_type, layer, placement, 0, 0, node=node))
    return placements


def test_fast_subgraph_formation_agrees_with_the_plain_rule_on_random_graphs():
    rng = random.Random(13)
    for trial in range(400):
        placements = random_placements(rng, rng.randint(1, 40))
        expected = reference_subgraphs(placements)
        got = [[n.name for n in s.nodes] for s in form_subgraphs(placements)]
        assert got == expected, f"trial {trial}"
        for index, members in enumerate(got):
            assert all(p.subgraph == index for p in placements if p.name in members)


def test_alternating_chain_keeps_subgraph_sets_small():
    # DLA, GPU, DLA, GPU, ...: every DLA layer is its own subgraph; the plain rule carries every earlier subgraph
    # in every later node's sets (quadratic), the pruned one only the live ones. 20,000 nodes only finish quickly
    # with the pruning; the answer is checked, not the time.
    values = [ir.Value(name="x")]
    placements = []
    for i in range(20_000):
        node = ir.Node("", "Op", [values[-1]], num_outputs=1, name=f"n{i}")
        values.append(node.outputs[0])
        placements.append(NodePlacement(f"n{i}", "Op", "elementwise", DLA if i % 2 == 0 else GPU, 0, 0, node=node))
    subgraphs = form_subgraphs(placements)
    assert len(subgraphs) == 10_000
    assert [n.name for n in subgraphs[-1].nodes] == ["n19998"]


def _relu_chain(path, n: int) -> None:
    nodes = [helper.make_node("Relu", [f"t{i}" if i else "x"], [f"t{i + 1}" if i < n - 1 else "y"], name=f"r{i}")
             for i in range(n)]
    model = make_model(nodes, [tensor("x", [1, 8, 16, 16])], [tensor("y", None)])
    path.write_bytes(model.SerializeToString())


def test_five_thousand_node_chain_through_check_estimate_and_fix(tmp_path):
    source = tmp_path / "chain.onnx"
    _relu_chain(source, 5000)
    result = run("check", str(source), "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["dla_nodes"] == 5000 and summary["dla_subgraphs"] == 1 and summary["transitions"] == 0
    result = run("estimate", str(source), "--format", "json")
    assert result.returncode == 0, result.stderr
    result = run("fix", str(source), "-o", str(tmp_path / "fixed.onnx"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fixed.onnx").is_file()
