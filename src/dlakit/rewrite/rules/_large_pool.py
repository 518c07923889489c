"""Plans shared by ``maxpool-chain`` and ``avgpool-split``: pools whose window exceeds DLA's (8, rules.toml).

Two exact forms exist. A *non-overlapping* pool (stride = window, no padding) over blocks of k rows is a chain of
non-overlapping pools whose windows multiply to k (the mean of equal-block means is the block mean, the max of
maxima the max), as ``reduce-to-pool`` does for whole axes. A *stride-1 max* pool with 'same' padding (SPP's 9×9
and 13×13) is a chain of smaller stride-1 max pools whose spans add up: max over [i−p, i+q] is the max over
[i−p₂, i+q₂] of maxima over [j−p₁, j+q₁] when p₁+p₂ = p and q₁+q₂ = q, borders included, because max ignores the
padding. Average pooling with overlap has no such chain (borders weigh differently); it becomes a depthwise
convolution with a constant 1/(kh·kw) kernel, exact when padded zeros count (``count_include_pad=1``) or there is
no padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx_ir as ir

from dlakit.rewrite.engine import NO_MATCH, Answer
from dlakit.rewrite.rules._common import attr_int, attr_ints, float_nchw_io, pool_factors
from dlakit.rewrite.rules._limits import pool_pad_max, pool_stride_max, pool_window_max


@dataclass
class PoolShape:
    """A 2-D pool's static geometry."""

    shape: tuple[int, ...]
    out: tuple[int, ...]
    kernel: list[int]
    strides: list[int]
    pads: list[int]  # begin h, begin w, end h, end w


def pool_shape(node: ir.Node) -> PoolShape | Answer:
    """The pool's geometry, NO_MATCH when its window already fits DLA, or a reason."""
    kernel = attr_ints(node, "kernel_shape") or []
    limit = pool_window_max()
    if len(kernel) != 2 or all(k <= limit for k in kernel):
        return NO_MATCH
    io = float_nchw_io(node)
    if isinstance(io, Answer):
        return io
    shape, out = io
    if any(d != 1 for d in attr_ints(node, "dilations", [1, 1]) or [1, 1]):
        return "the pool is dilated"
    if len([v for v in node.outputs if v.uses() or v.is_graph_output()]) > 1:
        return "MaxPool's index output is used"
    strides = attr_ints(node, "strides", [1, 1]) or [1, 1]
    auto = node.attributes.get_string("auto_pad", "NOTSET")
    if auto == "VALID":
        pads = [0, 0, 0, 0]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        if any(s != 1 for s in strides):
            return f"auto_pad {auto} with strides {strides}; export with explicit pads"
        small = [(k - 1) // 2 for k in kernel]
        large = [k - 1 - s for k, s in zip(kernel, small, strict=True)]
        pads = [*small, *large] if auto == "SAME_UPPER" else [*large, *small]
    else:
        pads = attr_ints(node, "pads", [0, 0, 0, 0]) or [0, 0, 0, 0]
    return PoolShape(shape, out, kernel, strides, pads)


def block_chain(geo: PoolShape) -> list[tuple[int, int]] | str:
    """Windows (h, w) of a non-overlapping chain equal to the pool, or why there is none."""
    if any(geo.pads) or geo.strides != geo.kernel:
        return "it is neither non-overlapping (stride = window, no padding) nor a stride-1 max pool"
    factors = []
    for axis, k in zip("HW", geo.kernel, strict=True):
        found = pool_factors(k)
        if found is None:
            return (f"the {axis} window {k} has a prime factor above {pool_window_max()}, so no chain of DLA "
                    "pooling windows covers it")
        factors.append(found)
    if any(f > pool_stride_max() for fs in factors for f in fs):
        return f"a chained window would exceed DLA's pooling stride limit of {pool_stride_max()}"
    steps = max(len(f) for f in factors)
    fh, fw = (f + [1] * (steps - len(f)) for f in factors)
    return list(zip(fh, fw, strict=True))


def _split(span: int, before: int, pieces: int) -> list[tuple[int, int, int]]:
    """(kernel, pad_begin, pad_end) of ``pieces`` stride-1 pools whose spans add up to ``span``."""
    spans = [span // pieces + (1 if i < span % pieces else 0) for i in range(pieces)]
    result, done = [], 0
    for s in spans:
        begin = before * (done + s) // max(span, 1) - before * done // max(span, 1)
        result.append((s + 1, begin, s - begin))
        done += s
    return result


def span_chain(geo: PoolShape) -> list[tuple[list[int], list[int]]] | str:
    """(kernel, pads) of a chain of stride-1 pools equal to a stride-1 pool whose output keeps the input size."""
    if geo.strides != [1, 1]:
        return "a max pool with stride ≠ 1 and overlapping windows has no exact chain of smaller pools"
    spans = [k - 1 for k in geo.kernel]
    for axis, (span, begin, end) in enumerate(zip(spans, geo.pads[:2], geo.pads[2:], strict=True)):
        if begin + end != span:
            return (f"the padding on axis {axis + 2} ({begin}+{end}) does not keep the size (window {span + 1}); "
                    "only 'same' stride-1 pools chain exactly")
    step = min(pool_window_max() - 1, pool_pad_max())
    pieces = max(math.ceil(s / step) for s in spans)
    per_axis = [_split(s, b, pieces) for s, b in zip(spans, geo.pads[:2], strict=True)]
    return [([h[0], w[0]], [h[1], w[1], h[2], w[2]]) for h, w in zip(*per_axis, strict=True)]


def ceil_changes_size(node: ir.Node, geo: PoolShape) -> bool:
    """Whether ceil_mode makes the output larger than the floor formula (which chains and convs compute)."""
    if not attr_int(node, "ceil_mode", 0):
        return False
    for i in range(2):
        floor = (geo.shape[i + 2] + geo.pads[i] + geo.pads[i + 2] - geo.kernel[i]) // geo.strides[i] + 1
        if geo.out[i + 2] != floor:
            return True
    return False
