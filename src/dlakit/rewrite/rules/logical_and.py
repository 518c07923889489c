"""``And`` on 0/1 tensors is their product (an element-wise Prod layer on DLA)."""

from dlakit.rewrite.rules._logic import logic_rule

RULE = logic_rule("logical-and", "And", "And(a, b) → a·b on 0/1 floats",
                  lambda ctx, v: ctx.op("Mul", v))
