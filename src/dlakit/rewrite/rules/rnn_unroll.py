"""RNN → unrolled 1x1 convolutions and an activation per step: ``H' = f(W·x + R·H + Wb + Rb)``."""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext
from dlakit.rewrite.rules._recurrent import Unroller, plan


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    rec = plan(node, 1, ["Tanh"])
    return rec if isinstance(rec, Answer) else None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    rec = plan(node, 1, ["Tanh"])
    assert not isinstance(rec, Answer)
    u = Unroller(ctx, node, rec, 1)

    def cell(d: int, t: int, state: list[ir.Value]) -> list[ir.Value]:
        return [u.act(rec.activations[d], u.gate(d, 0, t, state[0]))]

    hiddens, finals = u.run(cell, lambda d: [u.initial(5, d)])
    return [u.sequence_output(hiddens), u.state_output([f[0] for f in finals])]


RULE = Rule(id="rnn-unroll", ops=("RNN",), summary="RNN → unrolled 1x1 convs + activation", check=check,
            rewrite=rewrite)
