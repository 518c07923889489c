"""Multiply-accumulates and parameters per node, the currency of placement and performance."""

from __future__ import annotations

import math

import onnx_ir as ir

from dlakit.model.folding import is_constant, is_folded
from dlakit.model.shapes import static_dims

FLOAT_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE,
                         ir.DataType.INT8, ir.DataType.UINT8})


def node_macs(node: ir.Node) -> int:
    """Multiply-accumulates of one inference of the node (0 for ops without a weighted sum)."""
    op = node.op_type
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        out = static_dims(node.outputs[0])
        weight = static_dims(node.inputs[3 if op == "QLinearConv" else 1])
        if out is None or weight is None:
            return 0
        return math.prod(out) * math.prod(weight[1:])
    if op == "ConvTranspose":
        inp, weight = static_dims(node.inputs[0]), static_dims(node.inputs[1])
        if inp is None or weight is None:
            return 0
        return math.prod(inp) * math.prod(weight[1:])
    if op in ("MatMul", "Gemm", "MatMulInteger"):
        out, a = static_dims(node.outputs[0]), static_dims(node.inputs[0])
        if out is None or a is None or not a:
            return 0
        trans_a = op == "Gemm" and node.attributes.get_int("transA", 0)
        k = a[0] if trans_a else a[-1]
        return math.prod(out) * k
    return 0


def node_params(node: ir.Node) -> int:
    """Elements of the constant numeric inputs (weights, biases, scales) a computing node reads."""
    if is_folded(node):
        return 0
    total = 0
    for value in node.inputs:
        if value is None or not is_constant(value) or value.dtype not in FLOAT_TYPES:
            continue
        dims = static_dims(value)
        if dims is not None:
            total += math.prod(dims)
    return total


def model_params(graph: ir.Graph) -> int:
    """Distinct constant weights read by computing nodes (a weight shared by two nodes counts once)."""
    seen: set[int] = set()
    total = 0
    for node in graph:
        if is_folded(node):
            continue
        for value in node.inputs:
            if value is None or id(value) in seen or not is_constant(value) or value.dtype not in FLOAT_TYPES:
                continue
            seen.add(id(value))
            dims = static_dims(value)
            if dims is not None:
                total += math.prod(dims)
    return total
