"""GRU / LSTM / RNN unrolling: directions, biases, initial states, peepholes, linear_before_reset; refusals."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx import numpy_helper as nh

from dlakit.check import check_model
from dlakit.model import load_model
from dlakit.rewrite.rules import _recurrent
from dlakit.rewrite.rules._limits import dims_max
from dlakit.rewrite.testing import one_op_model, run_rules
from dlakit.targets import resolve_target

F32 = np.float32
GATES = {"GRU": 3, "LSTM": 4, "RNN": 1}


def recurrent_model(op, direction="forward", bias=True, initial=False, peepholes=False, seq=4, batch=2, inp=3,
                    hidden=5, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    gates = GATES[op]
    constants = {"W": rng.standard_normal((dirs, gates * hidden, inp)).astype(F32) * 0.5,
                 "R": rng.standard_normal((dirs, gates * hidden, hidden)).astype(F32) * 0.5}
    order = ["x", "W", "R"]
    inputs = {"x": ((seq, batch, inp), F32)}
    if bias:
        constants["B"] = rng.standard_normal((dirs, 2 * gates * hidden)).astype(F32) * 0.5
    order.append("B" if bias else "")
    if initial or peepholes:
        order.append("")  # sequence_lens
        inputs["h0"] = ((dirs, batch, hidden), F32)
        order.append("h0")
        if op == "LSTM":
            inputs["c0"] = ((dirs, batch, hidden), F32)
            order.append("c0")
            if peepholes:
                constants["P"] = rng.standard_normal((dirs, 3 * hidden)).astype(F32)
                order.append("P")
    return one_op_model(op, inputs, constants, order=order, outputs=3 if op == "LSTM" else 2, hidden_size=hidden,
                        direction=direction, **attrs)


@pytest.mark.parametrize("op", ["GRU", "LSTM", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize(("bias", "initial"), [(True, False), (False, False), (True, True)])
def test_unroll_grid(op, direction, bias, initial):
    rule = f"{op.lower()}-unroll"
    run = run_rules(recurrent_model(op, direction, bias, initial), [rule])
    assert run.applied == [rule] and op not in run.ops
    assert {"Conv", "Slice"} <= set(run.ops)
    assert run.verification.passed, run.verification.outputs


def test_gru_linear_before_reset():
    run = run_rules(recurrent_model("GRU", linear_before_reset=1), ["gru-unroll"])
    assert run.verification.passed


def test_lstm_peepholes_bidirectional():
    run = run_rules(recurrent_model("LSTM", "bidirectional", peepholes=True), ["lstm-unroll"])
    assert run.verification.passed


def test_gate_convs_keep_their_fused_activations():
    """Each gate's conv feeds its Sigmoid/Tanh alone (one DLA operation); fusing siblings would split it in three."""
    run = run_rules(recurrent_model("GRU"), ["gru-unroll", "fuse-sibling-convs"])
    alone = run_rules(recurrent_model("GRU"), ["gru-unroll"])
    assert run.ops.count("Conv") == alone.ops.count("Conv") and run.verification.passed


