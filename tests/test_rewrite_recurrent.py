"""GRU / LSTM / RNN unrolling: directions, biases, initial states, peepholes, linear_before_reset; refusals."""

from __future__ import annotations

import numpy as np
import pytest

from dlakit.rewrite.testing import one_op_model, run_rules

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


def test_unrolled_gates_fuse_into_fewer_convs():
    run = run_rules(recurrent_model("GRU"), ["gru-unroll", "fuse-sibling-convs"])
    alone = run_rules(recurrent_model("GRU"), ["gru-unroll"])
    assert run.ops.count("Conv") < alone.ops.count("Conv") and run.verification.passed


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
