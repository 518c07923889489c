"""Apply 2:4 pruning to the eligible convolutions of a model and report, per layer, what was done and why.

The output is the user's ONNX file with only the pruned weight tensors replaced (edited by tensor name in a copy of
the ModelProto): node names, dynamic input shapes, metadata and every other tensor stay byte-for-byte as they were,
which a re-serialised analysis graph (renamed nodes, fixed shapes, inferred value_info) would not guarantee.

What this does not do: fine-tune. Pruning a trained network to 2:4 without retraining costs accuracy (NVIDIA's
RetinaNet case study retrains for 26 epochs to get it back); dlakit measures that cost, it does not train.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from dlakit.check import CheckReport
from dlakit.errors import OptionError
from dlakit.sparsity.eligibility import SparsityInfo, sparsity_info
from dlakit.sparsity.gain import GainEstimate
from dlakit.sparsity.pattern import MODES, density, energy_kept, prune

PRUNED, ALREADY, SKIPPED = "pruned", "already 2:4", "skipped"
FINE_TUNE_NOTE = ("2:4 pruning without fine-tuning usually costs accuracy (NVIDIA's case study retrains for 26 "
                  "epochs to recover it); dlakit measures the cost, it does not train")


@dataclass
class LayerResult:
    """What ``sparsify`` did with one convolution."""

    info: SparsityInfo
    action: str = SKIPPED
    reason: str | None = None
    density_before: float | None = None
    density_after: float | None = None
    energy_kept: float | None = None
    speedup: float | None = None
    dense_us: float | None = None
    sparse_us: float | None = None
    bound: str | None = None
    energy_before: float | None = None  # Σw² of the weights before pruning
    zeroed: int = 0  # weights set to zero

    @property
    def name(self) -> str:
        return self.info.name

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 6) -> float | None:
            return None if x is None else round(x, n)

        return {
            "name": self.name, "eligible": self.info.eligible, "action": self.action, "reason": self.reason,
            "in_channels": self.info.in_channels, "out_channels": self.info.out_channels,
            "kernel": list(self.info.kernel), "groups": self.info.groups, "weight": self.info.weight,
            "density_before": r(self.density_before), "density_after": r(self.density_after),
            "energy_kept": r(self.energy_kept), "speedup": r(self.speedup, 4), "dense_us": r(self.dense_us, 3),
            "sparse_us": r(self.sparse_us, 3), "bound": self.bound,
        }


@dataclass
class SparsifyResult:
    """The pruned model and the per-layer report."""

    model: onnx.ModelProto
    mode: str
    layers: list[LayerResult]
    gains: GainEstimate | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pruned(self) -> list[LayerResult]:
        return [x for x in self.layers if x.action == PRUNED]

    @property
    def sparse(self) -> list[LayerResult]:
        """Layers holding the 2:4 pattern in the output: pruned now or already sparse."""
        return [x for x in self.layers if x.action in (PRUNED, ALREADY)]

    def summary(self) -> dict[str, Any]:
        counted = [x for x in self.pruned if x.energy_before is not None and x.energy_kept is not None]
        before = sum(x.energy_before for x in counted)
        after = sum(x.energy_before * x.energy_kept for x in counted)
        out: dict[str, Any] = {
            "conv_layers": len(self.layers),
            "eligible": sum(1 for x in self.layers if x.info.eligible),
            "pruned": len(self.pruned),
            "already_2to4": sum(1 for x in self.layers if x.action == ALREADY),
            "skipped": sum(1 for x in self.layers if x.action == SKIPPED),
            "weights_zeroed": sum(x.zeroed for x in self.pruned),
            "energy_kept": round(after / before, 6) if before > 0 else None,
            "power_mode": None, "dense_latency_ms": None, "sparse_latency_ms": None, "estimated_speedup": None,
        }
        if self.gains is not None:
            dense = self.gains.dense_latency_ms
            sparse = self.gains.latency_with(x.name for x in self.sparse)
            out.update(power_mode=self.gains.power_mode, dense_latency_ms=round(dense, 4),
                       sparse_latency_ms=round(sparse, 4),
                       estimated_speedup=round(dense / sparse, 4) if sparse > 0 else None)
        return out


def _weight_arrays(proto: onnx.ModelProto) -> tuple[dict[str, onnx.TensorProto], dict[str, onnx.NodeProto]]:
    inits = {t.name: t for t in proto.graph.initializer}
    constants = {n.output[0]: n for n in proto.graph.node if n.op_type == "Constant" and n.output}
    return inits, constants


def _read(name: str, inits: dict[str, onnx.TensorProto], constants: dict[str, onnx.NodeProto]) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = constants.get(name)
    if node is not None:
        attr = next((a for a in node.attribute if a.name == "value"), None)
        if attr is not None:
            return numpy_helper.to_array(attr.t)
    return None


def _write(name: str, array: np.ndarray, inits: dict[str, onnx.TensorProto],
           constants: dict[str, onnx.NodeProto]) -> None:
    if name in inits:
        inits[name].CopyFrom(numpy_helper.from_array(array, name))
        return
    attr = next(a for a in constants[name].attribute if a.name == "value")
    attr.t.CopyFrom(numpy_helper.from_array(array, attr.t.name or name))


def _consumers(proto: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in set(node.input):
            readers.setdefault(name, []).append(node)
    return readers


def _users(readers: dict[str, list[onnx.NodeProto]], name: str) -> set[str]:
    """Nodes that read tensor ``name``, looking through Identity nodes (shared weights in PyTorch exports); unnamed
    nodes get the loader's ``node_of_<first output>`` name."""
    users: set[str] = set()
    frontier, seen = [name], set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        for node in readers.get(current, []):
            if node.op_type == "Identity":
                frontier.extend(node.output)
            else:
                users.add(node.name or f"node_of_{node.output[0] if node.output else node.op_type}")
    return users


