"""Reduce, unary, softmax, comparison, quantize and cast layers: support that changes from release to release."""

from __future__ import annotations

from collections.abc import Iterator

import onnx_ir as ir

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, RuleSpec, rule
from dlakit.check.rules.general import batch_of
from dlakit.vocab import Precision

TRT_REDUCE = {"GlobalAveragePool": "AVG", "ReduceMean": "AVG", "GlobalMaxPool": "MAX", "ReduceMax": "MAX",
              "ReduceSum": "SUM", "ReduceMin": "MIN", "ReduceProd": "PROD"}
TRT_UNARY = {"Abs": "ABS", "Sin": "SIN", "Cos": "COS", "Atanh": "ATANH", "Atan": "ATAN", "Exp": "EXP", "Log": "LOG",
             "Sqrt": "SQRT", "Reciprocal": "RECIP", "Floor": "FLOOR", "Ceil": "CEIL", "Round": "ROUND",
             "Sign": "SIGN", "Erf": "ERF", "Tan": "TAN", "Asin": "ASIN", "Acos": "ACOS", "Sinh": "SINH",
             "Cosh": "COSH", "Asinh": "ASINH", "Acosh": "ACOSH", "Neg": "NEG", "Not": "NOT"}
TRT_COMPARISON = {"Equal": "EQUAL", "Greater": "GREATER", "Less": "LESS"}
FLOAT_TYPES = (ir.DataType.FLOAT, ir.DataType.FLOAT16)


def _reduce_axes(ctx: NodeContext) -> list[int] | None:
    dims = ctx.input_dims
    if dims is None:
        return None
    rank = len(dims)
    if ctx.op.startswith("Global"):
        return list(range(2, rank))
    axes = ctx.attr("axes")
    if axes is None and len(ctx.node.inputs) > 1 and ctx.input(1) is not None and ctx.input(1).name:
        array = ctx.const(1)
        axes = None if array is None else array.reshape(-1).tolist()
    if axes is None:
        return list(range(rank))
    return sorted(a + rank if a < 0 else a for a in axes)


@rule("reduce.op")
def reduce_op(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    operation = TRT_REDUCE.get(ctx.op, ctx.op)
    supported = ctx.target.release.reduce_ops
    axes = _reduce_axes(ctx)
    dims = ctx.input_dims
    spatial = axes is not None and dims is not None and len(dims) == 4 and set(axes) <= {2, 3}
    if operation in supported and spatial:
        return
    where = "" if spatial or axes is None else f" over axes {axes}"
    yield Finding(
        f"Reduce {operation}{where} does not run on DLA with TensorRT {ctx.target.release.tensorrt} "
        f"(DLA reduces: {', '.join(sorted(supported)) or 'none'} over H/W)",
        value=operation,
        allowed=sorted(supported),
        fix=ctx.op_spec.fix,
    )


@rule("unary.op")
def unary_op(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    operation = TRT_UNARY.get(ctx.op, ctx.op.upper())
    supported = ctx.target.release.unary_ops
    if operation not in supported:
        yield Finding(
            f"Unary operation: {operation} is not supported on DLA with TensorRT {ctx.target.release.tensorrt} "
            f"(supported: {', '.join(sorted(supported))})",
            value=operation,
            allowed=sorted(supported),
            fix=ctx.op_spec.fix,
            trt={"op": operation},
        )


@rule("softmax.platform")
def softmax_platform(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.target.is_xavier:
        yield Finding("Softmax runs on Orin's DLA only, not on Xavier's", value=ctx.target.platform.key,
                      allowed="Orin")


@rule("softmax.axis")
def softmax_axis(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    dims = ctx.input_dims
    if dims is None:
        return
    rank = len(dims)
    if not 2 <= rank <= 4:
        yield Finding(f"Softmax over a {rank}-D tensor; DLA handles 2-D to 4-D", value=rank, allowed=[2, 4])
        return
    axis = ctx.attr("axis", -1 if ctx.opset >= 13 else 1)
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        yield Finding("Softmax along the batch axis", value=0, allowed="a channel or spatial axis")
        return
    size = dims[axis]
    others = [d for i, d in enumerate(dims) if i not in (0, axis)]
    if ctx.opset < 13:  # opset < 13 flattens from `axis` on: the softmax runs over all trailing dims at once
        size = 1
        for d in dims[axis:]:
            size *= d
        others = list(dims[1:axis])
    exact, approximate = spec.limits["exact_max"], spec.limits["approximate_max"]
    limit = exact if all(d == 1 for d in others) else approximate
    if size > limit:
        yield Finding(
            f"Softmax axis of size {size} exceeds {limit} (the limit when other non-batch dims are "
            f"{'1' if limit == exact else 'larger than 1'})",
            value=size,
            allowed=[1, limit],
        )


@rule("softmax.batch")
def softmax_batch(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    dims = ctx.input_dims
    if ctx.target.release.softmax_batch1_only and dims and (dims[0] if len(dims) < 4 else batch_of(dims)) > 1:
        yield Finding(f"TensorRT {ctx.target.release.tensorrt} runs Softmax on DLA with batch 1 only",
                      value=dims[0], allowed=1)


@rule("comparison.op")
def comparison_op(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    operation = TRT_COMPARISON.get(ctx.op, ctx.op.upper())
    supported = ctx.target.release.comparison_ops
    if operation not in supported:
        yield Finding(
            f"comparison {operation} is not supported on DLA with TensorRT {ctx.target.release.tensorrt} "
            f"(supported: {', '.join(sorted(supported))})",
            value=operation,
            allowed=sorted(supported),
        )


@rule("comparison.int8-cast")
def comparison_int8_cast(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.precision != Precision.INT8:
        yield Finding("comparisons run on DLA in INT8 only; this is an FP16 build", value=ctx.precision,
                      allowed="int8")
        return
    for out in ctx.outputs:
        for user, _ in out.uses():
            cast_to = user.attributes.get_int("to", 0) if user.op_type == "Cast" else 0
            if cast_to not in (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.INT8):
                yield Finding(
                    f"comparison output feeds {user.op_type} '{user.name}'; DLA needs it cast to FP16/INT8 at once",
                    value=user.op_type,
                    allowed="Cast to float16/int8",
                )
                return


@rule("quantize.release")
def quantize_release(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if not ctx.target.release.explicit_quantization:
        yield Finding(
            f"explicit {ctx.op} does not run on DLA with TensorRT {ctx.target.release.tensorrt}; convert the Q/DQ "
            "model to a calibration cache (dlakit qdq-translate)",
            value=ctx.op,
            allowed="implicit scales (calibration cache)",
        )


@rule("cast.type")
def cast_type(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    source = ctx.runtime_inputs[0] if ctx.runtime_inputs else None
    target = ctx.outputs[0].dtype if ctx.outputs else None
    producer = source.producer() if source is not None else None
    if producer is not None and producer.op_type in TRT_COMPARISON:
        return  # the cast that completes a DLA comparison
    if target in FLOAT_TYPES and source is not None and source.dtype in FLOAT_TYPES:
        return
    name = target.name if target is not None else "?"
    yield Finding(f"Cast to {name} runs on the GPU; DLA computes in FP16/INT8 only", value=name,
                  allowed=["FLOAT", "FLOAT16"])
