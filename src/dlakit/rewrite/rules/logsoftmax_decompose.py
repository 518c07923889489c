"""LogSoftmax → Softmax + Log: Softmax runs on Orin's DLA, while Log has no DLA layer and stays on the GPU.

The split is still worth it: the Softmax (the part with the reduction) joins the DLA loadable and only a cheap
element-wise Log remains on the GPU. Both ops share the opset's axis semantics, so copying ``axis`` is exact.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import need_float


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    return need_float(node.inputs[0])


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    attrs = {"axis": node.attributes.get_int("axis")} if "axis" in node.attributes else {}
    return [ctx.op("Log", [ctx.op("Softmax", [node.inputs[0]], attrs)])]


RULE = Rule(id="logsoftmax-decompose", ops=("LogSoftmax",), summary="LogSoftmax → Softmax + Log",
            check=check, rewrite=rewrite,
            note="Softmax can run on DLA (Orin); Log has no DLA layer in any known release and stays on the GPU")
