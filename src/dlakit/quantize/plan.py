"""Which tensors get INT8 scales on DLA, which layers stay FP16, and the scales DLA forces to be equal.

TensorRT's implicit INT8 needs a scale on every tensor a DLA INT8 layer reads or writes, except the intermediates
the DLA compiler fuses away (a convolution's output that only feeds its activation is never materialised). Layers
that DLA upgrades to FP16 (Sigmoid, Tanh, LRN) or runs only in FP16 (Softmax) are listed for ``--layerPrecisions``.
DLA further requires equal scales around pooling (input = output), element-wise layers (all inputs) and
concatenation (inputs = output); we merge those tensors into groups that share the largest range and report the
members whose own range is much smaller, since those lose resolution.

Which layers are on the DLA at all is ``dlakit check``'s placement for the target (:func:`off_dla_layers`, passed
as ``off_dla``): a layer check sends to the GPU (unsupported, a restriction broken, fixable but not yet fixed, or over
the loadable limit) gets no DLA scale here either. The op data (``data/ops.toml``: ``int8``, ``equal_scale``) only
says how a DLA layer is quantized (INT8, FP16-only, fused epilogue, pass-through) and stands alone when no placement
is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import onnx_ir as ir

from dlakit.data.opdata import INT8_MODES, op_data
from dlakit.model import LoadedModel, constant_array, is_constant, is_folded
from dlakit.vocab import Precision

if TYPE_CHECKING:
    from dlakit.check import CheckReport
    from dlakit.targets import Target

#: How the DLA quantizes each op, from ``data/ops.toml`` (``int8``, ``equal_scale``; weighted = its layer has weights)
_OPS = op_data()
WEIGHTED_OPS = _OPS.having("weighted", True)
POOL_OPS = _OPS.having("equal_scale", "pool")
ELTWISE_OPS = _OPS.having("equal_scale", "inputs")
CONCAT_OPS = _OPS.having("equal_scale", "concat")
FUSED_ACTIVATIONS = _OPS.having("int8", "fused")
PASS_THROUGH_OPS = _OPS.having("int8", "pass")
DLA_OPS = _OPS.having("int8", *INT8_MODES)
#: ops that DLA runs in FP16 even when INT8 is requested: their outputs get no scale unless an INT8 layer reads them
FP16_UPGRADE_OPS = _OPS.having("int8", "fp16", "fp16_only")


def is_dla_op(node: ir.Node) -> bool:
    return node.domain in ("", "ai.onnx") and node.op_type in DLA_OPS


@dataclass
class EqualScaleCost:
    """A tensor whose scale was widened to its group's range by a DLA equal-scale constraint."""

    tensor: str
    own_amax: float
    group_amax: float
    reason: str

    @property
    def bits_lost(self) -> float:
        return math.log2(self.group_amax / self.own_amax) if self.own_amax > 0 else float("inf")


@dataclass
class WeightSpec:
    node: str
    weight: str  # initializer name
    axis: int  # output-channel axis of the weight
    bias: str | None
    activation: str  # the activation tensor the weight multiplies (for INT32 bias scales)


