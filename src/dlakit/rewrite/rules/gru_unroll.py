"""GRU → unrolled 1x1 convolutions, Sigmoid/Tanh and element-wise gates (NVIDIA's GRU reconstruction).

Gate order in ONNX weights is z, r, h. With ``linear_before_reset=0`` the candidate is
``g(W_h·x + R_h·(r ⊙ H) + Wb_h + Rb_h)``; with 1 it is ``g(W_h·x + r ⊙ (R_h·H + Rb_h) + Wb_h)``. Then
``H' = (1 − z) ⊙ h + z ⊙ H``.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext
from dlakit.rewrite.rules._recurrent import Unroller, plan

GATES = 3


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    rec = plan(node, GATES, ["Sigmoid", "Tanh"])
    return rec if isinstance(rec, Answer) else None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    rec = plan(node, GATES, ["Sigmoid", "Tanh"])
    assert not isinstance(rec, Answer)
    u = Unroller(ctx, node, rec, GATES)
    before_reset = node.attributes.get_int("linear_before_reset", 0)

    def cell(d: int, t: int, state: list[ir.Value]) -> list[ir.Value]:
        f, g = rec.activations[2 * d], rec.activations[2 * d + 1]
        h_prev = state[0]
        z = u.act(f, u.gate(d, 0, t, h_prev))
        r = u.act(f, u.gate(d, 1, t, h_prev))
        if before_reset:
            candidate = u.add(u.gate(d, 2, t, None, recurrent_bias=False),
                              u.mul(r, u.recurrent(d, 2, h_prev, bias=True)))
        else:
            candidate = u.gate(d, 2, t, None if u.is_zero(h_prev) else u.mul(r, h_prev))
        h = u.act(g, candidate)
        new = u.mul(u.one_minus(z), h)
        return [new if u.is_zero(h_prev) else u.add(new, u.mul(z, h_prev))]

    hiddens, finals = u.run(cell, lambda d: [u.initial(5, d)])
    return [u.sequence_output(hiddens), u.state_output([f[0] for f in finals])]


RULE = Rule(id="gru-unroll", ops=("GRU",), summary="GRU → unrolled 1x1 convs + Sigmoid/Tanh + element-wise gates",
            check=check, rewrite=rewrite)
