"""Turn a placed ONNX graph into the operations a DLA core executes.

The DLA compiler does not run ONNX nodes one by one: a convolution carries its bias, batch-norm / scale, activation
and a residual element-wise add through the SDP pipeline behind the MAC array, and writes one tensor. Pooling (PDP),
LRN (CDP), resize / transposes (data-movement engines) and stand-alone element-wise ops (SDP) run as their own
operations. Reshapes cost nothing. A channel Split / Slice or Concat carries the channel range of each of its parts
(:class:`ChannelPart`), so the cost model can tell a view into the same buffer (aligned to the DLA's channel atom)
from a copy (:mod:`dlakit.perf.cost`). Performance depends on that grouping far more than on the node count, so the
model prices :class:`DlaOp` objects, not nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import onnx_ir as ir

from dlakit.data.opdata import op_data
from dlakit.model import constant_array, is_constant, is_folded, node_macs, static_dims

#: What the performance model knows of each op, from ``data/ops.toml``: its kind (``perf``), whether it rides in the
#: SDP behind a convolution (``sdp``), and the execution unit of each kind (``[perf_units]``).
_OPS = op_data()
SCALE_OPS = _OPS.having("sdp", "scale")
ACTIVATION_OPS = _OPS.having("sdp", "act")
#: Execution unit per op kind (NVDLA names: CONV core, depth-wise processor, SDP, PDP, CDP, DMA/rubik engines).
UNIT = _OPS.perf_units
_KIND = {op: info.perf for op, info in _OPS.ops.items() if info.perf is not None}


@dataclass(frozen=True)
class Tensor:
    """A tensor as the DLA stores it: N, C, H, W (lower ranks padded with ones on the right)."""

    name: str
    dims: tuple[int, int, int, int]
    graph_input: bool = False
    graph_output: bool = False

    @property
    def elements(self) -> int:
        return math.prod(self.dims)


@dataclass(frozen=True)
class ChannelPart:
    """One part of a channel Split / Slice (an output: channels ``offset .. offset + channels`` of the input) or of a
    channel Concat (an input, at that offset in the output). ``name`` is None for a constant Concat input."""

    name: str | None
    offset: int
    channels: int


@dataclass
class DlaOp:
    """One operation as the DLA (or the GPU, for fallback layers) executes it, with what it fused."""

    name: str
    kind: str
    device: str
    nodes: list[str]
    macs: int = 0
    inputs: list[Tensor] = field(default_factory=list)
    output: Tensor | None = None
    weight_elems: int = 0
    # convolution geometry (per whole tensor; groups split C and K)
    in_c: int = 0
    out_c: int = 0
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)
    out_pixels: int = 0
    image_input: bool = False
    #: outputs after the first (a Split has one per part); :attr:`outputs` lists them all
    more_outputs: list[Tensor] = field(default_factory=list)
    #: slice / concat along the channel axis: the channel range of every part (empty: along another axis, or
    #: not a slice / concat, priced as a copy of its bytes)
    parts: list[ChannelPart] = field(default_factory=list)
    #: slice / concat: channels of the whole (split input / concat output)
    total_channels: int = 0

    @property
    def unit(self) -> str:
        return UNIT[self.kind]

    @property
    def outputs(self) -> list[Tensor]:
        return ([self.output] if self.output is not None else []) + self.more_outputs


def _tensor(value: ir.Value, graph: ir.Graph) -> Tensor | None:
    dims = static_dims(value)
    if dims is None:
        return None
    dims = tuple(dims) or (1,)
    if len(dims) > 4:
        dims = (dims[0], math.prod(dims[1:-2]), dims[-2], dims[-1])
    n, c, h, w = (*dims, 1, 1, 1)[:4]
    is_output = value.is_graph_output()  # a flag on the value, not a scan of the outputs per tensor
    return Tensor(value.name or "?", (n, c, h, w), value.is_graph_input(), is_output)


def _dynamic_inputs(node: ir.Node) -> list[ir.Value]:
    return [v for v in node.inputs if v is not None and not is_constant(v)]


def _weight_elems(node: ir.Node) -> int:
    """The elements of a conv/deconv/FC layer's weights and bias, the bias counted as one value per output map
    whether or not the model has one: a layer costs the same with its bias as without it (so folding an Add into
    the bias, as ``fix`` does, never changes the priced tiling; the fit networks all carry biases)."""
    value = node.inputs[1] if len(node.inputs) > 1 else None
    if value is None or not is_constant(value):
        return 0
    dims = static_dims(value)
    if not dims:
        return 0
    maps = dims[1] * node.attributes.get_int("group", 1) if node.op_type == "ConvTranspose" else dims[0]
    if node.op_type in ("MatMul", "Gemm"):
        maps = dims[0] if node.op_type == "Gemm" and node.attributes.get_int("transB", 0) else dims[-1]
    return math.prod(dims) + maps


def classify(node: ir.Node) -> str:
    """The op kind of a single node, as the DLA compiler would run it on its own."""
    kind = _KIND.get(node.op_type, "other")
    if kind == "conv":
        weight = static_dims(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        groups = node.attributes.get_int("group", 1)
        if groups > 1 and weight is not None and weight[1] == 1:
            return "depthwise"
        return "conv"
    if kind == "fc":
        return "fc" if len(node.inputs) > 1 and is_constant(node.inputs[1]) else "other"
    return kind


def _fusable(node: ir.Node, residual_taken: bool, out: ir.Value) -> str | None:
    """'scale', 'act' or 'residual' if ``node`` can ride in the SDP behind a convolution producing ``out``."""
    op = node.op_type
    if op in ACTIVATION_OPS:
        return "act"
    if op not in SCALE_OPS:
        return None
    others = [v for v in node.inputs if v is not None and v is not out]
    if all(is_constant(v) for v in others):
        return "scale"
    same_shape = len(others) == 1 and static_dims(others[0]) == static_dims(out)
    return "residual" if op == "Add" and not residual_taken and same_shape else None


def build_ops(graph: ir.Graph, placement: Mapping[str, str] | None = None) -> list[DlaOp]:
    """Group the graph's non-folded nodes into DLA operations, following the compiler's fusions.

    ``placement`` maps node names to ``dla``/``gpu``/``fixable``/``folded`` (from ``check``); nodes it does not name
    run on the DLA. Fusion never crosses a device boundary or a tensor read by two consumers, because the fused
    intermediate is never written out.
    """
    placement = placement or {}
    consumers: dict[int, list[ir.Node]] = {}
    for node in graph:
        if is_folded(node):
            continue
        for value in node.inputs:
            if value is not None:
                consumers.setdefault(id(value), []).append(node)
    outputs = {id(v) for v in graph.outputs}

    def device(node: ir.Node) -> str:
        where = placement.get(node.name, "dla")
        return "dla" if where in ("dla", "folded") else "gpu"

    ops: list[DlaOp] = []
    absorbed: set[int] = set()
    for node in graph:
        if is_folded(node) or id(node) in absorbed or placement.get(node.name) == "folded":
            continue
        kind = classify(node)
        dev = device(node)
        inputs = [t for v in _dynamic_inputs(node) if (t := _tensor(v, graph)) is not None]
        op = DlaOp(name=node.name, kind=kind, device=dev, nodes=[node.name], macs=node_macs(node),
                   inputs=inputs, weight_elems=_weight_elems(node) if kind in ("conv", "fc", "deconv",
                                                                               "depthwise") else 0)
        if kind in ("conv", "depthwise", "deconv", "fc"):
            _conv_geometry(op, node)
            out = node.outputs[0]
            residual = False
            while dev == "dla" and id(out) not in outputs:
                users = consumers.get(id(out), [])
                if len(users) != 1 or id(users[0]) in absorbed or device(users[0]) != dev:
                    break
                fused = _fusable(users[0], residual, out)
                if fused is None:
                    break
                if fused == "residual":
                    residual = True
                    other = next(v for v in users[0].inputs if v is not None and v is not out)
                    if (t := _tensor(other, graph)) is not None:
                        op.inputs.append(t)
                absorbed.add(id(users[0]))
                op.nodes.append(users[0].name)
                out = users[0].outputs[0]
            op.output = _tensor(out, graph)
        elif node.outputs:
            outs = [t for v in node.outputs if v is not None and (t := _tensor(v, graph)) is not None]
            op.output, op.more_outputs = (outs[0], outs[1:]) if outs else (None, [])
            if kind in ("slice", "concat"):
                _channel_parts(op, node)
        ops.append(op)
    return ops


def _channel_axis(node: ir.Node, rank: int) -> bool:
    """Whether ``node``'s ``axis`` attribute is the channel axis (1) of a tensor of rank 2-4 (N, C, H, W)."""
    axis = node.attributes.get_int("axis", 0)
    return 2 <= rank <= 4 and (axis + rank if axis < 0 else axis) == 1