@dataclass
class QuantPlan:
    """The DLA INT8 picture of a model: scaled tensors (topological order), FP16 layers, equal-scale groups."""

    tensors: list[str] = field(default_factory=list)
    int8_layers: list[str] = field(default_factory=list)
    fp16_layers: list[str] = field(default_factory=list)
    gpu_layers: list[str] = field(default_factory=list)
    fused: dict[str, str] = field(default_factory=dict)  # internal tensor -> the layer that fuses it
    #: scaled and fused tensors in graph order: what calibration observes and the cache lists. TensorRT's own
    #: calibrator covers tensors before fusion too, and a fusion it does not make then still finds its scale
    observed: list[str] = field(default_factory=list)
    weights: list[WeightSpec] = field(default_factory=list)
    fp16_tensors: list[str] = field(default_factory=list)  # DLA-produced tensors without a scale
    bounded: dict[str, float] = field(default_factory=dict)  # outputs of saturating activations -> their bound
    off_dla: frozenset[str] = frozenset()  # layers dlakit check places off the DLA (the placement the plan used)
    _parent: dict[str, str] = field(default_factory=dict)
    _reason: dict[str, str] = field(default_factory=dict)

    def group_of(self, tensor: str) -> str:
        root = tensor
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        return root

    def tie(self, a: str, b: str, reason: str) -> None:
        ra, rb = self.group_of(a), self.group_of(b)
        if ra != rb:
            self._parent[rb] = ra
        self._reason.setdefault(a, reason)
        self._reason.setdefault(b, reason)

    def apply_constraints(self, amax: dict[str, float]) -> tuple[dict[str, float], list[EqualScaleCost]]:
        """Give every group its largest range; report members that lose more than a quarter bit by it."""
        group_max: dict[str, float] = {}
        for name in self.tensors:
            if name in amax:
                root = self.group_of(name)
                group_max[root] = max(group_max.get(root, 0.0), amax[name])
        tied = {name: group_max[self.group_of(name)] for name in self.tensors if self.group_of(name) in group_max}
        costs = [
            EqualScaleCost(name, amax[name], tied[name], self._reason.get(name, ""))
            for name in self.tensors
            if name in amax and tied[name] > amax[name] * 2**0.25
        ]
        costs.sort(key=lambda c: -c.bits_lost)
        return tied, costs


def _weight_axis(node: ir.Node) -> int | None:
    """Output-channel axis of a constant weight, or None when the layer has no constant weight."""
    if node.op_type in ("Conv", "ConvTranspose"):
        if len(node.inputs) < 2 or not is_constant(node.inputs[1]):
            return None
        if node.op_type == "Conv":
            return 0
        # ConvTranspose weights are [C_in, C_out / group, k...]: per-output-channel only when ungrouped
        return 1 if node.attributes.get_int("group", 1) == 1 else None
    if node.op_type == "Gemm":
        if len(node.inputs) < 2 or not is_constant(node.inputs[1]):
            return None
        return 0 if node.attributes.get_int("transB", 0) else 1
    if node.op_type == "MatMul":
        weight = node.inputs[1]
        if weight is None or not is_constant(weight) or weight.shape is None or len(weight.shape) != 2:
            return None
        return 1
    return None


def _activation_bound(node: ir.Node) -> float | None:
    """The upper bound of a saturating activation (ReLU6-style Clip, Sigmoid), where the output saturates."""
    if node.op_type in ("Sigmoid", "HardSigmoid", "Tanh"):
        return 1.0
    if node.op_type != "Clip":
        return None
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        value = constant_array(node.inputs[2])
        return float(value.reshape(())) if value is not None and value.size == 1 else None
    attribute = node.attributes.get("max")
    return float(attribute.as_float()) if attribute is not None else None


def _single_consumer(value: ir.Value) -> ir.Node | None:
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0][0] if isinstance(uses[0], tuple) else uses[0].node


def off_dla_layers(loaded: LoadedModel, target: Target) -> frozenset[str]:
    """The layers ``dlakit check`` does not place on the DLA of ``target`` in INT8 (GPU or fixable); a command that
    has its model's :class:`dlakit.analysis.Analysis` reads ``analysis.off_dla`` instead (no second placement)."""
    from dlakit.check import check_model

    return off_dla_of(check_model(loaded, target, precision=Precision.INT8))


def off_dla_of(report: CheckReport) -> frozenset[str]:
    """The layers a :class:`dlakit.check.CheckReport` does not place on the DLA (GPU or fixable)."""
    from dlakit.check import DLA, FOLDED

    return frozenset(p.name for p in report.nodes if p.placement not in (DLA, FOLDED))


