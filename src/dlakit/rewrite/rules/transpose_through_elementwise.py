"""A Transpose before an element-wise op (or a Concat) moves behind it, so that the Transposes of NHWC exports
meet and cancel.

TF/Keras converters (tf2onnx, onnx2tf's reverse, keras2onnx) keep the NHWC layout between layers and put a Transpose
around every convolution: ``Conv → Transpose(NCHW→NHWC) → Mul/Add (batch norm) → Relu → Transpose(NHWC→NCHW) →
Conv``. Each Transpose is a DLA shuffle (or a GPU op with two transitions). ``op(T(x), c) = T(op(x, T⁻¹(c)))`` for
element-wise ops, so the Transpose moves down the chain, its constants are permuted to the other layout (a [C]
NHWC scale becomes [1, C, 1, 1]), and ``transpose-merge`` then cancels it against the inverse one; the batch norm
arithmetic, now right after a convolution, folds into it (``fold-mul-add-into-conv``).

An element-wise chain between a model input and a Transpose (NHWC input normalisation: ``x → Sub → Mul →
Transpose → Conv``) is the other way round: the Transpose moves up to the input, so the arithmetic runs in NCHW
next to the convolution (and ``fold-mul-add-before-conv`` folds it in); a Transpose reading a model input stays.

A Transpose is moved down only where every reader of its output is an element-wise op or another Transpose, so no
Transpose is added where none can cancel. A binary op moves when its other inputs are constants, Transposes with the
same permutation, or tensors that already have a Transpose to the other layout earlier in the graph (a residual
Add whose shortcut is the NHWC input that the next convolution transposes anyway): that Transpose is reused.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer, Rule, RuleContext, refusal_of
from dlakit.rewrite.rules._common import const_of, dims

UNARY = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus", "Abs", "Neg",
         "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Clip", "Cast", "Identity", "Floor", "Ceil", "Round", "Sign")
BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu", "Pow")
#: Concat moves too, with its axis renumbered (NHWC's channel concat, axis 3, becomes axis 1)
OPS = (*UNARY, *BINARY, "Concat")


def perm_of(node: ir.Node) -> list[int] | None:
    """A Transpose's permutation (default: reversed axes), or None when its rank is unknown."""
    attr = node.attributes.get("perm")
    if attr is not None:
        return [int(v) for v in attr.value]
    shape = dims(node.inputs[0])
    return None if shape is None else list(range(len(shape)))[::-1]


def _data_inputs(node: ir.Node) -> list[int]:
    """Positions of the inputs that are tensors of the element-wise computation (Clip's bounds are not)."""
    if node.op_type == "Clip":
        return [0]
    return [i for i, v in enumerate(node.inputs) if v is not None]


def _movable(transpose: ir.Node) -> bool:
    out = transpose.outputs[0]
    if _at_model_input(transpose):
        return False  # the layout changes once, at the model input (a chain after it was moved there on purpose)
    return not out.is_graph_output() and all(
        use.node.op_type in OPS or use.node.op_type == "Transpose" for use in out.uses())


def _order(ctx: RuleContext) -> dict[int, int]:
    """Position of every node in the graph as the round started (nodes inserted since are not in it)."""
    cached = getattr(ctx, "_node_order", None)
    if cached is None or cached[0] is not ctx.graph:
        cached = (ctx.graph, {id(n): i for i, n in enumerate(ctx.graph)})
        ctx._node_order = cached  # type: ignore[attr-defined]
    return cached[1]


def _earlier_inverse(value: ir.Value, perm: list[int], node: ir.Node, ctx: RuleContext) -> ir.Value | None:
    """An existing ``Transpose(value, inverse of perm)`` placed before ``node``, whose output can stand in."""
    inverse = list(np.argsort(perm))
    order = _order(ctx)
    here = order.get(id(node))
    for use in value.uses():
        other = use.node
        if (other.op_type == "Transpose" and other.graph is ctx.graph and perm_of(other) == inverse
                and here is not None and order.get(id(other), here) < here):
            return other.outputs[0]
    return None


Plan = tuple[list[int], dict[int, np.ndarray], dict[int, ir.Value]]


