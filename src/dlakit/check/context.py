"""What a rule sees of one node: its attributes, its tensors' shapes and constant values, the target."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import onnx_ir as ir

from dlakit.check.registry import OpSpec
from dlakit.model import constant_array, is_constant, static_dims
from dlakit.targets import Target


@dataclass(frozen=True)
class Window:
    """Kernel geometry of a convolution or pooling node, with auto_pad resolved to explicit pads."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]


@dataclass
class NodeContext:
    """Made per node for one placement and dropped after it, so what it derives from the graph is cached: the
    graph does not change while the node's rules run (about nine rules read the same tensors per node)."""

    node: ir.Node
    layer: str
    target: Target
    precision: str  # "int8" or "fp16": what the user builds with
    op_spec: OpSpec

    @property
    def op(self) -> str:
        return self.node.op_type

    @property
    def opset(self) -> int:
        """The model's default-domain opset (attribute and input layouts changed across opsets)."""
        graph = self.node.graph
        imports = graph.opset_imports if graph is not None else {}
        return imports.get("", imports.get("ai.onnx", 1))

    def attr(self, name: str, default: Any = None) -> Any:
        attribute = self.node.attributes.get(name)
        if attribute is None:
            return default
        value = attribute.value
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list | tuple):
            return tuple(value)
        return value

    def input(self, index: int) -> ir.Value | None:
        return self.node.inputs[index] if index < len(self.node.inputs) else None

    def const(self, index: int) -> np.ndarray | None:
        return constant_array(self.input(index))

    def is_const(self, index: int) -> bool:
        value = self.input(index)
        return value is not None and is_constant(value)

    def __post_init__(self) -> None:
        # read by the shared rules of every layer, so worked out once, up front (plain attributes: cached_property
        # takes a lock on every first read in Python 3.11)
        #: inputs computed at run time (not weights, not folded constants)
        self.runtime_inputs: list[ir.Value] = [v for v in self.node.inputs if v is not None and not is_constant(v)]
        self.outputs: list[ir.Value] = [v for v in self.node.outputs if v is not None and v.name]
        self.used_outputs: list[ir.Value] = [v for v in self.outputs if v.uses() or v.is_graph_output()]
        #: the run-time inputs and the used outputs, the tensors the layer itself reads and writes, with their
        #: static dims (None when not static)
        self.tensors: list[ir.Value] = [*self.runtime_inputs, *self.used_outputs]
        self.tensor_dims: list[tuple[ir.Value, tuple[int, ...] | None]] = [(v, static_dims(v)) for v in self.tensors]
        self._dims: dict[int, tuple[int, ...] | None] = {id(v): d for v, d in self.tensor_dims}

    def dims(self, value: ir.Value | None) -> tuple[int, ...] | None:
        """:func:`~dlakit.model.static_dims` of ``value``, worked out once per tensor for this node's rules."""
        if value is None:
            return None
        known = self._dims
        key = id(value)
        if key not in known:
            known[key] = static_dims(value)
        return known[key]

    @cached_property
    def input_dims(self) -> tuple[int, ...] | None:
        """Shape of the first run-time input (the data tensor of most layers)."""
        return self.dims(self.runtime_inputs[0]) if self.runtime_inputs else None

    @cached_property
    def output_dims(self) -> tuple[int, ...] | None:
        return self.dims(self.outputs[0]) if self.outputs else None

    def window(self) -> Window | None:
        """Kernel, strides, dilations and explicit pads of a Conv / ConvTranspose / pooling node."""
        data = self.dims(self.input(0))
        kernel = self.attr("kernel_shape")
        if kernel is None and self.op in ("Conv", "ConvTranspose"):
            weight = self.dims(self.input(1))
            kernel = weight[2:] if weight else None
        if kernel is None or data is None:
            return None
        rank = len(kernel)
        strides = self.attr("strides") or (1,) * rank
        dilations = self.attr("dilations") or (1,) * rank
        pads = self.attr("pads") or (0,) * (2 * rank)
        auto_pad = self.attr("auto_pad", "NOTSET")
        if auto_pad in ("SAME_UPPER", "SAME_LOWER") and self.op != "ConvTranspose":
            begin, end = [], []
            for axis in range(rank):
                size = data[2 + axis]
                out = math.ceil(size / strides[axis])
                effective = (kernel[axis] - 1) * dilations[axis] + 1
                total = max((out - 1) * strides[axis] + effective - size, 0)
                small, large = total // 2, total - total // 2
                begin.append(large if auto_pad == "SAME_LOWER" else small)
                end.append(small if auto_pad == "SAME_LOWER" else large)
            pads = (*begin, *end)
        elif auto_pad == "VALID":
            pads = (0,) * (2 * rank)
        return Window(
            kernel=tuple(kernel),
            strides=tuple(strides),
            dilations=tuple(dilations),
            pads_begin=tuple(pads[:rank]),
            pads_end=tuple(pads[rank:]),
        )
