"""``x / c`` with a constant ``c`` is ``x · (1/c)``: DLA runs no element-wise DIV (TensorRT refuses Div by a constant
on DLA, "DLA cores do not support DIV ElementWise operation", check's ``eltwise.op``), but a multiply by a constant
is a Scale layer or an element-wise PROD. HardSwish's ÷6 where no convolution follows, GELU's ÷√2, ``/255`` and
``/std`` input normalisation are the usual cases. The reciprocal is rounded once, so the result may differ from the
division by one unit in the last place.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import Rule, RuleContext
from dlakit.rewrite.rules._common import const_of, need_float


def _reciprocal(divisor: np.ndarray) -> np.ndarray:
    """1/c in float64 (a zero or non-finite c must be refused before)."""
    return 1.0 / divisor.astype(np.float64)


def check(node: ir.Node, ctx: RuleContext) -> str | None:
    x, c = node.inputs[:2]
    divisor = const_of(c)
    if divisor is None or const_of(x) is not None:
        return "the divisor is not a constant: DLA has no division of two run-time tensors"
    refused = need_float(x)
    if refused:
        return refused
    if not np.issubdtype(divisor.dtype, np.floating):
        return "the divisor is not floating-point"
    if not np.all(np.isfinite(divisor)) or np.any(divisor == 0):
        return "the divisor holds a zero or a non-finite value: its reciprocal is not a number"
    if np.any(np.abs(_reciprocal(divisor)) > np.finfo(divisor.dtype).max):
        return "the divisor's reciprocal overflows its type"
    return None


def rewrite(node: ir.Node, ctx: RuleContext) -> list[ir.Value]:
    x, c = node.inputs[:2]
    divisor = const_of(c)
    return [ctx.op("Mul", [x, ctx.const(_reciprocal(divisor).astype(divisor.dtype), "reciprocal")])]


RULE = Rule(id="div-to-mul", ops=("Div",), summary="x / c (constant c) → x · (1/c)", check=check, rewrite=rewrite)