def _slice_start(node: ir.Node, dims: list[int]) -> int | None:
    """The channel a Slice starts at, when it slices the channel axis only with step 1 (else None)."""
    consts = [constant_array(v) if v is not None else None for v in node.inputs[1:5]]
    if len(consts) < 2 or consts[0] is None or consts[1] is None:
        return None
    flat = [None if c is None else [int(x) for x in c.reshape(-1)] for c in consts]
    starts, ends = flat[0], flat[1]
    axes = flat[2] if len(flat) > 2 and flat[2] is not None else list(range(len(starts)))
    steps = flat[3] if len(flat) > 3 and flat[3] is not None else [1] * len(starts)
    rank = len(dims)
    sliced = {}
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=False):
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis < rank:
            return None
        size = dims[axis]
        lo = min(max(start + size if start < 0 else start, 0), size)
        hi = min(max(end + size if end < 0 else end, 0), size)
        if step != 1 or (lo, hi) != (0, size):
            sliced[axis] = lo
    return sliced.get(1, 0) if set(sliced) <= {1} else None


def _channel_parts(op: DlaOp, node: ir.Node) -> None:
    """Fill ``op.parts`` when ``node`` (Split, Slice, Concat) works along the channel axis of 2-4-D tensors."""
    if node.op_type == "Concat":
        dims = [static_dims(v) if v is not None else None for v in node.inputs]
        if not dims or any(d is None or len(d) != len(dims[0]) for d in dims) or not _channel_axis(node, len(dims[0])):
            return
        offset, parts = 0, []
        for value, d in zip(node.inputs, dims, strict=True):
            parts.append(ChannelPart(None if is_constant(value) else value.name, offset, int(d[1])))
            offset += int(d[1])
        op.parts, op.total_channels = parts, offset
        return
    src = static_dims(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
    if src is None or not 2 <= len(src) <= 4:
        return
    if node.op_type == "Split":
        if not _channel_axis(node, len(src)):
            return
        offset, parts = 0, []
        for value in node.outputs:
            d = static_dims(value) if value is not None else None
            if d is None or len(d) != len(src):
                return
            parts.append(ChannelPart(value.name, offset, int(d[1])))
            offset += int(d[1])
    else:
        start = _slice_start(node, list(src))
        out = static_dims(node.outputs[0])
        if start is None or out is None or len(out) != len(src):
            return
        parts = [ChannelPart(node.outputs[0].name, start, int(out[1]))]
    op.parts, op.total_channels = parts, int(src[1])


def _conv_geometry(op: DlaOp, node: ir.Node) -> None:
    """Channels, groups, kernel and output pixels the MAC array iterates over (FC = 1x1 conv over N pixels)."""
    out = static_dims(node.outputs[0]) or ()
    weight = static_dims(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
    if node.op_type in ("Gemm", "MatMul"):
        inp = static_dims(node.inputs[0]) or (1,)
        trans_b = node.op_type == "Gemm" and node.attributes.get_int("transB", 0)
        k_dim = (weight[1] if trans_b else weight[0]) if weight and len(weight) == 2 else (inp[-1] if inp else 1)
        op.in_c = int(k_dim)
        op.out_c = int(out[-1]) if out else 1
        op.out_pixels = math.prod(out[:-1]) if out else 1
        return
    op.groups = node.attributes.get_int("group", 1)
    if weight is None or len(weight) != 4 or len(out) != 4:
        op.in_c, op.out_c, op.out_pixels = 1, 1, max(1, op.macs)
        return
    if node.op_type == "ConvTranspose":
        inp = static_dims(node.inputs[0]) or out
        op.in_c, op.out_c = int(weight[0]), int(weight[1]) * op.groups
        op.out_pixels = inp[0] * inp[2] * inp[3] if len(inp) == 4 else out[0] * out[2] * out[3]
    else:
        op.in_c, op.out_c = int(weight[1]) * op.groups, int(weight[0])
        op.out_pixels = out[0] * out[2] * out[3]
        src = node.inputs[0]
        op.image_input = bool(src is not None and src.is_graph_input())
    op.kernel = (int(weight[2]), int(weight[3]))
