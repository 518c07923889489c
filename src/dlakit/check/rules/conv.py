"""Convolution, fully connected and deconvolution limits, and the convolution-buffer (CBUF) check."""

from __future__ import annotations

import math
from collections.abc import Iterator

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, RuleSpec, rule
from dlakit.vocab import Precision


def _range(name: str, values: tuple[int, ...], spec: RuleSpec, what: str) -> Iterator[Finding]:
    low, high = spec.limits["min"], spec.limits["max"]
    bad = [v for v in values if not low <= v <= high]
    if bad:
        yield Finding(f"{what} {'x'.join(map(str, values))} is outside [{low}, {high}]", value=list(values),
                      allowed=[low, high])


def _conv_window(ctx: NodeContext):
    window = ctx.window()
    return window if window is not None and len(window.kernel) == 2 else None


@rule("conv.spatial-dims", ops=("Conv", "ConvTranspose"))
def spatial_dims(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op not in ("Conv", "ConvTranspose"):
        return
    weight = ctx.dims(ctx.input(1))
    if weight is not None and len(weight) != 4:
        spatial = len(weight) - 2
        yield Finding(
            f"{spatial}-D convolution; DLA runs 2-D convolutions only",
            value=spatial,
            allowed=2,
            fix=spec.fix if spatial == 1 else "conv3d-to-2d" if spatial == 3 and ctx.op == "Conv" else "",
        )


@rule("conv.constant-weights")
def constant_weights(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    for index in (1, 2):
        value = ctx.input(index)
        if value is not None and value.name and not ctx.is_const(index):
            what = "weights" if index == 1 else "bias"
            yield Finding(
                f"{what} '{value.name}' are computed at run time; DLA needs build-time constant {what}",
                value="run-time",
                allowed="constant",
            )
            return


@rule("conv.kernel")
def kernel(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = _conv_window(ctx)
    if window:
        yield from _range("kernel", window.kernel, spec, "kernel")


@rule("conv.padding")
def padding(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = _conv_window(ctx)
    if not window:
        return
    pads = (*window.pads_begin, *window.pads_end)
    yield from _range("padding", pads, spec, "padding")
    for axis, size in enumerate(window.kernel):
        worst = max(window.pads_begin[axis], window.pads_end[axis])
        if worst >= size:
            yield Finding(
                f"padding {worst} is not smaller than kernel size {size} on axis {'HW'[axis]}",
                value=worst,
                allowed=[0, size - 1],
            )
            return


@rule("conv.stride")
def stride(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = _conv_window(ctx)
    if window:
        yield from _range("stride", window.strides, spec, "stride")


@rule("conv.dilation")
def dilation(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = _conv_window(ctx)
    if window:
        yield from _range("dilation", window.dilations, spec, "dilation")


def _fc_sizes(ctx: NodeContext) -> tuple[int, int] | None:
    """(input features K, output features N) of a Gemm/MatMul with constant weights."""
    weight = ctx.dims(ctx.input(1))
    if weight is None or len(weight) != 2:
        return None
    trans_b = ctx.op == "Gemm" and ctx.attr("transB", 0)
    return (weight[1], weight[0]) if trans_b else (weight[0], weight[1])


@rule("conv.output-maps")
def output_maps(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer == "fully_connected":
        sizes = _fc_sizes(ctx)
        maps = sizes[1] if sizes else None
    else:
        weight = ctx.dims(ctx.input(1))
        maps = weight[0] if weight else None
    if maps is not None:
        yield from _range("output maps", (maps,), spec, "output maps")


@rule("conv.input-channels")
def input_channels(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer == "fully_connected":
        sizes = _fc_sizes(ctx)
        channels = sizes[0] if sizes else None
    else:
        data = ctx.dims(ctx.input(0))
        channels = data[1] if data and len(data) > 1 else None
    if channels is not None:
        yield from _range("input channels", (channels,), spec, "input channels")


@rule("conv.groups")
def groups(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    group = ctx.attr("group", 1)
    yield from _range("groups", (group,), spec, "groups")


@rule("conv.int8-group-channels")
def int8_group_channels(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    group = ctx.attr("group", 1)
    weight = ctx.dims(ctx.input(1))
    if ctx.precision != Precision.INT8 or group == 1 or weight is None:
        return
    per_group_in, per_group_out = weight[1], weight[0] // group
    if per_group_in % 4 or per_group_out % 4:
        yield Finding(
            f"grouped convolution with {per_group_in} input / {per_group_out} output channels per group "
            "(not multiples of 4) may be padded or run in FP16 in INT8 builds",
            value=[per_group_in, per_group_out],
            allowed="multiples of 4",
        )


def cbuf_banks(ctx: NodeContext, spec: RuleSpec, precision: str) -> tuple[int, int] | None:
    """(weight banks, data banks) of the guide's CBUF pseudo-code for ``precision``, or None when not a 2-D conv."""
    window = _conv_window(ctx)
    data, weight = ctx.dims(ctx.input(0)), ctx.dims(ctx.input(1))
    if window is None or data is None or weight is None or len(data) != 4:
        return None
    element = 1 if precision == Precision.INT8 else 2
    channels, width = data[1], data[3]
    kernel_bytes = weight[1] * window.kernel[0] * window.kernel[1] * element
    bank = spec.limits["bank_bytes"]
    weight_banks = math.ceil(math.ceil(kernel_bytes / 128) * 128 / bank)
    entries_per_slice = math.ceil(math.ceil(channels * element / 32) * width / 4)
    dilated_height = (window.kernel[0] - 1) * window.dilations[0] + 1
    data_banks = math.ceil(entries_per_slice * dilated_height / spec.limits["entries_per_bank"])
    return weight_banks, data_banks


def _cbuf_shape(ctx: NodeContext) -> str:
    data, window = ctx.dims(ctx.input(0)), _conv_window(ctx)
    return f"{data[1]} channels x {data[3]} wide input, {window.kernel[0]}x{window.kernel[1]} kernel"


@rule("conv.cbuf")
def cbuf(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    """The guide's check (one kernel's weights plus the input lines one output line needs fit 16 banks), made
    strict: the exactly-full case fails too (TensorRT issue 3499 failed to build a conv the formula puts at 16/16)."""
    banks = cbuf_banks(ctx, spec, ctx.precision)
    if banks is None:
        return
    weight_banks, data_banks = banks
    total, limit = weight_banks + data_banks, spec.limits["banks"]
    if total >= limit:
        full = "exactly fills" if total == limit else "exceeds"
        yield Finding(
            f"needs {weight_banks} weight + {data_banks} data banks of the convolution buffer in "
            f"{ctx.precision.upper()} ({_cbuf_shape(ctx)}): {total} of {limit}, which {full} DLA's buffer"
            f"{' (a layer at exactly 16/16 failed to build in TensorRT issue 3499)' if total == limit else ''}; "
            "reduce the input width or channels (split the convolution) or build in INT8",
            value=total,
            allowed=[1, limit - 1],
        )


@rule("conv.cbuf-margin")
def cbuf_margin(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    """The CBUF formula is a necessary condition only: near the limit, or when the FP16 form of an INT8 build would
    not fit (TensorRT may pick FP16 for a layer of an --int8 --fp16 build), the DLA compiler may still refuse it."""
    cbuf_spec = next(r for r in _rules() if r.name == "conv.cbuf")
    limit, margin = cbuf_spec.limits["banks"], spec.limits["margin_banks"]
    banks = cbuf_banks(ctx, cbuf_spec, ctx.precision)
    if banks is None or sum(banks) >= limit:
        return  # conv.cbuf already moves it off the DLA
    total = sum(banks)
    fp16 = sum(cbuf_banks(ctx, cbuf_spec, "fp16")) if ctx.precision == Precision.INT8 else total
    if ctx.precision == Precision.INT8 and fp16 >= limit:
        yield Finding(
            f"convolution buffer: {total} of {limit} banks in INT8 but {fp16} of {limit} in FP16 "
            f"({_cbuf_shape(ctx)}); if TensorRT runs this layer in FP16 it does not fit (TensorRT issue 3499: "
            "this 9/16 INT8, 16/16 FP16 conv failed to build with --int8 --fp16)",
            value={"int8": total, "fp16": fp16},
            allowed=[1, limit - 1],
        )
    elif total >= limit - margin:
        yield Finding(
            f"convolution buffer: {total} of {limit} banks in {ctx.precision.upper()} ({_cbuf_shape(ctx)}), "
            f"{limit - total} bank(s) from the limit; the formula is a necessary condition only, the DLA compiler "
            "may still refuse it",
            value=total,
            allowed=[1, limit - 1],
        )


def _rules():
    from dlakit.check.registry import load_rules

    return load_rules()


@rule("fc.input-rank")
def fc_input_rank(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    data = ctx.dims(ctx.input(0))
    if data is None or not ctx.is_const(1):
        return
    if len(data) == 2 or (len(data) == 4 and data[2:] == (1, 1)):
        return
    yield Finding(
        f"{ctx.op} reads a {len(data)}-D tensor {'x'.join(map(str, data))}; as a fully connected layer DLA needs "
        "(N, K) or (N, K, 1, 1)",
        value=list(data),
        allowed="(N, K) or (N, K, 1, 1)",
    )


@rule("fc.transpose-a")
def fc_transpose_a(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op == "Gemm" and ctx.attr("transA", 0):
        yield Finding("Gemm with transA = 1 cannot run as a fully connected layer", value=1, allowed=0)


def _deconv_sizes(values: tuple[int, ...], spec: RuleSpec) -> bool:
    low, high, long = spec.limits["min"], spec.limits["max"], spec.limits["long"]
    if all(low <= v <= high for v in values):
        return True
    return len(values) == 2 and sorted(values)[0] == 1 and max(values) in long


@rule("deconv.kernel")
def deconv_kernel(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = ctx.window()
    if window is None or len(window.kernel) != 2:
        return
    k = window.kernel
    if not _deconv_sizes(k, spec):
        yield Finding(f"kernel {k[0]}x{k[1]} is neither in [1, 32] nor 1x{{64,96,128}} / {{64,96,128}}x1",
                      value=list(k), allowed="[1, 32] or 1x64/96/128")
    elif k[0] == k[1] and k[0] >= spec.limits["slow_square_min"]:
        yield Finding(f"square kernel {k[0]}x{k[1]} (23..32) is disabled on DLA because it compiles too slowly",
                      value=list(k), allowed=[1, spec.limits["slow_square_min"] - 1])


@rule("deconv.stride")
def deconv_stride(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    window = ctx.window()
    if window is not None and len(window.strides) == 2 and not _deconv_sizes(window.strides, spec):
        yield Finding(f"stride {'x'.join(map(str, window.strides))} is outside [1, 32]",
                      value=list(window.strides), allowed=[1, 32])


@rule("deconv.padding")
def deconv_padding(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    pads = ctx.attr("pads") or ()
    output_padding = ctx.attr("output_padding") or ()
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if any(pads) or any(output_padding) or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        value = list(pads) + list(output_padding) if (pads or output_padding) else auto_pad
        yield Finding("deconvolution padding must be 0 on DLA", value=value, allowed=0)


@rule("deconv.groups")
def deconv_groups(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    group = ctx.attr("group", 1)
    dilations = ctx.attr("dilations") or ()
    if group != 1:
        yield Finding(f"grouped deconvolution (group {group}); DLA needs group 1", value=group, allowed=1)
    elif any(d != 1 for d in dilations):
        yield Finding(f"dilated deconvolution {list(dilations)}; DLA needs dilation 1", value=list(dilations),
                      allowed=1)


@rule("deconv.channels")
def deconv_channels(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    weight = ctx.dims(ctx.input(1))
    if weight is None or len(weight) < 2:
        return
    channels_in, channels_out = weight[0], weight[1] * ctx.attr("group", 1)
    yield from _range("channels", (channels_in, channels_out), spec, "input/output channels")
