"""Squeeze / Unsqueeze / Flatten become one Reshape to the static output shape (a Shuffle layer on DLA).

TensorRT parses all of them into Shuffle layers anyway; writing a single Reshape with a constant shape removes the
axes inputs (which are shape tensors on the GPU side) and lets adjacent reshapes be merged.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import dims, reshape


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    if dims(node.outputs[0]) is None:
        return "its output shape is not static (give --shapes)"
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    return [reshape(ctx, node.inputs[0], dims(node.outputs[0]) or ())]


RULE = Rule(id="squeeze-to-reshape", ops=("Squeeze", "Unsqueeze", "Flatten"),
            summary="Squeeze/Unsqueeze/Flatten → Reshape", check=check, rewrite=rewrite)
