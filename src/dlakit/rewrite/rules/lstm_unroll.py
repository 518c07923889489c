"""LSTM → unrolled 1x1 convolutions, Sigmoid/Tanh and element-wise gates.

Gate order in ONNX weights is i, o, f, c; peepholes P are [i, o, f] and become per-channel Scale layers on the cell
state. ``input_forget`` (coupled gates) is refused.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import const_of
from dlakit.rewrite.rules._recurrent import Unroller, plan

GATES = 4
GATE_I, GATE_O, GATE_F, GATE_C = range(4)  # ONNX's i, o, f, c order


def _peepholes(node: ir.Node) -> np.ndarray | str | None:
    value = node.inputs[7] if len(node.inputs) > 7 else None
    if value is None:
        return None
    array = const_of(value)
    return "the peephole weights P are not build-time constants" if array is None else array


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    if node.attributes.get_int("input_forget", 0):
        return "input_forget=1 couples the input and forget gates"
    peep = _peepholes(node)
    if isinstance(peep, Answer):
        return peep
    rec = plan(node, GATES, ["Sigmoid", "Tanh", "Tanh"])
    return rec if isinstance(rec, Answer) else None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    rec = plan(node, GATES, ["Sigmoid", "Tanh", "Tanh"])
    assert not isinstance(rec, Answer)
    peep = _peepholes(node)
    u = Unroller(ctx, node, rec, GATES)
    h = rec.hidden

    def peephole(d: int, which: int, cell_state: ir.Value) -> list[ir.Value]:
        if peep is None or u.is_zero(cell_state):
            return []
        weights = u.shared(("peephole", d, which),
                           lambda: np.asarray(peep)[d, which * h:(which + 1) * h].reshape(1, h, 1, 1), "peephole")
        return [u.mul(cell_state, weights)]

    def cell(d: int, t: int, state: list[ir.Value]) -> list[ir.Value]:
        f_act, g_act, h_act = rec.activations[3 * d:3 * d + 3]
        h_prev, c_prev = state
        i = u.act(f_act, u.add(u.gate(d, GATE_I, t, h_prev), *peephole(d, 0, c_prev)))
        f = u.act(f_act, u.add(u.gate(d, GATE_F, t, h_prev), *peephole(d, 2, c_prev)))
        c_new = u.act(g_act, u.gate(d, GATE_C, t, h_prev))
        kept = [] if u.is_zero(c_prev) else [u.mul(f, c_prev)]
        cell_state = u.add(*kept, u.mul(i, c_new))
        o = u.act(f_act, u.add(u.gate(d, GATE_O, t, h_prev), *peephole(d, 1, cell_state)))
        return [u.mul(o, u.act(h_act, cell_state)), cell_state]

    hiddens, finals = u.run(cell, lambda d: [u.initial(5, d), u.initial(6, d)])
    return [u.sequence_output(hiddens), u.state_output([s[0] for s in finals]),
            u.state_output([s[1] for s in finals])]


RULE = Rule(id="lstm-unroll", ops=("LSTM",), summary="LSTM → unrolled 1x1 convs + Sigmoid/Tanh + element-wise gates",
            check=check, rewrite=rewrite)
