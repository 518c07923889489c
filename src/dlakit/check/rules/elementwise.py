"""Element-wise layers between two run-time tensors, and Scale layers (an operand that is a constant)."""

from __future__ import annotations

from collections.abc import Iterator

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, RuleSpec, rule
from dlakit.vocab import Precision

#: ONNX op → TensorRT ElementWiseOperation
TRT_ELEMENTWISE = {"Add": "SUM", "Sum": "SUM", "Mean": "SUM", "Sub": "SUB", "Mul": "PROD", "Div": "DIV",
                   "Max": "MAX", "Min": "MIN", "Pow": "POW"}
COMMUTATIVE = ("Add", "Sum", "Mean", "Mul", "Max", "Min")


@rule("eltwise.op")
def eltwise_op(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    operation = TRT_ELEMENTWISE.get(ctx.op)
    supported = ctx.target.release.elementwise_ops
    if operation not in supported:
        constant = len(ctx.runtime_inputs) < len([v for v in ctx.node.inputs if v is not None and v.name])
        operands = "with a constant operand (not a Scale layer)" if constant else "between two run-time tensors"
        # a constant divisor is a multiply by its reciprocal (fix: div-to-mul, where PROD runs on DLA)
        by_constant = ctx.op == "Div" and len(ctx.node.inputs) > 1 and ctx.is_const(1) and not ctx.is_const(0)
        yield Finding(
            f"element-wise {operation or ctx.op} {operands} is not supported on DLA with "
            f"TensorRT {ctx.target.release.tensorrt} (supported: {', '.join(sorted(supported))})",
            value=operation or ctx.op,
            allowed=sorted(supported),
            fix="div-to-mul" if by_constant and "PROD" in supported else "",
            trt={"op": operation or ctx.op.upper()},
        )


def _broadcast_ok(big: tuple[int, ...], small: tuple[int, ...]) -> bool:
    """NCHW against NCHW, NC11 or N111 (the small operand broadcast over space, or over channels and space)."""
    if len(big) != 4 or len(small) != 4:
        return big == small
    n, c, h, w = small
    return (n == big[0] and (c, h, w) in ((big[1], big[2], big[3]), (big[1], 1, 1), (1, 1, 1)))


@rule("eltwise.broadcast")
def eltwise_broadcast(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    shapes = [ctx.dims(v) for v in ctx.runtime_inputs]
    if len(shapes) < 2 or any(s is None for s in shapes):
        return
    first = shapes[0]
    for other in shapes[1:]:
        if _broadcast_ok(first, other) or (ctx.op in COMMUTATIVE and _broadcast_ok(other, first)):
            continue
        yield Finding(
            f"operands {'x'.join(map(str, first))} and {'x'.join(map(str, other))} broadcast in a way DLA's "
            "element-wise layer does not (equal shapes, or the second as NC11 / N111)",
            value=[list(first), list(other)],
            allowed="NCHW with NCHW, NC11 or N111",
        )
        return


@rule("eltwise.xavier-sub")
def xavier_sub(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.target.is_xavier and ctx.op == "Sub":
        yield Finding("Xavier runs Sub as a Scale (negation) followed by a Sum: two DLA operations")


@rule("eltwise.int8-equal-scales")
def int8_equal_scales(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.precision == Precision.INT8 and len(ctx.runtime_inputs) > 1:
        what = "inputs and output" if ctx.layer == "concatenation" else "inputs"
        yield Finding(f"INT8 {ctx.layer} needs its {what} to share one scale (dlakit quantize applies this)")


@rule("scale.mode")
def scale_mode(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op == "BatchNormalization":
        return
    data = ctx.input_dims
    constant = next((i for i, v in enumerate(ctx.node.inputs) if v is not None and ctx.is_const(i)), None)
    if constant is None or data is None:
        return
    const_dims = ctx.dims(ctx.input(constant)) or ()
    padded = (1,) * (len(data) - len(const_dims)) + tuple(const_dims)
    if len(padded) != len(data):
        yield Finding(f"constant of shape {list(const_dims)} has a higher rank than the data", value=list(const_dims))
        return
    size = 1
    for d in padded:
        size *= d
    uniform = size == 1
    channel = len(data) >= 3 and padded[1] == data[1] and all(d == 1 for i, d in enumerate(padded) if i != 1)
    elementwise = padded[0] == 1 and tuple(padded[1:]) == tuple(data[1:])
    if not (uniform or channel or elementwise):
        yield Finding(
            f"constant of shape {list(const_dims)} is neither a scalar, per-channel (1,C,1,1) nor full-shape; "
            "DLA's Scale layer cannot broadcast it",
            value=list(const_dims),
            allowed="scalar, per-channel or full shape",
        )


@rule("scale.training")
def scale_training(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op == "BatchNormalization" and (ctx.attr("training_mode", 0) or len(ctx.used_outputs) > 1):
        yield Finding("BatchNormalization in training mode", value="training", allowed="inference")
