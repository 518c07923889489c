"""Graph-building primitives shared by every zoo network.

Each network is written once, against :class:`GraphBuilder`; the builder's ``form`` decides how a primitive is
emitted. ``published`` looks like a framework export (Conv then a separate BatchNormalization, Resize with
``sizes``, sibling head convolutions kept apart); ``prepared`` is what NVIDIA's DLA preparation leaves (BN folded
into the Conv's weights and bias, Resize with integer ``scales``, sibling convolutions that read the same tensor
fused into one). Both forms draw the *same* parameters from the same :class:`ParamSource` and fold them
numerically, so the prepared model's outputs equal the published model's intermediate tensors to float rounding,
which is what lets ``prepare`` (and the tests) compare them.

Shapes are tracked while building (every op here has a closed-form output shape), so anchors, pooling windows and
Resize targets are computed from the input size instead of being hard-coded for the reference resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dlakit.errors import DlakitError
from dlakit.zoo.weights import ParamSource, he, normal, uniform

OPSET = 17
IR_VERSION = 8  # the oldest IR that carries opset 17, so older runtimes and TensorRT parsers accept the files
BN_EPSILON = 1e-5
FORMS = ("prepared", "published")


@dataclass(frozen=True)
class BuildConfig:
    """What a network builder needs besides the graph builder: input name and size, batch, class count."""

    input_name: str
    batch: int
    input_hw: tuple[int, int]
    classes: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, *self.input_hw)


@dataclass(frozen=True)
class Tensor:
    """A value being built: its graph name and its static shape."""

    name: str
    shape: tuple[int, ...]

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def hw(self) -> tuple[int, int]:
        return self.shape[2], self.shape[3]


def conv_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    return (size + pad_begin + pad_end - kernel) // stride + 1


def same_pads(hw: tuple[int, int], kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow's ``SAME`` padding as explicit ONNX pads (extra pixel at the end, as TF does)."""
    pads = []
    for size in hw:
        out = -(-size // stride)
        pads.append(max((out - 1) * stride + kernel - size, 0))
    return pads[0] // 2, pads[1] // 2, pads[0] - pads[0] // 2, pads[1] - pads[1] // 2


class GraphBuilder:
    """Collects nodes and initializers of one network in one form, with shapes known at every step."""

    def __init__(self, name: str, form: str, params: ParamSource, width: float = 1.0) -> None:
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, not {form!r}")
        self.name = name
        self.form = form
        self.params = params
        self.width = width
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._tensors: set[str] = set()

    @property
    def published(self) -> bool:
        return self.form == "published"

    def ch(self, channels: int, divisor: int = 8) -> int:
        """Scale a channel count by the width multiplier (reduced-size test models), keeping it a multiple."""
        if self.width == 1.0:
            return channels
        return max(divisor, round(channels * self.width / divisor) * divisor)

    # -- graph plumbing ------------------------------------------------------------------------------------------
    def add_input(self, name: str, shape: tuple[int, ...]) -> Tensor:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        self._tensors.add(name)
        return Tensor(name, tuple(shape))

    def add_output(self, tensor: Tensor | str, elem_type: int = TensorProto.FLOAT,
                   shape: Sequence[int | str] | None = None) -> None:
        name = tensor if isinstance(tensor, str) else tensor.name
        dims = list(shape) if shape is not None else list(tensor.shape)  # type: ignore[union-attr]
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, dims))

    def initializer(self, name: str, array: np.ndarray) -> str:
        """Add a constant once; a name used again (weights shared across pyramid levels) reuses it."""
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def constant(self, name: str, values: Sequence[float] | np.ndarray, dtype: type = np.float32) -> str:
        return self.initializer(name, np.asarray(values, dtype=dtype))

    def op(self, op_type: str, inputs: Sequence[Tensor | str], name: str, shape: tuple[int, ...],
           extra_outputs: Sequence[str] = (), **attrs: object) -> Tensor:
        """Append one node whose (first) output is ``name`` with the given shape; the node is named after it."""
        names = [name, *extra_outputs]
        for tensor in names:
            if tensor in self._tensors:
                raise ValueError(f"tensor name {tensor!r} used twice in {self.name}")
        ins = [t if isinstance(t, str) else t.name for t in inputs]
        self.nodes.append(helper.make_node(op_type, ins, names, name=name, **attrs))
        self._tensors.update(names)
        return Tensor(name, tuple(shape))

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs,
                                  initializer=list(self.initializers.values()))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="dlakit.zoo", ir_version=IR_VERSION)
        model.doc_string = f"dlakit zoo network '{self.name}', {self.form} form, random or user weights"
        return model

    # -- layers --------------------------------------------------------------------------------------------------
    def conv(self, x: Tensor, cout: int, kernel: int, name: str, *, stride: int = 1,
             pads: int | tuple[int, int, int, int] | None = None, groups: int = 1, bias: bool = True,
             bn: str | None = None, bn_gain: float = 1.0, act: str | None = None,
             out_name: str | None = None) -> Tensor:
        """Convolution with optional BatchNormalization and activation (``relu`` or ``relu6``).

        Parameters are drawn under ``{name}.weight``/``{name}.bias`` and ``{bn}.weight|bias|running_mean|
        running_var`` (torchvision's state-dict keys), in both forms; the output tensor is ``out_name``
        (default ``name``: a second name lets pyramid levels share one set of weights). ``bn_gain`` scales the
        random BN gamma: the last BN of a residual branch gets a small gain so that the identity path dominates
        and activations stay in range through 50 layers of random weights (what zero-init-residual does in
        training, but not zero, so that the branch still matters numerically).
        """
        weight, bias_array = self._conv_params(x.channels, cout, kernel, name, groups, bias)
        if bn is not None:
            gamma, beta, mean, var = self._bn_params(bn, cout, bn_gain)
        y_shape, pad_list = self._conv_shape(x, cout, kernel, stride, pads)
        attrs = {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": pad_list,
                 "group": groups, "dilations": [1, 1]}
        if bn is not None and not self.published:
            scale = gamma / np.sqrt(var + BN_EPSILON)
            weight = weight * scale[:, None, None, None]
            base = bias_array if bias_array is not None else np.zeros(cout, np.float32)
            bias_array = (beta + (base - mean) * scale).astype(np.float32)
        ins = [x.name, self.initializer(f"{name}.weight", weight.astype(np.float32))]
        if bias_array is not None:
            ins.append(self.initializer(f"{name}.bias", bias_array))
        out = out_name or name
        if bn is not None and self.published:
            # the BN output carries the conv's tensor name, so that a name means the same values in both forms
            y = self.op("Conv", ins, f"{out}_prebn", y_shape, **attrs)
            names = [self.initializer(f"{bn}.{key}", value)
                     for key, value in (("weight", gamma), ("bias", beta), ("running_mean", mean),
                                        ("running_var", var))]
            y = self.op("BatchNormalization", [y, *names], out, y_shape, epsilon=BN_EPSILON)
        else:
            y = self.op("Conv", ins, out, y_shape, **attrs)
        return self.activation(y, act, f"{out}_{act}") if act else y

    def sibling_convs(self, x: Tensor, heads: Sequence[tuple[str, int]], kernel: int, fused_name: str, *,
                      stride: int = 1, pads: int | None = None) -> list[Tensor]:
        """Convolutions with bias that read the same tensor: separate when published, one conv when prepared.

        NVIDIA's preparation fuses such siblings (``fuse_convs_horizontally``) so that DLA runs one layer and
        writes one output; the fused output is the channel concatenation of the published ones, in order.
        """
        if self.published:
            return [self.conv(x, cout, kernel, name, stride=stride, pads=pads) for name, cout in heads]
        parts = [self._conv_params(x.channels, cout, kernel, name, 1, True) for name, cout in heads]
        weight = np.concatenate([w for w, _ in parts])
        bias = np.concatenate([b for _, b in parts if b is not None])
        total = sum(cout for _, cout in heads)
        shape, pad_list = self._conv_shape(x, total, kernel, stride, pads)
        ins = [x.name, self.initializer(f"{fused_name}.weight", weight),
               self.initializer(f"{fused_name}.bias", bias)]
        return [self.op("Conv", ins, fused_name, shape, kernel_shape=[kernel, kernel], strides=[stride, stride],
                        pads=pad_list, group=1, dilations=[1, 1])]

    def activation(self, x: Tensor, act: str, name: str) -> Tensor:
        if act == "relu":
            return self.op("Relu", [x], name, x.shape)
        if act == "relu6":  # MobileNet's ReLU6, exported by tf2onnx and torch as Clip(0, 6)
            lo, hi = self.constant("relu6.min", 0.0), self.constant("relu6.max", 6.0)
            return self.op("Clip", [x, lo, hi], name, x.shape)
        raise ValueError(f"unknown activation {act!r}")

    def add(self, a: Tensor, b: Tensor, name: str, act: str | None = None) -> Tensor:
        y = self.op("Add", [a, b], name, a.shape)
        return self.activation(y, act, f"{name}_{act}") if act else y

    def max_pool(self, x: Tensor, kernel: int, stride: int, pad: int, name: str) -> Tensor:
        n, c, h, w = x.shape
        shape = (n, c, conv_size(h, kernel, stride, pad, pad), conv_size(w, kernel, stride, pad, pad))
        return self.op("MaxPool", [x], name, shape, kernel_shape=[kernel, kernel], strides=[stride, stride],
                       pads=[pad] * 4)

    def upsample_to(self, x: Tensor, like: Tensor, name: str) -> Tensor:
        """Nearest upsampling to ``like``'s size: ``sizes`` when published (torch's F.interpolate(size=...)),
        integer ``scales`` when prepared (what DLA's Resize layer accepts); equal results for exact multiples."""
        (h, w), (th, tw) = x.hw, like.hw
        if th % h or tw % w:
            raise DlakitError(f"{name}: {x.hw} -> {like.hw} is not an integer upsampling; use an input size "
                              "that is a multiple of the network's stride (32 or 128)")
        shape = (x.shape[0], x.channels, th, tw)
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
        if self.published:
            sizes = self.constant(f"{name}.sizes", shape, np.int64)
            return self.op("Resize", [x, "", "", sizes], name, shape, **attrs)
        scales = self.constant(f"{name}.scales", [1.0, 1.0, th // h, tw // w])
        return self.op("Resize", [x, "", scales], name, shape, **attrs)

    # -- internals -----------------------------------------------------------------------------------------------
    def _conv_params(self, cin: int, cout: int, kernel: int, name: str, groups: int,
                     bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
        fan_in = cin // groups * kernel * kernel
        weight = self.params.take(f"{name}.weight", (cout, cin // groups, kernel, kernel), he(fan_in))
        bias_array = self.params.take(f"{name}.bias", (cout,), normal(0.05)) if bias else None
        return weight, bias_array

    def _bn_params(self, bn: str, channels: int, gain: float) -> tuple[np.ndarray, ...]:
        return (self.params.take(f"{bn}.weight", (channels,), uniform(0.8 * gain, 1.2 * gain)),
                self.params.take(f"{bn}.bias", (channels,), normal(0.05)),
                self.params.take(f"{bn}.running_mean", (channels,), normal(0.05)),
                self.params.take(f"{bn}.running_var", (channels,), uniform(0.8, 1.2)))

    @staticmethod
    def _conv_shape(x: Tensor, cout: int, kernel: int, stride: int,
                    pads: int | tuple[int, int, int, int] | None) -> tuple[tuple[int, ...], list[int]]:
        if pads is None:
            pads = kernel // 2
        pad_list = [pads] * 4 if isinstance(pads, int) else list(pads)
        h = conv_size(x.shape[2], kernel, stride, pad_list[0], pad_list[2])
        w = conv_size(x.shape[3], kernel, stride, pad_list[1], pad_list[3])
        if h < 1 or w < 1:
            raise DlakitError(f"feature map vanishes at {x.name} ({x.hw} before it); use a larger input size")
        return (x.shape[0], cout, h, w), pad_list

