"""Resize given by ``sizes`` → the same Resize given by ``scales``.

TensorRT's DLA path accepts Resize only through scales (``setOutputDimensions`` is not supported on DLA). With a
static input, scales = output/input per axis reproduce the sizes exactly when ``floor(in·scale)`` gives them back
in float32, which the rule checks; ``tf_crop_and_resize`` (whose ROI changes the output size) is refused.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import dims


def _scales(node: ir.Node, ctx: RuleContext) -> np.ndarray | str:
    if ctx.opset < 11:
        return "before opset 11 Resize has no sizes input; nothing to convert"
    if len(node.inputs) < 4 or node.inputs[3] is None:
        return "it already gives scales; nothing to convert (DLA's limits on scales and modes are check's business)"
    if node.attributes.get_string("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        return "tf_crop_and_resize: the ROI, not the sizes, decides the output"
    if "axes" in node.attributes:
        return "the Resize names a subset of axes"
    shape, out = dims(node.inputs[0]), dims(node.outputs[0])
    if shape is None or out is None:
        return "the input or output shape is not static (give --shapes)"
    scales = np.array(out, dtype=np.float32) / np.array(shape, dtype=np.float32)
    back = np.floor(np.array(shape, dtype=np.float32) * scales).astype(np.int64)
    if not np.array_equal(back, np.array(out)):
        return f"no float32 scales reproduce sizes {list(out)} from {list(shape)}"
    return scales


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    scales = _scales(node, ctx)
    return scales if isinstance(scales, Answer) else None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    scales = _scales(node, ctx)
    roi = node.inputs[1] if node.inputs[1] is not None else ctx.const(np.zeros(0, dtype=np.float32), "roi")
    attrs = {a.name: a for a in node.attributes.values() if a.name != "keep_aspect_ratio_policy"}
    name = ctx.names.fresh(f"{ctx.prefix}/Resize")
    new = ir.Node("", "Resize", [node.inputs[0], roi, ctx.const(scales, "scales")], attributes=list(attrs.values()),
                  outputs=[ir.Value(name=ctx.names.fresh(f"{name}_out"))], name=name)
    ctx.nodes.append(new)
    return list(new.outputs)


RULE = Rule(id="resize-sizes-to-scales", ops=("Resize",), summary="Resize(sizes) → Resize(scales)",
            check=check, rewrite=rewrite)
