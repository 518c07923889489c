"""A padded ConvTranspose → the same deconvolution without padding, then a Slice that crops the padding off.

DLA's deconvolution takes no padding (check's ``deconv.padding``), but for a transposed convolution padding only
*removes* border rows and columns from the full output: output row ``i`` of the padded op is row ``i + pad_begin``
of the unpadded one, and ``output_padding`` (PyTorch's ``output_padding=1`` for stride-2 decoders) keeps that many
more rows of it at the end. So the unpadded deconvolution followed by a crop is exact, and both are DLA layers
(a Slice with constant bounds and stride 1). When ``output_padding`` exceeds the end padding, the extra rows lie
beyond the full output (bias only) and no crop produces them: refused.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._common import attr_ints, float_nchw_io, slice_


def _plan(node: ir.Node) -> tuple[list[int], list[int], list[int]] | Answer:
    pads = attr_ints(node, "pads", [0, 0, 0, 0]) or [0, 0, 0, 0]
    extra = attr_ints(node, "output_padding", [0, 0]) or [0, 0]
    if node.attributes.get_string("auto_pad", "NOTSET") != "NOTSET":
        return "the deconvolution uses auto_pad; export it with explicit pads"
    if node.attributes.get("output_shape") is not None:
        return "the deconvolution gives output_shape; export it with explicit pads"
    if not any(pads) and not any(extra):
        return NO_MATCH
    io = float_nchw_io(node)
    if isinstance(io, Answer):
        return io
    _, out = io
    if len(pads) != 4 or len(extra) != 2 or any(p < 0 for p in pads):
        return f"pads {pads} / output_padding {extra} are not those of a 2-D deconvolution"
    for axis, (end, more) in enumerate(zip(pads[2:], extra, strict=True)):
        if more > end:
            return (f"output_padding {more} on axis {axis + 2} exceeds the end padding {end}: those rows lie "
                    "outside the unpadded output, so no crop can produce them")
    return pads, extra, list(out[2:])


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    return refusal_of(_plan(node))


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    pads, _, out = _plan(node)  # type: ignore[misc]
    attrs = {a.name: a for a in node.attributes.values() if a.name not in ("pads", "output_padding")}
    name = ctx.names.fresh(f"{ctx.prefix}/ConvTranspose")
    full = ir.Value(name=ctx.names.fresh(f"{name}_out"), type=node.inputs[0].type)
    ctx.nodes.append(ir.Node("", "ConvTranspose", list(node.inputs), attributes=list(attrs.values()),
                             outputs=[full], name=name))
    starts = pads[:2]
    return [slice_(ctx, full, starts, [s + o for s, o in zip(starts, out, strict=True)], [2, 3])]


RULE = Rule(id="deconv-pad-to-crop", ops=("ConvTranspose",),
            summary="padded ConvTranspose → unpadded deconvolution + crop (Slice)", check=check, rewrite=rewrite)
