"""Nearest Resize whose coordinate/rounding mode picks the same pixels as asymmetric + floor → that mode.

DLA's resize takes nearest neighbour only as asymmetric + floor or half_pixel + round_prefer_floor/ceil (check's
``resize.mode``). Exporters also write e.g. TF's ``tf_half_pixel_for_nn`` + floor, or ``align_corners`` at scale 1
on some axis: at the model's own integer scales these select exactly the source pixels ``floor(i / s)`` that
asymmetric + floor selects, so only the attribute changes and the output is bit-identical. The rule computes both
index maps for the actual input sizes (exactly, and with a float32-sized nudge either way, so a rounding tie that
ONNX Runtime or TensorRT might resolve differently is never relied on) and refuses when they differ anywhere.
"""

from __future__ import annotations

import math
from fractions import Fraction

import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import const_of, dims
from dlakit.rewrite.rules._limits import limit

TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
ROUNDINGS = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
NUDGE = Fraction(1, 10**5)


def _source(transform: str, i: int, size: int, out: int, scale: Fraction) -> Fraction:
    if transform == "half_pixel" or (transform == "pytorch_half_pixel" and out > 1):
        return (i + Fraction(1, 2)) / scale - Fraction(1, 2)
    if transform == "pytorch_half_pixel":
        return Fraction(0)
    if transform == "align_corners":
        return Fraction(0) if out == 1 else Fraction(i * (size - 1), out - 1)
    if transform == "tf_half_pixel_for_nn":
        return (i + Fraction(1, 2)) / scale
    return i / scale


def _round(rounding: str, x: Fraction) -> int:
    if rounding == "floor":
        return math.floor(x)
    if rounding == "ceil":
        return math.ceil(x)
    if rounding == "round_prefer_floor":
        return math.ceil(x - Fraction(1, 2))
    return math.floor(x + Fraction(1, 2))


def _dyadic(value: Fraction) -> bool:
    """A power of two (or its inverse): multiplying or dividing by it is exact in binary floating point."""
    top, bottom = value.numerator, value.denominator
    return value > 0 and top & (top - 1) == 0 and bottom & (bottom - 1) == 0


def identical_to_floor(transform: str, rounding: str, size: int, scale: Fraction) -> bool:
    """Whether every output index picks the same input index as asymmetric + floor (ties never relied on).

    When the transform divides by a power of two, float arithmetic is exact and the exact map decides; otherwise
    the map must also hold for source coordinates nudged either way, so float rounding cannot flip a pixel.
    """
    out = math.floor(size * scale)
    ratio = Fraction(size - 1, out - 1) if transform == "align_corners" and out > 1 else 1 / scale
    nudges = (0,) if _dyadic(ratio) else (0, NUDGE, -NUDGE)
    for i in range(out):
        want = min(math.floor(i / scale), size - 1)
        x = _source(transform, i, size, out, scale)
        for nudge in nudges:
            if min(max(_round(rounding, x + nudge), 0), size - 1) != want:
                return False
    return True


def _plan(node: ir.Node, ctx: RuleContext) -> Answer | None:
    nearest_ok = {tuple(pair) for pair in limit("resize.mode", "nearest")}  # the modes DLA takes: check's data

    if node.op_type != "Resize" or ctx.opset < 11 or node.attributes.get_string("mode", "nearest") != "nearest":
        return NO_MATCH
    transform = node.attributes.get_string("coordinate_transformation_mode", "half_pixel")
    rounding = node.attributes.get_string("nearest_mode", "round_prefer_floor")
    if (transform, rounding) in nearest_ok:
        return NO_MATCH
    if transform not in TRANSFORMS or rounding not in ROUNDINGS:
        return f"the {transform} + {rounding} mode has no bit-identical floor form"
    scales = const_of(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    shape = dims(node.inputs[0])
    if scales is None or scales.size == 0 or shape is None or len(scales) != len(shape):
        return "the Resize has no constant scales on a static input (resize-sizes-to-scales converts sizes)"
    for axis, (size, value) in enumerate(zip(shape, scales.tolist(), strict=True)):
        if value < 1 or value != round(value):
            return f"scale {value} on axis {axis} is not an integer ≥ 1, where {transform} + {rounding} ≠ floor"
        if not identical_to_floor(transform, rounding, size, Fraction(int(value))):
            return (f"at scale {int(value)} on axis {axis}, {transform} + {rounding} picks other pixels than "
                    "asymmetric + floor")
    return None


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    return _plan(node, ctx)


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    attrs = {a.name: a for a in node.attributes.values()}
    attrs["coordinate_transformation_mode"] = ir.AttrString("coordinate_transformation_mode", "asymmetric")
    attrs["nearest_mode"] = ir.AttrString("nearest_mode", "floor")
    name = ctx.names.fresh(f"{ctx.prefix}/Resize")
    out = ir.Value(name=ctx.names.fresh(f"{name}_out"))
    ctx.nodes.append(ir.Node("", "Resize", list(node.inputs), attributes=list(attrs.values()), outputs=[out],
                             name=name))
    return [out]


RULE = Rule(id="resize-nearest-to-floor", ops=("Resize",),
            summary="nearest Resize in a mode bit-identical to floor at its scales → asymmetric + floor",
            check=check, rewrite=rewrite)
