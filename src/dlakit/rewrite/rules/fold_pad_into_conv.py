"""A constant-zero Pad in front of a Conv or AveragePool becomes part of the op's own padding.

Exporters (TF "SAME" padding, PyTorch asymmetric pads) emit explicit Pad nodes; DLA has no Pad layer but its
convolution and pooling take asymmetric padding up to 31 (pool: 7) as long as the pad stays below the kernel. The
rule refuses when the merged padding would break that limit, so the model never gets worse. For average pooling the
padded zeros were real elements, so the merged pool must count padding (``count_include_pad=1``); MaxPool is not
handled because a zero pad is not its −inf padding.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import attr_ints, const_of, dims
from dlakit.rewrite.rules._limits import conv_pad_max, pool_pad_max


def _pad_amounts(pad: ir.Node, rank: int) -> list[int] | Answer:
    mode = pad.attributes.get_string("mode", "constant")
    if mode != "constant":
        return f"the Pad uses mode '{mode}', not constant zeros"
    if len(pad.inputs) > 1:
        pads = const_of(pad.inputs[1])
        if pads is None:
            return "the Pad amounts are computed at run time"
        value = const_of(pad.inputs[2]) if len(pad.inputs) > 2 and pad.inputs[2] is not None else np.zeros(1)
        if value is None or np.any(value != 0):
            return "the Pad fills with a non-zero value"
        pads = [int(p) for p in pads.reshape(-1)]
        if len(pad.inputs) > 3 and pad.inputs[3] is not None:
            axes = const_of(pad.inputs[3])
            if axes is None:
                return "the Pad axes are computed at run time"
            full = [0] * (2 * rank)
            count = len(axes)
            for i, axis in enumerate(int(a) % rank for a in axes.reshape(-1)):
                full[axis], full[axis + rank] = pads[i], pads[i + count]
            pads = full
    else:
        if pad.attributes.get_float("value", 0.0) != 0.0:
            return "the Pad fills with a non-zero value"
        pads = attr_ints(pad, "pads") or attr_ints(pad, "paddings") or []
    return pads


def _merged(node: ir.Node) -> tuple[ir.Node, list[int]] | Answer:
    x = node.inputs[0]
    pad = x.producer() if x is not None else None
    if pad is None or pad.op_type != "Pad":
        return NO_MATCH
    shape = dims(x)
    if shape is None or len(shape) != 4:
        return "the padded tensor is not a static 4-D NCHW tensor"
    if len(x.uses()) != 1 or x.is_graph_output():
        return "the Pad output is also used elsewhere"
    if node.attributes.get_string("auto_pad", "NOTSET") != "NOTSET":
        return "the op uses auto_pad"
    pads = _pad_amounts(pad, 4)
    if isinstance(pads, Answer):
        return pads
    if any(p < 0 for p in pads) or pads[0] or pads[1] or pads[4] or pads[5]:
        return "the Pad crops, or pads the batch/channel axes"
    if node.op_type == "AveragePool":
        own = attr_ints(node, "pads", [0, 0, 0, 0]) or [0, 0, 0, 0]
        if any(own) and not node.attributes.get_int("count_include_pad", 0):
            return "the pool already pads and excludes padding from its average; merging would change the divisor"
    old = attr_ints(node, "pads", [0, 0, 0, 0]) or [0, 0, 0, 0]
    new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
    kernel = attr_ints(node, "kernel_shape")
    if kernel is None:
        weight = dims(node.inputs[1]) if len(node.inputs) > 1 else None
        if weight is None:
            return "the kernel size is unknown"
        kernel = list(weight[2:])
    limit = conv_pad_max() if node.op_type == "Conv" else pool_pad_max()
    for p, k in zip(new, kernel * 2, strict=True):
        if p >= k or p > limit:
            return f"the merged padding {new} would not stay below the kernel {kernel} and ≤ {limit} as DLA requires"
    return pad, new


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    merged = _merged(node)
    return merged if isinstance(merged, Answer) else None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    pad, pads = _merged(node)  # type: ignore[misc]
    attrs = {a.name: a for a in node.attributes.values()}
    attrs["pads"] = ir.AttrInt64s("pads", pads)
    if node.op_type == "AveragePool":
        attrs["count_include_pad"] = ir.AttrInt64("count_include_pad", 1)
    name = ctx.names.fresh(f"{ctx.prefix}/{node.op_type}")
    outputs = [ir.Value(name=ctx.names.fresh(f"{name}_out"))]
    new = ir.Node("", node.op_type, [pad.inputs[0], *node.inputs[1:]], attributes=list(attrs.values()),
                  outputs=outputs, name=name)
    ctx.nodes.append(new)
    return list(new.outputs)


RULE = Rule(id="fold-pad-into-conv", ops=("Conv", "AveragePool"),
            summary="constant-zero Pad → the Conv/AveragePool's own pads", check=check, rewrite=rewrite)