def _plan(node: ir.Node, ctx: RuleContext) -> Plan | Answer:
    """(the permutation, the constants and the reused inverse Transposes by input position) when ``node`` can move
    its input Transposes behind it."""
    perm: list[int] | None = None
    constants: dict[int, np.ndarray] = {}
    others: list[int] = []
    for i in _data_inputs(node):
        value = node.inputs[i]
        array = const_of(value)
        if array is not None:
            constants[i] = array
            continue
        producer = value.producer() if value is not None else None
        if producer is None or producer.op_type != "Transpose" or not _movable(producer):
            others.append(i)
            continue
        p = perm_of(producer)
        if p is None or (perm is not None and p != perm):
            return NO_MATCH
        perm = p
    if perm is None:
        return NO_MATCH
    reused: dict[int, ir.Value] = {}
    for i in others:
        found = _earlier_inverse(node.inputs[i], perm, node, ctx)  # type: ignore[arg-type]
        if found is None:
            return NO_MATCH
        reused[i] = found
    out = dims(node.outputs[0])
    if node.op_type == "Concat" and node.attributes.get("axis") is None:
        return NO_MATCH
    if out is None or len(out) != len(perm) or any(a.ndim > len(perm) for a in constants.values()):
        return NO_MATCH  # a constant would broadcast the result to a higher rank
    return perm, constants, reused


def _upward(node: ir.Node) -> ir.Node | None:
    """For a Transpose after an element-wise chain that starts at a model input (NHWC input normalisation:
    ``x → Sub → Mul → Transpose → Conv``): the op right above it, which the Transpose moves in front of. The chain
    ops must have one reader each and constants as their other inputs, so the Transpose ends at the model input,
    where the layout changes once."""
    x = node.inputs[0]
    op = x.producer() if x is not None else None
    first = op
    while op is not None:
        if op.op_type not in OPS or op.op_type in ("Cast", "Concat") or len(op.outputs[0].uses()) != 1 \
                or op.outputs[0].is_graph_output():
            return None
        data = [op.inputs[i] for i in _data_inputs(op) if const_of(op.inputs[i]) is None]
        if len(data) != 1 or data[0] is None:
            return None
        if data[0].is_graph_input():
            return first
        op = data[0].producer()
    return None


def _at_model_input(node: ir.Node) -> bool:
    x = node.inputs[0]
    return x is not None and x.is_graph_input()


def check(node: ir.Node, ctx: RuleContext) -> Answer | None:
    if node.op_type == "Transpose":
        up = _upward(node)
        if up is None or perm_of(node) is None or dims(up.outputs[0]) is None:
            return NO_MATCH
        out = len(dims(up.outputs[0]) or ())
        consts = [const_of(up.inputs[i]) for i in _data_inputs(up)]
        return NO_MATCH if any(c is not None and c.ndim > out for c in consts) else None
    return refusal_of(_plan(node, ctx))


def _move_up(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    """Transpose(op(x, c)) → op(Transpose(x), permuted c)."""
    op = _upward(node)
    perm = perm_of(node) or []
    rank = len(perm)
    inputs: list[ir.Value | None] = list(op.inputs)  # type: ignore[union-attr]
    for i in _data_inputs(op):  # type: ignore[arg-type]
        array = const_of(op.inputs[i])  # type: ignore[union-attr]
        if array is None:
            inputs[i] = ctx.op("Transpose", [op.inputs[i]], {"perm": perm})  # type: ignore[union-attr]
        else:
            full = array.reshape((1,) * (rank - array.ndim) + array.shape)
            inputs[i] = ctx.const(np.ascontiguousarray(full.transpose(perm)), "permuted")
    attrs = {a.name: a.value for a in op.attributes.values()}  # type: ignore[union-attr]
    return [ctx.op(op.op_type, inputs, attrs)]  # type: ignore[union-attr]


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    if node.op_type == "Transpose":
        return _move_up(node, ctx)
    perm, constants, reused = _plan(node, ctx)  # type: ignore[misc]
    inverse = list(np.argsort(perm))
    inputs: list[ir.Value | None] = list(node.inputs)
    for i in _data_inputs(node):
        if i in constants:
            array = constants[i]
            full = array.reshape((1,) * (len(perm) - array.ndim) + array.shape)
            inputs[i] = ctx.const(np.ascontiguousarray(full.transpose(inverse)), "permuted")
        elif i in reused:
            inputs[i] = reused[i]
        else:
            inputs[i] = node.inputs[i].producer().inputs[0]  # type: ignore[union-attr]
    attrs = {a.name: a.value for a in node.attributes.values()}
    if node.op_type == "Concat":
        axis = int(attrs["axis"])
        attrs["axis"] = perm[axis % len(perm)]  # output axis k of T(z) is axis perm[k] of z
    moved = ctx.op(node.op_type, inputs, attrs)
    if node.op_type == "Cast" or node.outputs[0].dtype is not None:
        moved.dtype = node.outputs[0].dtype
    return [ctx.op("Transpose", [moved], {"perm": perm})]


RULE = Rule(id="transpose-through-elementwise", ops=(*OPS, "Transpose"),
            summary="op(Transpose(x), c) → Transpose(op(x, permuted c)) for element-wise ops (NHWC exports)",
            check=check, rewrite=rewrite, report_refusals=False)
