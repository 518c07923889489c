"""Will sparsity pay? Per-layer dense vs 2:4 sparse time from the DLA performance model (``dlakit.perf``).

2:4 sparsity halves the multiply-accumulates of a convolution, not its memory traffic: a layer whose time is spent
reading activations or weights from DRAM gains little or nothing, which is why users report no speed-up on
memory-bound networks and NVIDIA reports more at low power modes (lower DLA clock against the same DRAM, so more
layers become math-bound). ``--min-gain`` uses this to prune only the layers that get faster.

The performance model is reached through :class:`GainModel`, a plain callable, so the pruning code can be tested
with a stub and keeps working (without speed-ups) where ``dlakit.perf`` is not installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from dlakit.check import CheckReport
from dlakit.model import LoadedModel
from dlakit.vocab import Device, Precision


@dataclass(frozen=True)
class LayerGain:
    """Time of the DLA operation a convolution belongs to (fused with its bias, activation, ...), dense and sparse."""

    op: str  # the performance model's operation name (after fusion)
    dense_us: float
    sparse_us: float
    bound: str  # what limits the dense op: compute, memory or overhead

    @property
    def speedup(self) -> float:
        return self.dense_us / self.sparse_us if self.sparse_us > 0 else 1.0


@dataclass
class GainEstimate:
    """Per-node gains under one power mode, and the dense latency to put them in proportion."""

    power_mode: str
    dense_latency_ms: float
    layers: dict[str, LayerGain] = field(default_factory=dict)  # ONNX node name -> gain of its fused op
    source: str = ""

    def latency_with(self, sparse_nodes: Iterable[str]) -> float:
        """Estimated latency (ms) when exactly ``sparse_nodes`` run sparse: the dense latency minus the time saved by
        each distinct fused op holding one of them. Ops are priced independently, so this matches the model's
        all-sparse figure when every eligible layer is pruned."""
        saved: dict[str, float] = {}
        for name in sparse_nodes:
            gain = self.layers.get(name)
            if gain is not None:
                saved[gain.op] = gain.dense_us - gain.sparse_us
        return self.dense_latency_ms - sum(saved.values()) / 1e3


class GainModel(Protocol):
    """Anything that prices a checked model dense and sparse under a power mode (None: the platform's default)."""

    def __call__(self, loaded: LoadedModel, report: CheckReport, power_mode: str | None) -> GainEstimate: ...


def perf_gains(loaded: LoadedModel, report: CheckReport, power_mode: str | None) -> GainEstimate:
    """:class:`GainModel` backed by ``dlakit.perf``: the same placement as ``report``, priced dense and all-sparse.

    The model applies sparsity to every op it considers eligible; we read per-op times, so a layer's gain does not
    depend on which other layers are pruned (ops are priced independently; shared DRAM is a per-core budget).
    """
    from dlakit.perf import conditions_for, evaluate, prepare

    placement = {n.name: n.placement for n in report.nodes}
    prep = prepare(loaded, report.target, report.precision, placement)
    dense_cond, label = conditions_for(report.target, power_mode, None, False, report.precision)
    dense = evaluate(prep, dense_cond, label)
    estimate = GainEstimate(label, dense.latency_ms, source="dlakit.perf")
    if not report.target.is_orin or report.precision != Precision.INT8:
        return estimate  # no sparse mode: every gain would be 1.0; leave layers empty
    sparse_cond, _ = conditions_for(report.target, power_mode, None, True, report.precision)
    sparse = evaluate(prep, sparse_cond, label)
    for d, s in zip(dense.layers, sparse.layers, strict=True):
        if d.device != Device.DLA:
            continue
        gain = LayerGain(d.name, d.time_us, s.time_us, d.bound)
        for node in d.nodes:
            estimate.layers[node] = gain
    return estimate


def default_gain_model() -> GainModel:
    """The performance model's gains (:func:`perf_gains`)."""
    return perf_gains


__all__ = ["GainEstimate", "GainModel", "LayerGain", "default_gain_model", "perf_gains"]
