"""MatMul / Gemm with constant weights → Reshape to N×K×1×1, a 1x1 convolution, Reshape back.

DLA has no matrix-multiply layer, but a product with constant weights is a fully-connected layer, which TensorRT
runs on DLA as a 1x1 convolution over a N×K×1×1 tensor. Rows of a 2-D A become the batch (DLA allows up to 4096), K
the input channels and N the output channels (each ≤ 8192; a larger K is folded into an s×1 kernel). A batched
``[B, ..., M, K]`` keeps B as the batch and becomes ``[B, K, M·..., 1]`` (a Transpose and Reshape), since DLA's
shuffles may not touch the batch axis. Gemm's alpha and
transB fold into the weights, transA becomes a Transpose (a Shuffle layer); a bias C that is constant per output
column becomes the convolution's bias, a full [M, N] bias an element-wise Add after it. A MatMul followed by an
Add of a constant per-column bias is rewritten at the Add, so the bias lands in the same convolution.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext
from dlakit.rewrite.rules._common import (
    axis_linear_map,
    const_of,
    dims,
    need_float,
    numpy_dtype,
    reshape,
)
from dlakit.rewrite.rules._limits import batch_max, channels_max, conv_kernel_max


def _kernel_rows(k: int) -> int | None:
    """1 when K fits the channel limit; else the smallest kernel height s ≤ 32 with K = s·C and C ≤ 8192.

    ``[M, K] → [M, K/s, s, 1]`` puts k = c·s + h, so an s×1 kernel sums exactly the same products: the way
    TensorRT runs a large fully-connected layer as a convolution with a spatial kernel.
    """
    if k <= channels_max():
        return 1
    return next((s for s in range(2, conv_kernel_max() + 1) if k % s == 0 and k // s <= channels_max()), None)


def _weights(node: ir.Node) -> tuple[np.ndarray, np.ndarray | None] | Answer:
    """(weight [K, N], bias [N] or None) after folding Gemm's attributes, or the reason why not."""
    b = const_of(node.inputs[1])
    if b is None:
        return "the weights (second input) are not a build-time constant; DLA multiplies only by constant weights"
    if b.ndim != 2:
        return f"the weights have rank {b.ndim}; only 2-D weights map to a 1x1 convolution"
    if node.op_type == "MatMul":
        return b, None
    b = b.T if node.attributes.get_int("transB", 0) else b
    weight = b * node.attributes.get_float("alpha", 1.0)
    c_value = node.inputs[2] if len(node.inputs) > 2 else None
    if c_value is None:
        return weight, None
    c = const_of(c_value)
    if c is None:
        return "the bias C is not a build-time constant"
    columns = weight.shape[1]
    beta = node.attributes.get_float("beta", 1.0)
    if c.size not in (1, columns) or (c.ndim == 2 and c.shape[0] != 1):
        return weight, c * beta  # a full [M, N] bias: added after the convolution
    return weight, np.broadcast_to(c.reshape(-1), (columns,)) * beta


def _bias_add(node: ir.Node) -> tuple[ir.Node, np.ndarray] | None:
    """For an Add of a constant per-column bias to a lone MatMul: (the MatMul, the bias)."""
    if node.op_type != "Add":
        return None
    for value, other in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
        producer = value.producer() if value is not None else None
        bias = const_of(other)
        if producer is None or producer.op_type != "MatMul" or bias is None:
            continue
        if len(value.uses()) != 1 or value.is_graph_output() or dims(node.outputs[0]) != dims(value):
            continue
        weight = const_of(producer.inputs[1])
        if weight is None or weight.ndim != 2 or bias.size != weight.shape[1] or bias.shape[-1] != bias.size:
            continue
        return producer, bias.reshape(-1)
    return None


def _matmul_of(node: ir.Node) -> tuple[ir.Node, np.ndarray | None] | None:
    if node.op_type != "Add":
        return node, None
    return _bias_add(node)


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    if node.op_type == "MatMul":
        users = [use.node for use in node.outputs[0].uses()]
        if len(users) == 1 and _bias_add(users[0]) is not None:
            return NO_MATCH  # the Add that follows takes the bias into the same convolution
    found = _matmul_of(node)
    if found is None:
        return NO_MATCH
    node = found[0]
    a = node.inputs[0]
    reason = need_float(a, "activation input")
    if reason:
        return reason
    shape = dims(a)
    if shape is None:
        return "the activation shape is not static (give --shapes)"
    if len(shape) < 2:
        return "the activation input is 1-D"
    weights = _weights(node)
    if isinstance(weights, Answer):
        return weights
    k, n = weights[0].shape
    if n > channels_max() or _kernel_rows(k) is None:
        return (f"K={k}, N={n}: a convolution on DLA allows at most {channels_max()} channels (K may be folded into "
                f"a kernel of up to {conv_kernel_max()} rows when it divides evenly)")
    if node.op_type == "Gemm" and node.attributes.get_int("transA", 0):
        shape = shape[::-1]
    if len(shape) > 2:
        return None if k <= channels_max() else f"K={k} exceeds DLA's {channels_max()} channels"
    if shape[0] > batch_max():
        return f"{shape[0]} rows would become the batch, above DLA's {batch_max()}"
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    node, add_bias = _matmul_of(node)  # type: ignore[misc]
    a = node.inputs[0]
    shape = dims(a) or ()
    weight, bias = _weights(node)  # type: ignore[misc]
    if add_bias is not None:
        bias = add_bias
    k, n = weight.shape
    dtype = numpy_dtype(a)
    if node.op_type == "Gemm" and node.attributes.get_int("transA", 0):
        a = ctx.op("Transpose", [a], {"perm": [1, 0]})
        shape = shape[::-1]
    if len(shape) > 2 and bias is not None and bias.ndim == 1:
        # [B, ..., M, K]: K becomes the channels of [B, K, rest, 1]; the batch axis B stays where it is
        return [axis_linear_map(ctx, a, shape, -1, weight.T, bias)]
    if len(shape) > 2 and bias is None:
        return [axis_linear_map(ctx, a, shape, -1, weight.T)]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    kh = _kernel_rows(k) or 1
    inputs = [reshape(ctx, a, [rows, k // kh, kh, 1]),
              ctx.const(weight.T.reshape(n, k // kh, kh, 1).astype(dtype), "weight")]
    full_bias = bias is not None and bias.ndim == 2
    if bias is not None and not full_bias:
        inputs.append(ctx.const(bias.astype(dtype), "bias"))
    conv = ctx.op("Conv", inputs, {"kernel_shape": [kh, 1]})
    out = reshape(ctx, conv, [*shape[:-1], n])
    return [ctx.op("Add", [out, ctx.const(bias.astype(dtype), "bias")]) if full_bias else out]


RULE = Rule(id="matmul-to-conv", ops=("MatMul", "Gemm", "Add"),
            summary="MatMul/Gemm with constant weights → Reshape + 1x1 conv + Reshape", check=check, rewrite=rewrite)
