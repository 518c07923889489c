"""Bias correction: cancel the mean output shift that INT8 weight rounding adds, and keep dead channels safe.

Why: TensorRT rounds each weight to its channel's grid (s_w = max|W|/127), so the layer computes (W + ΔW)·x. The
error ΔW·x has a non-zero mean, E[ΔW·x] = ΔW·E[x], which every following layer inherits as a bias. On depthwise
layers the weights of a channel often nearly cancel (edge-like kernels) while the input is locally smooth, so the
rounding error of their *sum* dominates the output: on EfficientNet-Lite0 this mean shift is most of the
weights-only error (19 dB → 27 dB once removed). The fix is exact to compute because the weight grid is
deterministic: subtract ΔW·E[x] from the bias, with E[x] the per-channel mean of the layer's input on the
calibration data (DFQ's "empirical" variant, Nagel et al. 2019). TensorRT then quantizes the same weights and adds
the corrected float bias in its post-processing stage.

Dead channels: after BatchNorm folding some channels have all-zero weights and a non-zero bias. Integer kernels
that store the bias as INT32 in units of s_x·s_w overflow for them unless s_w is widened; widening costs nothing
because zero weights are exact on any grid (:func:`dead_channel_scales`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from dlakit.quantize.numerics import INT32_MAX, bias_safe_weight_scales, fake_quant_weight, weight_scales
from dlakit.quantize.plan import WeightSpec


@dataclass
class LayerCorrection:
    layer: str
    channels: int
    max_shift: float  # largest |correction| added to a bias
    mean_shift: float  # mean |correction|
    bias_rms: float  # RMS of the original bias, for scale

    def as_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "channels": self.channels, "max_shift": float(self.max_shift),
                "mean_shift": float(self.mean_shift), "bias_rms": float(self.bias_rms)}


@dataclass
class BiasCorrection:
    model: onnx.ModelProto
    layers: list[LayerCorrection] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def expected_shift(weight: np.ndarray, axis: int, group: int, input_mean: np.ndarray) -> np.ndarray:
    """E[ΔW·x] per output channel for a Conv (OIkk), depthwise Conv or Gemm/MatMul weight.

    Convolution padding makes border outputs see zeros instead of E[x]; for feature maps of 7x7 and more the effect
    on the mean is a few percent of an already small correction, so it is neglected.
    """
    delta = fake_quant_weight(weight, axis).astype(np.float64) - weight.astype(np.float64)
    mean = input_mean.astype(np.float64)
    if weight.ndim == 4:
        per_input = delta.sum(axis=(2, 3))  # [out, in/group]
        out_channels = weight.shape[0]
        if group == 1:
            return per_input @ mean
        per_group_out, per_group_in = out_channels // group, weight.shape[1]
        x = mean.reshape(group, per_group_in)
        return np.einsum("goi,gi->go", per_input.reshape(group, per_group_out, per_group_in), x).reshape(-1)
    if weight.ndim == 2:
        return delta @ mean if axis == 0 else mean @ delta  # Gemm transB=1: [out, in]; MatMul / transB=0: [in, out]
    raise ValueError(f"unsupported weight rank {weight.ndim}")


def correct_biases(model: onnx.ModelProto, weights: list[WeightSpec], means: dict[str, np.ndarray]
                   ) -> BiasCorrection:
    """A copy of ``model`` whose biases cancel ΔW·E[x]; layers without a bias get one (a zero-cost Conv input)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    result = BiasCorrection(out)
    for spec in weights:
        node = nodes.get(spec.node)
        mean = means.get(spec.activation)
        if node is None or spec.weight not in inits or mean is None:
            result.skipped.append(f"{spec.node}: no input statistics or no constant weight")
            continue
        if node.op_type == "MatMul" or (node.op_type == "Gemm" and any(
                a.name == "transA" and a.i for a in node.attribute)):
            result.skipped.append(f"{spec.node}: {node.op_type} without a bias input is left as is")
            continue
        weight = numpy_helper.to_array(inits[spec.weight])
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        expected_inputs = weight.shape[1] * group if weight.ndim == 4 else weight.shape[1 - spec.axis]
        if mean.shape[0] != expected_inputs:
            result.skipped.append(f"{spec.node}: input has {mean.shape[0]} channels, weight expects "
                                  f"{expected_inputs}")
            continue
        shift = expected_shift(weight, spec.axis, group, mean)
        out_channels = weight.shape[spec.axis]
        if spec.bias and spec.bias in inits:
            bias = numpy_helper.to_array(inits[spec.bias]).astype(np.float64)
            if bias.shape != (out_channels,):
                result.skipped.append(f"{spec.node}: bias shape {bias.shape} is not per output channel")
                continue
            name = spec.bias
        else:
            bias = np.zeros(out_channels)
            name = f"{spec.node}__corrected_bias"
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = name
            inits[name] = graph.initializer.add()
        new = (bias - shift).astype(np.float32)
        inits[name].CopyFrom(numpy_helper.from_array(new, name))
        result.layers.append(LayerCorrection(spec.node, out_channels, float(np.abs(shift).max()),
                                             float(np.abs(shift).mean()), float(np.sqrt(np.mean(bias**2)))))
    return result


@dataclass
class DeadChannels:
    layer: str
    channels: list[int]
    overflow_without_widening: list[int]  # channels whose INT32 bias would overflow with max|W|/127 scales


def dead_channel_scales(weight: np.ndarray, axis: int, bias: np.ndarray | None, input_scale: float
                        ) -> tuple[np.ndarray, list[int]]:
    """Per-channel weight scales safe for an INT32 bias of scale s_x·s_w, and the channels that were widened.

    Composes :func:`dlakit.quantize.numerics.bias_safe_weight_scales`; this wrapper reports which channels needed
    it, so the recovery report can name them.
    """
    plain = weight_scales(weight, axis)
    safe = bias_safe_weight_scales(weight, axis, bias, input_scale)
    return safe, [int(i) for i in np.flatnonzero(safe != plain)]


def int32_bias(bias: np.ndarray, input_scale: float, scales: np.ndarray) -> np.ndarray:
    """The INT32 bias an integer kernel would store (float64 so that overflow is visible, not wrapped)."""
    return np.rint(bias.astype(np.float64) / (float(input_scale) * scales.astype(np.float64)))


def find_dead_channels(weight: np.ndarray, axis: int, bias: np.ndarray | None, input_scale: float, layer: str
                       ) -> DeadChannels:
    """Channels whose weights are all zero (or negligible next to the layer's largest channel), and those of them
    whose INT32 bias overflows with the plain max|W|/127 scale (a zero scale floored at the smallest normal float,
    as integer kernels must to avoid a division by zero)."""
    moved = np.abs(np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)).astype(np.float64)
    amax = moved.max(axis=1) if moved.size else np.zeros(weight.shape[axis])
    dead = np.flatnonzero(amax <= amax.max() * 1e-7) if amax.size else np.array([], int)
    overflow: list[int] = []
    if bias is not None and dead.size:
        plain = np.maximum(amax / 127.0, np.finfo(np.float32).tiny)
        q = int32_bias(bias, input_scale, plain)
        overflow = [int(i) for i in np.flatnonzero(np.abs(q) > INT32_MAX)]
    return DeadChannels(layer, [int(i) for i in dead], overflow)
