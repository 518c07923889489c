"""Layers that move data: concatenation, resize, slice and shuffle (reshape / transpose)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, RuleSpec, rule
from dlakit.vocab import Precision

RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


@rule("concat.axis")
def concat_axis(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    dims = ctx.output_dims
    axis = ctx.attr("axis", 1)
    if dims is None:
        return
    rank = len(dims)
    axis = axis + rank if axis < 0 else axis
    if rank >= 3 and axis != rank - 3:
        yield Finding(
            f"concatenation along axis {axis} of a {rank}-D tensor; DLA only concatenates on the channel axis "
            f"({rank - 3})",
            value=axis,
            allowed=rank - 3,
        )


@rule("concat.inputs")
def concat_inputs(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    constants = [v.name for i, v in enumerate(ctx.node.inputs) if v is not None and ctx.is_const(i)]
    if constants:
        yield Finding(
            f"constant input '{constants[0]}' would be a Constant layer, which DLA does not run",
            value=len(constants),
            allowed=0,
        )
    elif len(ctx.runtime_inputs) < 2:
        yield Finding("concatenation on DLA requires at least two inputs", value=len(ctx.runtime_inputs),
                      allowed=[2, None])


def resize_scales(ctx: NodeContext) -> tuple[np.ndarray | None, str | None]:
    """(scales, problem) of a Resize/Upsample node; problem names why the scales are not usable."""
    if ctx.op == "Upsample" or ctx.opset < 11:  # Upsample, and Resize of opset 10: (X, scales)
        scales = ctx.attr("scales")
        if scales is not None:
            return np.asarray(scales, dtype=float), None
        if not ctx.is_const(1) or ctx.const(1) is None:
            return None, "scales are computed at run time"
        return ctx.const(1).astype(float), None
    sizes = ctx.input(3)
    if sizes is not None and sizes.name:
        return None, "sizes"
    if ctx.input(2) is None or not ctx.input(2).name:
        return None, "no scales"
    if not ctx.is_const(2) or ctx.const(2) is None:
        return None, "scales are computed at run time"
    return ctx.const(2).astype(float), None


@rule("resize.scales")
def scales(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    values, problem = resize_scales(ctx)
    if problem == "sizes":
        yield Finding("Resize gives output sizes; DLA's resize takes scales only", value="sizes",
                      allowed="scales", fix=spec.fix if ctx.is_const(3) else "")
    elif problem:
        yield Finding(f"Resize {problem}; DLA needs constant scales", value=problem, allowed="constant scales",
                      fix="")
    elif values is not None and (len(values) != 4 or values[0] != 1 or values[1] != 1):
        yield Finding(f"scales {values.tolist()} must be 4 values with N and C scales 1", value=values.tolist(),
                      allowed="[1, 1, sh, sw]", fix="")


@rule("resize.scale-range")
def scale_range(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    values, problem = resize_scales(ctx)
    if problem or values is None or len(values) != 4:
        return
    linear = "linear" in str(ctx.attr("mode", "nearest")).lower()
    high = spec.limits["linear_max" if linear else "nearest_max"]
    spatial = values[2:]
    if any(s != round(s) or not 1 <= s <= high for s in spatial):
        yield Finding(
            f"{'linear' if linear else 'nearest'} resize by {spatial.tolist()}; DLA needs integer H/W scales in "
            f"[1, {high}]",
            value=spatial.tolist(),
            allowed=[1, high],
        )




@rule("resize.mode")
def resize_mode(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    mode = str(ctx.attr("mode", "nearest")).lower()
    legacy = ctx.op == "Upsample" or ctx.opset < 11  # before opset 11: asymmetric coordinates, floor rounding
    transform = "asymmetric" if legacy else str(ctx.attr("coordinate_transformation_mode", "half_pixel"))
    rounding = "floor" if legacy else str(ctx.attr("nearest_mode", "round_prefer_floor"))
    kind = ("linear" if mode in ("linear", "bilinear") else "nearest") + (
        "-asymmetric" if transform == "asymmetric" else "-half-pixel")
    release = ctx.target.release
    nearest_ok = {tuple(pair) for pair in spec.limits["nearest"]}  # the modes DLA takes (rules.toml)
    linear_ok = set(spec.limits["linear"])
    if mode in ("nearest", "linear", "bilinear") and kind not in release.resize_modes and (
            (transform, rounding) in nearest_ok or transform in linear_ok):
        yield Finding(f"{mode} resize with {transform} coordinates is not supported on DLA with TensorRT "
                      f"{release.tensorrt} (supported: {', '.join(sorted(release.resize_modes)) or 'none'})",
                      value=kind, allowed=sorted(release.resize_modes))
    elif mode == "nearest" and (transform, rounding) not in nearest_ok:
        yield Finding(f"nearest resize with {transform} coordinates and {rounding} rounding is not supported",
                      value=[transform, rounding], allowed=sorted(" + ".join(p) for p in nearest_ok))
    elif mode in ("linear", "bilinear") and transform not in linear_ok:
        yield Finding(f"linear resize with {transform} coordinates is not supported (half_pixel only)",
                      value=transform, allowed=sorted(linear_ok))
    elif mode not in ("nearest", "linear", "bilinear"):
        yield Finding(f"resize mode {mode} is not supported (nearest or linear only)", value=mode,
                      allowed=["nearest", "linear"])


@rule("slice.release")
def slice_release(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if not ctx.target.release.slice_modes:
        yield Finding(f"TensorRT {ctx.target.release.tensorrt} has no DLA Slice layer (first in 8.4.1)",
                      value=ctx.target.release.tensorrt, allowed=">= 8.4.1")


@rule("slice.rank")
def slice_rank(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    dims = ctx.input_dims
    if dims is not None and len(dims) != 4:
        yield Finding(f"slicing a {len(dims)}-D tensor; DLA only supports slicing 4 dimensional tensors",
                      value=len(dims), allowed=4)


def _slice_params(ctx: NodeContext) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """(starts, ends, axes, steps) of a Slice node, or None when they are not build-time constants."""
    if ctx.op == "Split":
        return [], [], [ctx.attr("axis", 0)], []
    if len(ctx.node.inputs) == 1:  # opset < 10: attributes
        starts, ends = list(ctx.attr("starts", ())), list(ctx.attr("ends", ()))
        axes = list(ctx.attr("axes", range(len(starts))))
        return starts, ends, axes, [1] * len(starts)
    arrays = []
    for index in (1, 2, 3, 4):
        value = ctx.input(index)
        if value is None or not value.name:
            arrays.append(None)
            continue
        if not ctx.is_const(index) or ctx.const(index) is None:
            return None
        arrays.append([int(x) for x in ctx.const(index).reshape(-1)])
    starts, ends, axes, steps = arrays
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    return starts, ends, axes, steps


@rule("slice.static")
def slice_static(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    params = _slice_params(ctx)
    if params is None:
        yield Finding("slice starts/ends/axes/steps are computed at run time; DLA needs constants",
                      value="run-time", allowed="constant")
        return
    starts, ends, axes, steps = params
    dims = ctx.input_dims
    if any(s != 1 for s in steps):
        yield Finding(f"slice steps {steps}; DLA slices with stride 1 only", value=steps, allowed=1)
        return
    if dims is None:
        return
    rank = len(dims)
    for position, axis in enumerate(axes):
        axis = axis + rank if axis < 0 else axis
        if axis != 0:
            continue
        if ctx.op == "Split" or not (starts[position] == 0 and ends[position] >= dims[0]):
            yield Finding("slicing along the batch axis is not supported on DLA", value=0, allowed="axes 1..3")
            return


@rule("slice.fp16")
def slice_fp16(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.precision == Precision.INT8:
        yield Finding("Slice runs in FP16 on DLA; an INT8 build reformats around it", value="int8", allowed="fp16")


@rule("shuffle.release")
def shuffle_release(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if not ctx.target.release.shuffle:
        yield Finding(f"TensorRT {ctx.target.release.tensorrt} has no DLA Shuffle layer (from 8.5)",
                      value=ctx.target.release.tensorrt, allowed=">= 8.5")


@rule("shuffle.static")
def shuffle_static(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    for index in range(1, len(ctx.node.inputs)):
        value = ctx.input(index)
        if value is not None and value.name and not ctx.is_const(index):
            yield Finding(f"target shape '{value.name}' is computed at run time", value="run-time",
                          allowed="constant")
            return


@rule("shuffle.batch-axis")
def shuffle_batch_axis(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op == "Transpose":
        perm = ctx.attr("perm")
        if perm and perm[0] != 0:
            yield Finding(f"transpose {list(perm)} moves the batch axis", value=list(perm), allowed="perm[0] = 0")
        return
    dims_in, dims_out = ctx.input_dims, ctx.output_dims
    if dims_in and dims_out and dims_in[0] != dims_out[0]:
        yield Finding(f"reshape {list(dims_in)} → {list(dims_out)} changes the batch dimension",
                      value=[dims_in[0], dims_out[0]], allowed="batch unchanged")


@rule("shuffle.slice-concat-neighbour", ops=RESHAPES)
def slice_concat_neighbour(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.op not in RESHAPES:
        return
    neighbours = [v.producer() for v in ctx.runtime_inputs if v.producer() is not None]
    for out in ctx.outputs:
        neighbours.extend(user for user, _ in out.uses())
    for other in neighbours:
        if other.op_type in ("Slice", "Split", "Concat"):
            yield Finding(
                f"reshape directly connected to {other.op_type} '{other.name}'; this version of DLA does not "
                "support reshape layers directly connected to Slice or Concat",
                value=other.op_type,
                allowed="no adjacent Slice/Concat",
            )
            return