def select_layers(infos: Sequence[SparsityInfo], layers: Sequence[str] | None) -> set[str] | None:
    """Validate ``--layers``: every name must be a convolution of the model (one error lists the unknown ones)."""
    if not layers:
        return None
    known = {i.name for i in infos}
    unknown = [name for name in layers if name not in known]
    if unknown:
        sample = ", ".join(sorted(known)[:6]) + (", ..." if len(known) > 6 else "")
        raise OptionError(f"{{layers}}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a "
                          f"convolution of this model (convolutions: {sample or 'none'})", "layers")
    return set(layers)


def _attach_gain(result: LayerResult, gains: GainEstimate | None) -> None:
    gain = gains.layers.get(result.name) if gains is not None else None
    if gain is None:
        return
    result.bound = gain.bound
    if result.info.eligible:
        result.speedup, result.dense_us, result.sparse_us = gain.speedup, gain.dense_us, gain.sparse_us


def _skip_reason(result: LayerResult, selected: set[str] | None, min_gain: float | None,
                 inits: dict[str, onnx.TensorProto], constants: dict[str, onnx.NodeProto],
                 arrays: dict[str, np.ndarray]) -> str | None:
    """Why this layer stays dense, judged on the layer alone (None: prune it); reads its weights into ``arrays``."""
    info = result.info
    if not info.eligible:
        return info.reason
    if selected is not None and info.name not in selected:
        return "not selected (--layers)"
    if info.weight is None:
        return f"cannot prune: {info.not_prunable}"
    array = arrays.get(info.weight)
    if array is None:
        array = _read(info.weight, inits, constants)
    if array is None or not np.issubdtype(array.dtype, np.floating):
        return f"cannot prune: weights '{info.weight}' are not float values stored in the file"
    arrays[info.weight] = array
    if min_gain is not None and result.speedup is None:
        return "no estimate from the performance model for this layer (--min-gain)"
    if min_gain is not None and result.speedup is not None and result.speedup < min_gain:
        bound = f", {result.bound}-bound" if result.bound else ""
        return f"estimated speed-up {result.speedup:.3f}x < --min-gain {min_gain:g}{bound}"
    return None


def sparsify_model(
    proto: onnx.ModelProto,
    report: CheckReport,
    mode: str = "magnitude",
    layers: Sequence[str] | None = None,
    min_gain: float | None = None,
    gains: GainEstimate | None = None,
) -> SparsifyResult:
    """Prune the eligible (and selected) convolutions of ``proto`` to 2:4; ``proto`` itself is not modified.

    ``report`` is the check of ``proto`` as loaded by :func:`dlakit.model.load_model` (placement and weight values
    come from it; the weights written are read from ``proto`` by tensor name). With ``min_gain``
    a layer is pruned only when ``gains`` estimates at least that speed-up for its fused op.
    """
    if mode not in MODES:
        raise OptionError(f"{{mode}}: '{mode}' is not one of {', '.join(MODES)}", "mode")
    if min_gain is not None and gains is None:
        raise OptionError("{min_gain} needs the performance model (dlakit.perf), which is not available here",
                          "min_gain")
    if min_gain is not None and not min_gain > 0:
        raise OptionError(f"{{min_gain}}: {min_gain} must be a speed-up factor > 0, e.g. 1.1", "min_gain")
    infos = sparsity_info(report)
    selected = select_layers(infos, layers)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    inits, constants = _weight_arrays(out)
    readers = _consumers(out)
    results = [LayerResult(info) for info in infos]
    arrays: dict[str, np.ndarray] = {}
    for result in results:  # pass 1: decide from the layer alone
        _attach_gain(result, gains)
        result.reason = _skip_reason(result, selected, min_gain, inits, constants, arrays)
    candidates = {r.name for r in results if r.reason is None}
    done: dict[str, LayerResult] = {}
    for result in results:  # pass 2: weights shared with a layer that stays dense cannot be pruned
        if result.name not in candidates:
            continue
        weight = result.info.weight
        assert weight is not None
        others = _users(readers, weight) - candidates
        if others:
            result.reason = (f"cannot prune: weights '{weight}' are shared with {', '.join(sorted(others))}, "
                             "which stays dense")
            continue
        array = arrays[weight]
        result.density_before = density(array)
        if weight in done:  # shared by two pruned convolutions: pruned once
            first = done[weight]
            result.action, result.energy_kept = first.action, first.energy_kept
            result.density_after, result.reason = first.density_after, f"shares its weights with {first.name}"
            continue
        new = prune(array, mode)
        result.energy_before = float(np.square(array.astype(np.float64)).sum())
        result.zeroed = int(np.count_nonzero(array) - np.count_nonzero(new))
        result.energy_kept = energy_kept(array, new)
        result.density_after = density(new)
        if np.array_equal(new, array):
            result.action = ALREADY
            result.reason = "weights already hold the 2:4 pattern"
        else:
            _write(weight, new, inits, constants)
            result.action = PRUNED
        done[weight] = result
    notes = [FINE_TUNE_NOTE]
    if mode == "force":
        notes.append("--mode force writes TensorRT's --sparsity=force pattern (first 2 of every 4 channels, whatever "
                     "their magnitude): for performance studies only, the model's accuracy is not meaningful")
    return SparsifyResult(out, mode, results, gains, notes)


__all__ = ["ALREADY", "FINE_TUNE_NOTE", "PRUNED", "SKIPPED", "LayerResult", "SparsifyResult", "select_layers",
           "sparsify_model"]
