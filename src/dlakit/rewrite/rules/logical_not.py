"""``Not`` on 0/1 tensors is ``1 − x``: a multiply by −1 and an add of 1, which DLA runs as one Scale layer."""

from dlakit.rewrite.rules._logic import logic_rule, one_minus

RULE = logic_rule("logical-not", "Not", "Not(x) → 1 − x on 0/1 floats", lambda ctx, v: one_minus(ctx, v[0]))
