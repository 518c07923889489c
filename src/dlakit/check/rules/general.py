"""Limits every DLA layer shares: precision, static shapes, rank, batch and dimension sizes."""

from __future__ import annotations

from collections.abc import Iterator

import onnx_ir as ir

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, RuleSpec, rule
from dlakit.model import format_shape

DLA_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.INT8})
#: Layers that change rank or read 2-D tensors by design; their own rules say what they accept.
RANK_EXEMPT = frozenset({"fully_connected", "softmax", "quantize", "cast", "noop", "gpu_only", "reduce",
                         "slice"})


@rule("general.precision")
def precision(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer in ("cast", "gpu_only"):
        return
    values = ctx.runtime_inputs if ctx.layer == "comparison" else ctx.tensors
    for value in values:
        if value.dtype is not None and value.dtype not in DLA_TYPES:
            yield Finding(
                f"tensor '{value.name}' is {value.dtype.name}; DLA only supports FP16 and INT8",
                value=value.dtype.name,
                allowed=["FLOAT", "FLOAT16", "INT8"],
            )
            return


@rule("general.static-shape")
def static_shape(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer == "gpu_only":
        return
    for value, dims in ctx.tensor_dims:
        if dims is None:
            yield Finding(
                f"tensor '{value.name}' has dynamic shape {format_shape(value.shape)}: DLA layer {ctx.node.name} "
                "does not support dynamic shapes in any dimension (TensorRT runs it on the GPU); set the input "
                "shapes with --shapes",
                value=format_shape(value.shape),
                allowed="static",
            )
            return


#: ops whose 5-D form with a depth of 1 ``fix`` turns 2-D (its check decides whether this node qualifies)
FLAT_3D = ("Conv", "MaxPool", "AveragePool")


@rule("general.rank")
def rank(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer in RANK_EXEMPT:
        return
    outputs = {id(v) for v in ctx.used_outputs}
    for value, dims in ctx.tensor_dims:
        if ctx.layer == "shuffle" and dims is not None and id(value) in outputs and len(dims) != 4:
            # the rule holds for outputs too: TensorRT 10.3 on AGX Orin, "Layer '/Flatten' (SHUFFLE): Unsupported
            # on DLA" for ResNet-50's 2-D head; no rewrite brings such a shuffle onto the DLA
            yield Finding(
                f"{ctx.op} output '{value.name}' is {len(dims)}-D ({format_shape(value.shape)}); a DLA Shuffle "
                "must produce a 4-D NCHW tensor",
                value=len(dims),
                allowed=4,
                fix="",
            )
            return
        if ctx.layer == "shuffle" and dims is not None and 2 <= len(dims) <= 4:
            continue  # a reshape's input may have another rank, within DLA's 4-D limit (not evidenced either way)
        if dims is not None and len(dims) != 4:
            yield Finding(
                f"tensor '{value.name}' is {len(dims)}-D ({format_shape(value.shape)}); DLA layers work on 4-D NCHW",
                value=len(dims),
                allowed=4,
                fix=spec.fix if len(dims) < 4 else "conv3d-to-2d" if len(dims) == 5 and ctx.op in FLAT_3D else "",
            )
            return


def batch_of(dims: tuple[int, ...]) -> int:
    """DLA's batch: the product of every dimension except the last three (C, H, W)."""
    batch = 1
    for d in dims[:-3]:
        batch *= d
    return batch


@rule("general.batch")
def batch(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer == "gpu_only":
        return
    limit = spec.limits["max"]
    for value, dims in ctx.tensor_dims:
        if dims is not None and batch_of(dims) > limit:
            yield Finding(
                f"batch {batch_of(dims)} of tensor '{value.name}' exceeds DLA's maximum of {limit}",
                value=batch_of(dims),
                allowed=[1, limit],
            )
            return


@rule("general.dims")
def dims_limit(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer == "gpu_only":
        return
    limit = spec.limits["max"]
    for value, dims in ctx.tensor_dims:
        if dims is None:
            continue
        for size in dims[-3:] if len(dims) >= 3 else dims[1:]:
            if size > limit:
                yield Finding(
                    f"dimension {size} of tensor '{value.name}' ({format_shape(value.shape)}) exceeds DLA's "
                    f"maximum of {limit} for non-batch dimensions",
                    value=size,
                    allowed=[1, limit],
                )
                return


@rule("general.loadable-limit")
def loadable_limit(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    """Applied to whole subgraphs by :mod:`dlakit.check.subgraphs`, never node by node."""
    return iter(())


@rule("op.unsupported")
def unsupported(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    yield Finding(ctx.op_spec.why or f"{ctx.op} has no DLA implementation", value=ctx.op, fix=ctx.op_spec.fix)


@rule("op.unknown")
def unknown(ctx: NodeContext, spec: RuleSpec) -> Iterator[Finding]:
    if ctx.layer == "unknown":
        yield Finding(
            f"dlakit knows no TensorRT DLA layer for ONNX op {ctx.op}; TensorRT runs it on the GPU (or rejects it)",
            value=ctx.op,
        )
