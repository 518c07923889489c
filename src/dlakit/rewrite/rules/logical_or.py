"""``Or`` on 0/1 tensors is their maximum (an element-wise Max layer on DLA)."""

from dlakit.rewrite.rules._logic import logic_rule

RULE = logic_rule("logical-or", "Or", "Or(a, b) → max(a, b) on 0/1 floats",
                  lambda ctx, v: ctx.op("Max", v))
