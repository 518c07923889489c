"""Activations, PReLU and LRN."""

from __future__ import annotations

from collections.abc import Iterator

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, RuleSpec, rule
from dlakit.vocab import Precision

#: ONNX op → TensorRT ActivationType; which of them a release runs on DLA is release data (activation_types)
DLA_ACTIVATIONS = {"Relu": "RELU", "Sigmoid": "SIGMOID", "Tanh": "TANH", "LeakyRelu": "LEAKY_RELU", "Clip": "CLIP"}
FP16_IN_INT8 = ("Sigmoid", "Tanh", "LRN")


@rule("activation.type")
def activation_type(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    release = ctx.target.release
    activation = DLA_ACTIVATIONS.get(ctx.op)
    allowed = sorted(release.activation_types)
    if activation is None:
        yield Finding(
            f"activation {ctx.op} is not one of DLA's ({', '.join(allowed)})",
            value=ctx.op,
            allowed=allowed,
            fix=ctx.op_spec.fix,
        )
    elif activation not in release.activation_types:
        yield Finding(
            f"ActivationType {activation} is not supported on DLA with TensorRT {release.tensorrt} "
            f"(supported: {', '.join(allowed)})",
            value=activation,
            allowed=allowed,
            fix="",
        )


def clip_bounds(ctx: NodeContext) -> tuple[float | None, float | None, bool]:
    """(min, max, constant?) of a Clip node in either opset form; None = unbounded."""
    if ctx.node.inputs and len(ctx.node.inputs) > 1:
        bounds = []
        for index in (1, 2):
            value = ctx.input(index)
            if value is None or not value.name:
                bounds.append(None)
            elif not ctx.is_const(index) or ctx.const(index) is None:
                return None, None, False
            else:
                bounds.append(float(ctx.const(index).reshape(-1)[0]))
        return bounds[0], bounds[1], True
    return ctx.attr("min"), ctx.attr("max"), True


@rule("activation.clip", ops=("Clip",))
def clip(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op != "Clip":
        return
    low, high, constant = clip_bounds(ctx)
    if not constant:
        yield Finding("Clip bounds are computed at run time; DLA needs constants", value="run-time",
                      allowed="constant")
        return
    if low is None or low != 0.0:
        yield Finding(f"Clip minimum {low} is not 0; DLA only has clipped ReLU (min 0)", value=low, allowed=0)
        return
    lo, hi = spec.limits["min"], spec.limits["max"]
    if high is not None and not lo <= high <= hi:
        yield Finding(f"Clip maximum {high:g} is outside DLA's clipped ReLU range [{lo}, {hi}]", value=high,
                      allowed=[lo, hi])


@rule("activation.int8-upgrade", ops=FP16_IN_INT8)
def int8_upgrade(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.precision == Precision.INT8 and ctx.op in FP16_IN_INT8:
        yield Finding(f"{ctx.op} runs in FP16 on DLA even in an INT8 build", value="int8", allowed="fp16")


@rule("prelu.constant-slope")
def prelu_slope(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if not ctx.is_const(1):
        yield Finding("PReLU slope is computed at run time; DLA needs constant slopes", value="run-time",
                      allowed="constant")


@rule("lrn.window")
def lrn_window(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    size = ctx.attr("size")
    allowed = spec.limits["allowed"]
    if size not in allowed:
        yield Finding(f"LRN window {size} is not one of {allowed}", value=size, allowed=allowed)
