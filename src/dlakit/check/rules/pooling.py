"""Pooling limits: type, window, padding, stride, Xavier's inclusive averaging."""

from __future__ import annotations

from collections.abc import Iterator

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, RuleSpec, rule
from dlakit.vocab import Precision


def _check(values: tuple[int, ...], spec: RuleSpec, what: str, fix: str | None = None) -> Iterator[Finding]:
    low, high = spec.limits["min"], spec.limits["max"]
    if any(not low <= v <= high for v in values):
        yield Finding(f"{what} {'x'.join(map(str, values))} is outside [{low}, {high}]", value=list(values),
                      allowed=[low, high], fix=fix)


@rule("pool.type")
def pool_type(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op not in ("MaxPool", "AveragePool"):
        yield Finding(f"{ctx.op} is not max or average pooling", value=ctx.op, allowed=["MaxPool", "AveragePool"])


@rule("pool.window")
def pool_window(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = ctx.window()
    if window:
        # fix's pool chains / mean convolution (its own check decides whether this pool's geometry allows one)
        yield from _check(window.kernel, spec, "window", "maxpool-chain" if ctx.op == "MaxPool" else "avgpool-split")


@rule("pool.padding")
def pool_padding(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = ctx.window()
    if window:
        yield from _check((*window.pads_begin, *window.pads_end), spec, "padding")


@rule("pool.stride")
def pool_stride(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = ctx.window()
    if window:
        yield from _check(window.strides, spec, "stride")


@rule("pool.attributes")
def pool_attributes(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    dilations = ctx.attr("dilations") or ()
    if any(d != 1 for d in dilations):
        yield Finding(f"dilated pooling {list(dilations)} is not supported", value=list(dilations), allowed=1)
    if len(ctx.used_outputs) > 1:
        yield Finding("MaxPool's index output is used; DLA pooling has no index output", value="Indices",
                      allowed="no index output")


@rule("pool.xavier-exclusive-average")
def xavier_exclusive_average(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if not ctx.target.is_xavier or ctx.op != "AveragePool" or ctx.attr("count_include_pad", 0):
        return
    window = ctx.window()
    if window and any((*window.pads_begin, *window.pads_end)):
        yield Finding(
            "average pooling that excludes padding (count_include_pad = 0) with non-zero padding; Xavier's DLA "
            "only averages padded windows inclusively",
            value="count_include_pad=0",
            allowed="count_include_pad=1",
        )


@rule("pool.int8-equal-scales", ops=("MaxPool", "AveragePool"))
def int8_equal_scales(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.precision == Precision.INT8 and ctx.op in ("MaxPool", "AveragePool"):
        yield Finding("INT8 pooling needs the input and output scales to be equal (dlakit quantize applies this)")
