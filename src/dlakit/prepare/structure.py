"""Structural facts about a CNN, read from its graph alone: never from file, node or tensor names.

Recognition (:mod:`dlakit.prepare.recognise`) and the recipes (:mod:`dlakit.prepare.recipes`) both work from
:class:`Structure`. Every fact is something an exporter cannot rename away: the first convolution's input
(channels and size), residual blocks (an ``Add`` of two tensors that fan out from one common tensor, with the
convolutions on each path), depthwise-separable blocks, ReLU6 (``Clip(0, 6)``), FPN merges (``Resize`` + ``Add``
of a lateral 1x1 convolution), and the *heads*: the last linear layers of the network (convolutions or matrix
products after which no linear layer follows), which is where NVIDIA's preparation cuts detectors and classifiers.

Walks go along the data path only through ops that keep one tensor flowing (convolution, normalisation,
activation, constant arithmetic, padding) and stop where a tensor is used more than once: that is how a block's
input (feeding both the branch and the shortcut) and a pyramid level (feeding both head towers) are found.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from dlakit.data.opdata import op_data
from dlakit.model import constant_array, is_constant, static_dims

#: The op classes below are ``data/ops.toml``'s (linear: a layer with weights; chain, flatten, postprocess flags).
LINEAR_OPS = op_data().having("weighted", True)
#: ops a tensor flows through unchanged in layout on a block's path (constant operands only for arithmetic)
CHAIN_OPS = op_data().having("chain", True)
#: ops between a global pool and a classifier's linear layer
FLATTEN_OPS = op_data().having("flatten", True)
POSTPROCESS_OPS = op_data().having("postprocess", True)


@dataclass
class ConvInfo:
    node: ir.Node
    cin: int
    cout: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    group: int
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.cin == self.cout


@dataclass
class ResidualBlock:
    """One ``Add(branch, shortcut)``: the convolutions on the branch (forward order) and on the shortcut."""

    add: ir.Node
    branch: list[ConvInfo]
    shortcut: list[ConvInfo]
    out_shape: tuple[int, ...]

    @property
    def kind(self) -> str:
        kernels = [c.kernel[0] for c in self.branch]
        if kernels == [1, 3, 1]:
            return "bottleneck"
        if kernels == [3, 3]:
            return "basic"
        return "other"

    @property
    def groups(self) -> int:
        return max((c.group for c in self.branch), default=1)

    @property
    def strided_kernel(self) -> int | None:
        """Kernel size of the branch convolution that carries the stride (v1 vs v1.5 ResNet), if any."""
        return next((c.kernel[0] for c in self.branch if c.stride[0] > 1), None)


@dataclass
class Head:
    """A last linear layer: its output tensor (after a constant bias Add), channels and the tensor it hangs from."""

    node: ir.Node
    output: ir.Value
    channels: int
    hw: tuple[int, int] | None
    root: ir.Value | None
    kernel: int | None


@dataclass
class Structure:
    input_chw: tuple[int, int, int] | None = None
    batch: int | None = None
    convs: list[ConvInfo] = field(default_factory=list)
    blocks: list[ResidualBlock] = field(default_factory=list)
    separable: int = 0
    relu6: int = 0
    fpn_merges: int = 0
    heads: list[Head] = field(default_factory=list)
    classifier_pool: str | None = None  # how the classifier pools: "ReduceMean", "GlobalAveragePool", ...
    op_counts: Counter[str] = field(default_factory=Counter)
    tail_ops: Counter[str] = field(default_factory=Counter)

    @property
    def stages(self) -> list[int]:
        """Residual blocks per stage: consecutive blocks with the same output shape form a stage."""
        counts: list[int] = []
        last: tuple[int, ...] | None = None
        for block in self.blocks:
            shape = block.out_shape[1:]
            if shape != last:
                counts.append(0)
                last = shape
            counts[-1] += 1
        return counts

    @property
    def block_kinds(self) -> set[str]:
        return {b.kind for b in self.blocks}

    @property
    def postprocess(self) -> list[str]:
        return sorted(op for op in self.op_counts if op in POSTPROCESS_OPS)

    def levels(self) -> list[list[Head]]:
        """Detection heads grouped by the tensor they hang from (a feature map or pyramid level), in order."""
        groups: dict[int, list[Head]] = {}
        for head in self.heads:
            key = id(head.root) if head.root is not None else id(head)
            groups.setdefault(key, []).append(head)
        return list(groups.values())


def dims(value: ir.Value | None) -> tuple[int, ...] | None:
    return None if value is None else static_dims(value)


def _ints(node: ir.Node, name: str, default: tuple[int, int]) -> tuple[int, int]:
    attr = node.attributes.get(name)
    if attr is None:
        return default
    values = [int(v) for v in attr.value]
    return (values[0], values[-1]) if values else default


def conv_info(node: ir.Node) -> ConvInfo | None:
    weight = dims(node.inputs[1]) if len(node.inputs) > 1 else None
    if weight is None or len(weight) != 4:
        return None
    group = node.attributes.get_int("group", 1)
    kernel = _ints(node, "kernel_shape", (weight[2], weight[3]))
    return ConvInfo(node, weight[1] * group, weight[0], kernel, _ints(node, "strides", (1, 1)), group,
                    dims(node.inputs[0]), dims(node.outputs[0]))


def _data_input(node: ir.Node) -> ir.Value | None:
    """The one non-constant input of a chain op, or None when it has several (a merge) or none."""
    dynamic = [v for v in node.inputs if v is not None and not is_constant(v)]
    return dynamic[0] if len(dynamic) == 1 else None


def walk_back(value: ir.Value, same_size: bool = False) -> tuple[ir.Value, list[ir.Node]]:
    """Follow ``value`` back through single-use chain ops; return the fan-out tensor reached and the convs passed
    (forward order). A tensor used twice, a graph input, or a non-chain op ends the walk; with ``same_size`` so
    does a convolution that changes the spatial size (a head tower keeps its level's size, an SSD extra layer
    does not, so a head is tied to the feature map at its own resolution)."""
    convs: list[ir.Node] = []
    while not value.is_graph_input() and len(value.uses()) == 1:
        producer = value.producer()
        if producer is None or producer.op_type not in CHAIN_OPS:
            break
        if same_size and producer.op_type == "Conv" and _hw(producer.inputs[0]) != _hw(value):
            break
        source = _data_input(producer)
        if source is None:
            break
        if producer.op_type == "Conv":
            convs.append(producer)
        value = source
    return value, convs[::-1]


def _hw(value: ir.Value | None) -> tuple[int, ...] | None:
    shape = dims(value)
    return shape[2:] if shape is not None else None


def _clip_is_relu6(node: ir.Node) -> bool:
    if len(node.inputs) >= 3:
        low, high = constant_array(node.inputs[1]), constant_array(node.inputs[2])
        bounds = (None if low is None else float(np.asarray(low).reshape(-1)[0]),
                  None if high is None else float(np.asarray(high).reshape(-1)[0]))
    else:
        attr_min, attr_max = node.attributes.get("min"), node.attributes.get("max")
        bounds = (None if attr_min is None else float(attr_min.value),
                  None if attr_max is None else float(attr_max.value))
    return bounds == (0.0, 6.0)


def _residual(node: ir.Node, infos: dict[ir.Node, ConvInfo]) -> ResidualBlock | None:
    if len(node.inputs) != 2 or any(v is None or is_constant(v) for v in node.inputs):
        return None
    a, b = node.inputs
    shape = dims(node.outputs[0])
    if shape is None or len(shape) != 4 or dims(a) != dims(b):
        return None
    (root_a, convs_a), (root_b, convs_b) = walk_back(a), walk_back(b)
    if root_a is not root_b:
        return None
    branch, shortcut = (convs_a, convs_b) if len(convs_a) >= len(convs_b) else (convs_b, convs_a)
    if not branch or any(c not in infos for c in branch + shortcut):
        return None
    return ResidualBlock(node, [infos[c] for c in branch], [infos[c] for c in shortcut], shape)


def _is_fpn_merge(node: ir.Node) -> bool:
    producers = [v.producer() if v is not None else None for v in node.inputs]
    ops = sorted(p.op_type if p is not None else "" for p in producers)
    return len(ops) == 2 and ("Resize" in ops or "Upsample" in ops)


def _separable(info: ConvInfo) -> bool:
    """A depthwise convolution whose output reaches a 1x1 convolution through normalisation/activation only."""
    if not info.depthwise:
        return False
    value = info.node.outputs[0]
    while len(value.uses()) == 1:
        user = next(iter(value.uses())).node
        if user.op_type == "Conv":
            weight = dims(user.inputs[1])
            return weight is not None and weight[2:] == (1, 1) and user.attributes.get_int("group", 1) == 1
        if user.op_type not in CHAIN_OPS or _data_input(user) is not value:
            return False
        value = user.outputs[0]
    return False


def _is_layer(node: ir.Node) -> bool:
    """A linear layer with weights: a product of two activations (box decoding, attention) is not one."""
    return node.op_type in LINEAR_OPS and len(node.inputs) > 1 and is_constant(node.inputs[1])


def _downstream_linear(graph: ir.Graph) -> set[ir.Node]:
    """Nodes from which a linear layer can be reached (themselves linear or not): everything before the heads."""
    reaches: set[ir.Node] = set()
    for node in reversed(list(graph)):
        users = {use.node for out in node.outputs for use in out.uses()}
        if any(_is_layer(u) or u in reaches for u in users):
            reaches.add(node)
    return reaches


def _head_output(node: ir.Node) -> ir.Value:
    """A MatMul's output moves past the constant bias Add that follows it (MatMul + Add is one linear layer)."""
    out = node.outputs[0]
    uses = list(out.uses())
    if node.op_type == "MatMul" and len(uses) == 1 and uses[0].node.op_type == "Add":
        add = uses[0].node
        other = add.inputs[1 - uses[0].idx]
        if is_constant(other):
            return add.outputs[0]
    return out


