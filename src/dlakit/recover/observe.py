"""One streamed FP32 pass that gathers everything the recovery steps need.

Range selection needs a histogram per scaled tensor and bias correction needs the per-channel mean of every weighted
layer's input; both come from the same forward pass, so the calibration data is decoded and run once. Nothing is kept
per sample: histograms and running sums only (peak memory is one batch of exposed tensors, bounded by the budget).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import onnx

from dlakit.quantize.calibrators import TensorStats
from dlakit.quantize.runtime import stream_activations

DEFAULT_BUDGET_MB = 256


class Source(Protocol):
    """What a calibration source must offer (``dlakit.quantize.data.DataSource`` and :class:`ArraySource`)."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]: ...


@dataclass
class ArraySource:
    """Samples already in memory (tests, benchmarks, Python callers), one array per model input."""

    arrays: dict[str, np.ndarray]
    limit: int | None = None

    def __len__(self) -> int:
        n = len(next(iter(self.arrays.values())))
        return min(n, self.limit) if self.limit else n

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        n = len(self)
        for start in range(0, n, batch_size):
            valid = min(batch_size, n - start)
            batch = {}
            for name, array in self.arrays.items():
                part = array[start:start + valid]
                if valid < batch_size:
                    part = np.concatenate([part, np.repeat(part[-1:], batch_size - valid, axis=0)])
                batch[name] = np.ascontiguousarray(part, dtype=np.float32)
            yield batch, valid

    def head(self, count: int) -> ArraySource:
        return ArraySource(self.arrays, min(count, len(self)))


@dataclass
class Observation:
    stats: dict[str, TensorStats] = field(default_factory=dict)
    channel_sums: dict[str, np.ndarray] = field(default_factory=dict)
    channel_counts: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0

    def channel_mean(self, tensor: str) -> np.ndarray | None:
        if tensor not in self.channel_sums or not self.channel_counts.get(tensor):
            return None
        return self.channel_sums[tensor] / self.channel_counts[tensor]

    def amax(self) -> dict[str, float]:
        return {name: st.amax for name, st in self.stats.items()}

    def never_negative(self) -> set[str]:
        return {name for name, st in self.stats.items() if st.never_negative}


def observe(model: onnx.ModelProto, source: Source, tensors: list[str], mean_tensors: set[str], batch_size: int,
            tensor_sizes: dict[str, int], budget_mb: int = DEFAULT_BUDGET_MB, progress: bool = False
            ) -> Observation:
    """Histograms of ``tensors`` and per-channel means (axis 1) of ``mean_tensors`` over ``source``."""
    obs = Observation()
    wanted = list(dict.fromkeys([*tensors, *sorted(mean_tensors)]))
    histogrammed = set(tensors)

    def sink(name: str, values: np.ndarray) -> None:
        if name in histogrammed:
            # extremes and sign only: the range search scores candidates on the emulator, not on histograms
            obs.stats.setdefault(name, TensorStats(histogram=False)).update(values)
        if name in mean_tensors and values.ndim >= 2:
            axes = (0, *range(2, values.ndim))
            sums = values.sum(axis=axes, dtype=np.float64)
            obs.channel_sums[name] = obs.channel_sums.get(name, 0) + sums
            obs.channel_counts[name] = obs.channel_counts.get(name, 0) + values.size // values.shape[1]

    start = time.perf_counter()
    obs.samples = stream_activations(model, source, wanted, sink, batch_size, budget_mb << 20, tensor_sizes,
                                     progress=progress)
    obs.seconds = time.perf_counter() - start
    return obs
