"""``Xor`` on 0/1 tensors is the squared difference: (a−b)² is 1 exactly where they differ (Sub and Prod on DLA)."""

from dlakit.rewrite.rules._logic import logic_rule


def _xor(ctx, values):
    diff = ctx.op("Sub", values)
    return ctx.op("Mul", [diff, diff])


RULE = logic_rule("logical-xor", "Xor", "Xor(a, b) → (a−b)² on 0/1 floats", _xor)
