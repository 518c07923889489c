"""Conv / MaxPool / AveragePool over 5-D tensors with a depth of 1 → the 2-D op between two Reshapes.

DLA convolves and pools in 2-D only (check's ``conv.spatial-dims``, ``general.rank``). A Conv3d whose input depth
is 1 and whose output depth is 1 (watermark and video models run one frame) touches exactly one depth tap of its
kernel: the one at ``pad_begin / dilation``, all others meet zero padding. So it is a 2-D convolution with that
weight slice, on ``[N, C, H, W]``; the Reshapes in and out are free (``reshape-merge`` joins back-to-back ones).
Pools need a depth window of 1 and no depth padding for the same argument.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._common import attr_ints, const_of, dims, need_float, reshape


def _plan(node: ir.Node) -> tuple[int, dict] | Answer:
    x = node.inputs[0]
    shape, out = dims(x), dims(node.outputs[0])
    if x is None or shape is None or len(shape) != 5:
        return NO_MATCH
    if shape[2] != 1:
        return f"the depth is {shape[2]}, not 1: a true 3-D op DLA cannot run"
    reason = need_float(x)
    if reason:
        return reason
    if out is None or len(out) != 5 or out[2] != 1:
        return "the output depth is not 1 (the depth padding adds planes)"
    if node.attributes.get_string("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return "the op uses auto_pad SAME; export it with explicit pads"
    if len([v for v in node.outputs if v.uses() or v.is_graph_output()]) > 1:
        return "MaxPool's index output is used"
    if node.op_type == "Conv":
        weight = dims(node.inputs[1])
        kernel = list(weight[2:]) if weight is not None else attr_ints(node, "kernel_shape")
    else:
        kernel = attr_ints(node, "kernel_shape")
    if kernel is None or len(kernel) != 3:
        return "the kernel shape is unknown"
    pads = attr_ints(node, "pads", [0] * 6) or [0] * 6
    strides = attr_ints(node, "strides", [1, 1, 1]) or [1, 1, 1]
    dilations = attr_ints(node, "dilations", [1, 1, 1]) or [1, 1, 1]
    if pads[0] % dilations[0] or pads[0] // dilations[0] >= kernel[0]:
        return f"no kernel depth tap meets the input plane (depth pad {pads[0]}, dilation {dilations[0]})"
    tap = pads[0] // dilations[0]
    if node.op_type != "Conv" and (kernel[0] != 1 or pads[0] or pads[3]):
        return "the pool's depth window is not 1, so padded planes would enter it"
    attrs = {a.name: a.value for a in node.attributes.values() if a.name not in ("kernel_shape", "pads", "strides",
                                                                               "dilations", "auto_pad")}
    attrs.update(kernel_shape=kernel[1:], pads=[pads[1], pads[2], pads[4], pads[5]], strides=strides[1:])
    if node.op_type != "AveragePool" or any(d != 1 for d in dilations):
        attrs["dilations"] = dilations[1:]
    if node.op_type == "Conv" and const_of(node.inputs[1]) is None:
        return "the weights are not a build-time constant"
    return tap, attrs


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    return refusal_of(_plan(node))


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    tap, attrs = _plan(node)  # type: ignore[misc]
    n, c, _, h, w = dims(node.inputs[0]) or ()
    x = reshape(ctx, node.inputs[0], [n, c, h, w])
    inputs = [x]
    if node.op_type == "Conv":
        weight = const_of(node.inputs[1])
        assert weight is not None
        inputs += [ctx.const(weight[:, :, tap], "weight"), *node.inputs[2:]]
    y = ctx.op(node.op_type, inputs, attrs)
    return [reshape(ctx, y, list(dims(node.outputs[0]) or ()))]


RULE = Rule(id="conv3d-to-2d", ops=("Conv", "MaxPool", "AveragePool"),
            summary="Conv/pool on 5-D tensors with depth 1 → 2-D op between Reshapes", check=check, rewrite=rewrite)