def build_plan(graph: ir.Graph, fp16_layers: set[str] | frozenset[str] = frozenset(), fuse_eltwise: bool = True,
               fuse_activations: bool = True, off_dla: frozenset[str] = frozenset()) -> QuantPlan:
    """Decide scaled tensors for ``graph`` (an ``onnx_ir`` graph from :func:`dlakit.model.load_model`).

    ``off_dla``: layers that run on the GPU whatever the op table says (``dlakit check``'s placement, from
    :func:`off_dla_layers`); they get no DLA scale.

    ``fuse_eltwise``: a convolution whose only consumer is a residual Add absorbs it (its output gets no scale and
    the Add's equal-input constraint does not apply), as DLA fuses element-wise into the convolution's
    post-processing; turn it off to model every Add as a stand-alone layer. ``fuse_activations=False`` also scales
    convolution outputs before their activation (what a plain Q/DQ quantizer does; used to compare with ONNX
    Runtime's integer kernels, which need a quantized convolution output).
    """
    plan = QuantPlan(off_dla=frozenset(off_dla))
    wanted: set[str] = set()
    int8_nodes: list[ir.Node] = []
    for node in graph:
        if is_folded(node) or node.op_type in ("Constant", "QuantizeLinear", "DequantizeLinear"):
            continue
        if not is_dla_op(node) or node.name in off_dla:
            plan.gpu_layers.append(node.name)
        elif node.op_type in FP16_UPGRADE_OPS or node.name in fp16_layers:
            plan.fp16_layers.append(node.name)
        else:
            plan.int8_layers.append(node.name)
            int8_nodes.append(node)
    int8_names = set(plan.int8_layers)
    absorbed: set[str] = set()  # element-wise layers fused into the convolution that feeds them
    for node in int8_nodes:
        # a weighted layer's output that only feeds its BatchNorm, activation or residual Add is never written out:
        # DLA runs conv + bias + BN + element-wise + activation as one operation
        out = node.outputs[0]
        consumer = _single_consumer(out)
        if fuse_activations and consumer is not None and consumer.name in int8_names and (
                node.op_type in WEIGHTED_OPS | {"BatchNormalization"} or node.name in absorbed):
            if consumer.op_type in FUSED_ACTIVATIONS | {"BatchNormalization"}:
                plan.fused[out.name] = consumer.name
            elif (fuse_eltwise and node.op_type in WEIGHTED_OPS and consumer.op_type in ("Add", "Sum")
                  and consumer.name not in absorbed
                  and all(v is not None and not is_constant(v) for v in consumer.inputs)):
                plan.fused[out.name] = consumer.name
                absorbed.add(consumer.name)
        axis = _weight_axis(node) if node.op_type in WEIGHTED_OPS else None
        if axis is not None:
            bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
            plan.weights.append(WeightSpec(node.name, node.inputs[1].name, axis, bias.name if bias else None,
                                           node.inputs[0].name))
        for value in node.inputs:
            if value is not None and not is_constant(value) and value.name not in plan.fused:
                wanted.add(value.name)
        for value in node.outputs:
            if value.name not in plan.fused:
                wanted.add(value.name)
    # weights of weighted layers are quantized per channel by TensorRT itself, never given activation scales
    order = [v.name for v in graph.inputs] + [v.name for node in graph for v in node.outputs]
    plan.tensors = [name for name in order if name in wanted]
    plan.observed = [name for name in order if name in wanted or name in plan.fused]
    for node in int8_nodes:
        ins = [v.name for v in node.inputs if v is not None and not is_constant(v) and v.name in wanted]
        outs = [v.name for v in node.outputs if v.name in wanted]
        if node.op_type in POOL_OPS and ins and outs:
            plan.tie(ins[0], outs[0], f"pooling {node.name}: input and output share a scale")
        elif node.op_type in ELTWISE_OPS and len(ins) > 1 and node.name not in absorbed:
            for other in ins[1:]:
                plan.tie(ins[0], other, f"element-wise {node.name}: inputs share a scale")
        elif node.op_type in CONCAT_OPS and ins and outs:
            for value in ins:
                plan.tie(outs[0], value, f"concat {node.name}: inputs and output share a scale")
        elif node.op_type in PASS_THROUGH_OPS and ins and outs:
            plan.tie(ins[0], outs[0], f"{node.op_type} {node.name} keeps values: same scale")
    for node in graph:
        bound = _activation_bound(node)
        if bound is not None:
            plan.bounded[node.outputs[0].name] = bound
        if node.name in plan.fp16_layers:
            plan.fp16_tensors += [v.name for v in node.outputs if v.name not in wanted]
    return plan