def recogniser(op="LSTM", seq=16, hidden=64, feat=32, classes=10, seed=0, direction="bidirectional"):
    """An OCR CNN+RNN recogniser: conv stack → feature map [1, C, 1, T] → Squeeze/Transpose → RNN → MatMul.

    The pattern of CRNN-style text recognisers: the sequence is the feature map's width, read by a (bidirectional)
    LSTM/GRU whose outputs a classifier maps to characters.
    """
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def const(name, array):
        inits.append(nh.from_array(np.asarray(array), name))
        return name

    x, channels = "image", [1, 8, 16, feat]
    for i in range(3):
        w = rng.standard_normal((channels[i + 1], channels[i], 3, 3)) / np.sqrt(9 * channels[i])
        nodes.append(helper.make_node("Conv", [x, const(f"w{i}", w.astype(F32)), const(f"b{i}", np.zeros(
            channels[i + 1], F32))], [f"c{i}"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        window = [2, 2] if i == 0 else [2, 1]
        nodes.append(helper.make_node("MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=window, strides=window))
        x = f"p{i}"
    nodes.append(helper.make_node("MaxPool", [x], ["hp"], kernel_shape=[4, 1], strides=[4, 1]))  # H 4 → 1
    nodes.append(helper.make_node("Squeeze", ["hp", const("axis", np.array([2], np.int64))], ["sq"]))  # [1, C, T]
    nodes.append(helper.make_node("Transpose", ["sq"], ["sequence"], perm=[2, 0, 1]))  # [T, 1, C]
    dirs, gates = (2 if direction == "bidirectional" else 1), GATES[op]
    weights = [const("W", (rng.standard_normal((dirs, gates * hidden, feat)) / np.sqrt(feat)).astype(F32)),
               const("R", (rng.standard_normal((dirs, gates * hidden, hidden)) / np.sqrt(hidden)).astype(F32)),
               const("B", (rng.standard_normal((dirs, 2 * gates * hidden)) * 0.1).astype(F32))]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    nodes.append(helper.make_node(op, ["sequence", *weights], outs, hidden_size=hidden, direction=direction))
    nodes.append(helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]))  # [T, 1, dirs, H]
    nodes.append(helper.make_node("Reshape", ["Yt", const("shape", np.array([seq, 1, dirs * hidden], np.int64))],
                                  ["features"]))
    classifier = (rng.standard_normal((dirs * hidden, classes)) / np.sqrt(dirs * hidden)).astype(F32)
    nodes.append(helper.make_node("MatMul", ["features", const("fc", classifier)], ["logits"]))
    graph = helper.make_graph(nodes, "recogniser", [helper.make_tensor_value_info(
        "image", onnx.TensorProto.FLOAT, [1, 1, 32, 2 * seq])], [helper.make_empty_tensor_value_info("logits")],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def weight_bytes(model):
    return sum(nh.to_array(t).nbytes for t in model.graph.initializer)


def conv_weights(model):
    """Per Conv weight initializer, how many Conv nodes read it."""
    uses = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            uses[node.input[1]] = uses.get(node.input[1], 0) + 1
    return uses


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_unrolled_weights_are_shared_by_every_step(op):
    """One initializer per gate weight, read by every step: the size does not grow with the sequence length."""
    sizes, weights = {}, {}
    for seq in (16, 32):
        original = recogniser(op, seq=seq)
        run = run_rules(original, [f"{op.lower()}-unroll", "fuse-sibling-convs"])
        assert run.applied[0] == f"{op.lower()}-unroll" and run.verification.passed, run.verification.outputs
        fixed = run.result.proto()
        sizes[seq], weights[seq] = weight_bytes(fixed), conv_weights(fixed)
        # W is kept once alone (the first step, whose state is zero) and once inside each gate's [W | R]
        assert sizes[seq] <= 2 * weight_bytes(original)
        assert max(weights[seq].values()) == seq - 1  # a gate's [W | R], read by every step after the first
    # 16 more steps add only their Slice indices (starts/ends/axes, 24 bytes a step), no weights
    assert sizes[32] - sizes[16] <= 16 * 24 and len(weights[16]) == len(weights[32])


def test_concat_over_the_channel_limit_is_split():
    """seq × hidden = 16 × 640 = 10,240 channels > DLA's 8,192: the steps are joined in Concats within the limit."""
    model = recogniser("GRU", seq=16, hidden=640, direction="forward")
    run = run_rules(model, ["gru-unroll"])
    assert run.applied == ["gru-unroll"] and run.verification.passed, run.verification.outputs
    fixed = load_model(run.result.proto())
    report = check_model(fixed, resolve_target(), "int8")
    assert not any(r.rule == "general.dims" for n in report.nodes for r in n.reasons)
    concats = [n for n in fixed.graph if n.op_type == "Concat" and n.attributes.get_int("axis") == 1]
    channels = [n.outputs[0].shape[1] for n in concats]
    assert max(channels) <= dims_max() and 640 * 12 in channels  # 12 steps of 640 channels per chunk


def test_unrolled_recogniser_adds_no_transitions_per_step():
    """The CNN and the recurrence form one DLA subgraph; transitions do not grow with the sequence length."""
    target = resolve_target()
    counts = {}
    for seq in (16, 32):
        original = recogniser("LSTM", seq=seq)
        run = run_rules(original, None)
        assert "lstm-unroll" in run.applied and run.verification.passed, run.verification.outputs
        report = check_model(load_model(run.result.proto()), target, "int8")
        counts[seq] = report.transitions
        biggest = max(report.subgraphs, key=lambda s: len(s.nodes))
        names = {n.name for n in biggest.nodes}
        assert "node_of_c0" in names and any("lstm-unroll" in name for name in names)
    assert counts[16] == counts[32]


@pytest.mark.parametrize("op", ["GRU", "LSTM", "RNN"])
def test_gates_fall_back_to_two_convs_over_the_input_channel_limit(monkeypatch, op):
    """input + hidden = 3 + 5 over a (patched) limit of 6: per gate a conv on x_t and one on H, summed."""
    monkeypatch.setattr(_recurrent, "conv_input_channels_max", lambda: 6)
    rule = f"{op.lower()}-unroll"
    run = run_rules(recurrent_model(op, "bidirectional", initial=True, seq=16), [rule])
    assert run.applied == [rule] and "Concat" in run.ops and run.verification.passed, run.verification.outputs
    fixed = run.result.proto()
    joined = {n.output[0] for n in fixed.graph.node if n.op_type == "Concat"}
    assert not any(n.op_type == "Conv" and n.input[0] in joined for n in fixed.graph.node)


@pytest.mark.parametrize(("patched", "value", "hidden", "fragment"), [
    ("conv_input_channels_max", 4, 5, "conv.input-channels"),
    ("dims_max", 4, 5, "general.dims"),
    ("conv_output_maps_max", 4, 5, "conv.output-maps"),
])
def test_unroll_refuses_when_no_split_fits(monkeypatch, patched, value, hidden, fragment):
    """The limits come from rules.toml; with a smaller one no unrolled form fits, and the reason names it."""
    monkeypatch.setattr(_recurrent, patched, lambda: value)
    run = run_rules(recurrent_model("GRU", hidden=hidden, seq=16), ["gru-unroll"])
    assert run.applied == [] and fragment in run.reasons[0] and str(value) in run.reasons[0]


@pytest.mark.parametrize(("attrs", "fragment"), [
    ({"clip": 1.0}, "clips"),
    ({"activations": ["Sigmoid", "Elu"]}, "only"),
    ({"seq": 300}, "unrolling beyond"),
])
def test_unroll_refusals(attrs, fragment):
    seq = attrs.pop("seq", 4)
    run = run_rules(recurrent_model("GRU", seq=seq, **attrs), ["gru-unroll"])
    assert run.applied == [] and fragment in run.reasons[0]


def test_unroll_refuses_runtime_weights():
    model = one_op_model("RNN", {"x": ((2, 1, 3), F32), "W": ((1, 4, 3), F32), "R": ((1, 4, 4), F32)},
                         hidden_size=4, outputs=2)
    run = run_rules(model, ["rnn-unroll"])
    assert run.applied == [] and "not build-time constants" in run.reasons[0]