def _global_pool(value: ir.Value) -> str | None:
    """How a classifier's features were pooled to 1x1 (walking back through flatten-type ops), if they were."""
    producer = value.producer()
    while producer is not None and producer.op_type in FLATTEN_OPS:
        value = producer.inputs[0]
        producer = value.producer()
    if producer is None:
        return None
    source = dims(producer.inputs[0])
    if producer.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
        return producer.op_type
    if producer.op_type == "ReduceMean" and source is not None and len(source) == 4:
        axes = producer.attributes.get("axes")
        axis_list = [int(a) for a in axes.value] if axes is not None else None
        if axis_list is None and len(producer.inputs) > 1 and constant_array(producer.inputs[1]) is not None:
            axis_list = [int(a) for a in constant_array(producer.inputs[1]).reshape(-1)]
        if axis_list is not None and sorted(a % 4 for a in axis_list) == [2, 3]:
            return "ReduceMean"
    if producer.op_type == "AveragePool" and source is not None and len(source) == 4 \
            and _ints(producer, "kernel_shape", (0, 0)) == source[2:]:
        return "AveragePool"
    return None


def analyse(graph: ir.Graph) -> Structure:
    """Read the structural facts of ``graph`` (shapes must be inferred: a :class:`LoadedModel`'s graph)."""
    s = Structure(op_counts=Counter(n.op_type for n in graph))
    infos: dict[ir.Node, ConvInfo] = {}
    for node in graph:
        if node.op_type == "Conv":
            info = conv_info(node)
            if info is not None:
                infos[node] = info
                s.convs.append(info)
    first = next((c for c in s.convs if c.cin == 3 and c.in_shape is not None and len(c.in_shape) == 4), None)
    if first is not None and first.in_shape is not None:
        s.batch = first.in_shape[0]
        s.input_chw = (first.in_shape[1], first.in_shape[2], first.in_shape[3])
    for node in graph:
        if node.op_type == "Add" or (node.op_type == "Sum" and len(node.inputs) == 2):  # Caffe2 exports: Sum
            block = _residual(node, infos)
            if block is not None:
                s.blocks.append(block)
            elif _is_fpn_merge(node):
                s.fpn_merges += 1
        elif node.op_type == "Clip" and _clip_is_relu6(node):
            s.relu6 += 1
    in_blocks = {c.node for b in s.blocks for c in (*b.branch, *b.shortcut)}
    s.separable = sum(1 for c in s.convs if c.node not in in_blocks and _separable(c))
    before_heads = _downstream_linear(graph)
    for node in graph:
        if not _is_layer(node) or node in before_heads or node in in_blocks:
            continue
        out = _head_output(node)
        shape = dims(out)
        info = infos.get(node)
        root, _ = walk_back(node.inputs[0], same_size=True) if node.inputs[0] is not None else (None, [])
        channels = shape[1] if shape is not None and len(shape) >= 2 else 0
        hw = (shape[2], shape[3]) if shape is not None and len(shape) == 4 else None
        s.heads.append(Head(node, out, channels, hw, root, info.kernel[0] if info else None))
        if node.inputs[0] is not None:
            s.classifier_pool = _global_pool(node.inputs[0]) or s.classifier_pool
    head_nodes = {h.output.producer() for h in s.heads}
    tail: set[ir.Node] = set()
    stack = [use.node for h in s.heads for use in h.output.uses()]
    while stack:
        node = stack.pop()
        if node in tail or node in head_nodes:
            continue
        tail.add(node)
        stack.extend(use.node for out in node.outputs for use in out.uses())
    s.tail_ops = Counter(n.op_type for n in tail)
    return s
