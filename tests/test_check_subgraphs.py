"""Subgraph (loadable) formation and transition counting on graphs with interleaved GPU nodes."""

from __future__ import annotations

from onnx import helper

from tests.graphs import make_model, place, tensor, weights


def _chain(ops: list[str]):
    """x → op0 → op1 → ...; 'Conv' is a 1x1 DLA convolution, 'Elu' a GPU-only activation."""
    nodes, inits, current = [], [], "x"
    for i, op in enumerate(ops):
        out = f"t{i}"
        if op == "Conv":
            nodes.append(helper.make_node("Conv", [current, f"w{i}"], [out], name=f"n{i}", kernel_shape=[1, 1]))
            inits.append(weights(f"w{i}", [4, 4, 1, 1], seed=i))
        else:
            nodes.append(helper.make_node(op, [current], [out], name=f"n{i}"))
        current = out
    return make_model(nodes, [tensor("x", [1, 4, 8, 8])], [tensor(current, None)], inits)


def test_gpu_node_splits_a_chain_into_two_loadables():
    _, report = place(_chain(["Conv", "Relu", "Elu", "Conv", "Relu"]))
    assert report.summary["dla_subgraphs"] == 2
    assert report.summary["transitions"] == 2
    assert [n.subgraph for n in report.nodes] == [0, 0, None, 1, 1]
    assert report.subgraphs[0].name == "{ForeignNode[n0...n1]}"


def test_all_dla_chain_is_one_loadable_with_network_io():
    _, report = place(_chain(["Conv", "Relu", "Conv"]))
    assert report.summary["dla_subgraphs"] == 1
    assert report.summary["transitions"] == 0
    assert report.summary["dla_io_tensors"] == 2
    assert report.fully_on_dla


def test_region_that_would_loop_through_the_gpu_is_split():
    # a → elu(gpu) → add(a, elu): add cannot join a's loadable, or that loadable would wait on its own output.
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Elu", ["a"], ["e"], name="elu"),
        helper.make_node("Add", ["a", "e"], ["y"], name="add"),
    ]
    model = make_model(nodes, [tensor("x", [1, 4, 8, 8])], [tensor("y", None)], [weights("w", [4, 4, 1, 1])])
    _, report = place(model)
    by_name = {n.name: n for n in report.nodes}
    assert by_name["conv"].subgraph == 0 and by_name["add"].subgraph == 1
    assert report.summary["transitions"] == 3  # a→elu, elu→add, a→add (between loadables)


def test_independent_branches_merge_into_one_loadable():
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["x", "w2"], ["b"], name="c2", kernel_shape=[1, 1]),
        helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1),
    ]
    model = make_model(nodes, [tensor("x", [1, 4, 8, 8])], [tensor("y", None)],
                       [weights("w1", [4, 4, 1, 1]), weights("w2", [4, 4, 1, 1], seed=1)])
    _, report = place(model)
    assert report.summary["dla_subgraphs"] == 1


def test_loadable_limit_moves_the_excess_to_the_gpu():
    ops = ["Conv", "Elu"] * 20
    _, report = place(_chain(ops))
    assert report.summary["dla_subgraphs"] == 16
    switched = [n for n in report.nodes if any(r.rule == "general.loadable-limit" for r in n.reasons)]
    assert len(switched) == 4 and all(n.placement == "gpu" for n in switched)
    assert "DLA supports only 16 subgraphs per DLA core" in switched[0].reasons[0].message
    # TensorRT 8.4's "four loadables" is not a build-time cap: NVIDIA's own jetson_dla_tutorial 8.4.0 log builds five
    # DLA subgraphs (placement_evidence.md item 4). All 20 stay on the DLA with a note (was: 4, rest to the GPU).
    _, old = place(_chain(ops), release="jetpack-5.0.2")
    assert old.summary["dla_subgraphs"] == 20 and not old.summary["within_loadable_limit"]
    noted = [n for n in old.nodes if any(r.rule == "general.loadable-limit" for r in n.notes)]
    assert len(noted) == 16 and all(n.placement == "dla" for n in noted)
    assert not any(r.rule == "general.loadable-limit" for n in old.nodes for r in n.reasons)


def test_loadable_limit_of_8_4_is_a_note_with_five_subgraphs():
    """The 8.4 tutorial's engine: five {ForeignNode[...]} DLA subgraphs in one build."""
    _, report = place(_chain(["Conv", "Elu"] * 5), release="jetpack-5.0.2")
    assert report.summary["dla_subgraphs"] == 5
    assert all(n.placement != "gpu" or n.op == "Elu" for n in report.nodes)
    last = [n for n in report.nodes if n.subgraph == 4]
    assert last and "at most 4" in last[0].notes[-1].message
    assert last[0].notes[-1].rule == "general.loadable-limit" and not last[0].notes[-1].blocking


def test_identity_and_dropout_do_not_split_loadables():
    _, report = place(_chain(["Conv", "Identity", "Relu", "Dropout", "Conv"]))
    assert report.summary["dla_subgraphs"] == 1
    assert [n.placement for n in report.nodes] == ["dla", "folded", "dla", "folded", "dla"]


def test_mac_fraction_counts_gpu_macs():
    # the second conv runs on the GPU because its stride is out of range
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["a", "w2"], ["y"], name="c2", kernel_shape=[1, 1], strides=[9, 9]),
    ]
    model = make_model(nodes, [tensor("x", [1, 4, 18, 18])], [tensor("y", None)],
                       [weights("w1", [4, 4, 1, 1]), weights("w2", [4, 4, 1, 1], seed=1)])
    _, report = place(model)
    dla_macs = 4 * 4 * 18 * 18
    gpu_macs = 4 * 4 * 2 * 2
    assert report.summary["dla_mac_fraction"] == round(dla_macs / (dla_macs + gpu_macs), 6)


def test_layer_after_a_merge_stays_in_the_merged_loadable():
    # c1 and c2 start two subgraphs that the Concat merges; the Relu after it must join the merged one (it once
    # saw the merged-away subgraph as "reaching it from outside" and split off into a loadable of its own).
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["x", "w2"], ["b"], name="c2", kernel_shape=[1, 1]),
        helper.make_node("Concat", ["a", "b"], ["c"], name="cat", axis=1),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    model = make_model(nodes, [tensor("x", [1, 4, 8, 8])], [tensor("y", None)],
                       [weights("w1", [4, 4, 1, 1]), weights("w2", [4, 4, 1, 1], seed=1)])
    _, report = place(model)
    assert report.summary["dla_subgraphs"] == 1 and report.summary["transitions"] == 0
    assert [n.subgraph for n in report.nodes] == [0, 0, 0, 0]
