"""``Identity`` computes nothing, nor does an inference ``Dropout`` (no training mode, its mask unread; TensorRT's
parser drops it too); removing them lets neighbouring DLA layers join one loadable and lets reshape-merge see the
Reshapes on either side (AlexNet / VGG classifier heads: Reshape → Dropout → Reshape around each FC layer).

Before a model output, the producer's tensor takes over the output's name, so the model's interface is unchanged.
"""

from __future__ import annotations

import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import const_of


def _dropout_refusal(node: ir.Node) -> str | None:
    if len(node.outputs) > 1 and node.outputs[1] is not None and (node.outputs[1].uses()
                                                                 or node.outputs[1].is_graph_output()):
        return "its mask output is read"
    training = node.inputs[2] if len(node.inputs) > 2 else None
    if training is not None:
        flag = const_of(training)
        if flag is None or bool(flag.reshape(-1)[0]):
            return "it may run in training mode (training_mode is not a constant false)"
    return None


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    x, out = node.inputs[0], node.outputs[0]
    if x is None:
        return "it has no input"
    if node.op_type == "Dropout":
        refused = _dropout_refusal(node)
        if refused:
            return refused
    if out.is_graph_output() and (x.producer() is None or x.is_graph_output()):
        return ("it passes a model input or another model output straight to a model output; removing it would "
                "merge or rename the model's outputs")
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    return [node.inputs[0]]


RULE = Rule(id="identity-removal", ops=("Identity", "Dropout"), summary="Identity(x), inference Dropout(x) → x",
            check=check, rewrite=rewrite)
