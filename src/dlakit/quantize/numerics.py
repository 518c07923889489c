"""DLA INT8 numerics on numpy arrays: the rules the emulator and the Q/DQ writer share.

Activations: per tensor, symmetric, x_q = clip(round_half_even(x / s), -128, 127), s = amax / 127 (TensorRT's
QuantizeLayer; ORT's QuantizeLinear rounds the same way, which is why the emulator can use it). Weights: per output
channel, s_w[k] = max|W[k]| / 127, values in [-127, 127] — TensorRT computes these itself, so the calibrator never
chooses them.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127
INT32_MAX = 2**31 - 1
MIN_AMAX = 1e-12  # a tensor that was all zeros still needs a positive scale


ROUNDINGS = ("even", "away")


def round_values(x: np.ndarray, rounding: str = "even") -> np.ndarray:
    """Round half to even (TensorRT's definition) or half away from zero (open NVDLA v1's converters, dla.md §4.1:
    unsure whether Orin's DLA does the same, hence the choice)."""
    return np.rint(x) if rounding == "even" else np.sign(x) * np.floor(np.abs(x) + 0.5)


def activation_scale(amax: float) -> np.float32:
    return np.float32(max(float(amax), MIN_AMAX) / INT8_MAX)


def fake_quant(x: np.ndarray, scale: float) -> np.ndarray:
    """Quantize and dequantize an activation as a DLA INT8 tensor does."""
    s = np.float32(scale)
    return (np.clip(np.rint(x / s), -128, 127) * s).astype(np.float32)


def weight_scales(weight: np.ndarray, axis: int) -> np.ndarray:
    """TensorRT's per-output-channel weight scales (float32), 1.0 for all-zero channels (any scale is exact)."""
    moved = np.moveaxis(np.asarray(weight, np.float32), axis, 0).reshape(weight.shape[axis], -1)
    amax = np.abs(moved).max(axis=1) if moved.size else np.zeros(weight.shape[axis], np.float32)
    return np.where(amax > 0, amax / np.float32(INT8_MAX), np.float32(1.0)).astype(np.float32)


def quantize_weight(weight: np.ndarray, axis: int, scales: np.ndarray | None = None, rounding: str = "even"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """INT8 weights and their per-channel scales (round half to even, saturate to ±127)."""
    scales = weight_scales(weight, axis) if scales is None else scales.astype(np.float32)
    shape = [1] * weight.ndim
    shape[axis] = -1
    q = np.clip(round_values(weight / scales.reshape(shape), rounding), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scales


def fake_quant_weight(weight: np.ndarray, axis: int, rounding: str = "even") -> np.ndarray:
    q, scales = quantize_weight(weight, axis, rounding=rounding)
    shape = [1] * weight.ndim
    shape[axis] = -1
    return (q.astype(np.float32) * scales.reshape(shape)).astype(np.float32)


def bias_safe_weight_scales(weight: np.ndarray, axis: int, bias: np.ndarray | None, input_scale: float
                            ) -> np.ndarray:
    """Weight scales for integer kernels that store the bias as INT32 with scale s_x·s_w[k].

    After BatchNorm folding, channels with all-zero weights but a non-zero bias are common (int8_baseline.md
    pitfall 3); their s_w must be widened so that b / (s_x·s_w) fits INT32. Widening a zero channel costs nothing:
    its weights quantize to 0 at any scale.
    """
    scales = weight_scales(weight, axis)
    if bias is None:
        return scales
    needed = np.abs(bias.astype(np.float64)) / (float(input_scale) * (INT32_MAX // 2))
    return np.maximum(scales.astype(np.float64), needed).astype(np.float32)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - test) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    if noise == 0:
        return float("inf")
    return 10 * np.log10(signal / noise) if signal > 0 else float("-inf")
