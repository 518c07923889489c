"""Cross-layer equalization (CLE) as a verified, exact FP32 rewrite, with DLA's Clip rules spelled out.

Why: DLA quantizes activations per tensor. When the channels of ``conv1 → act → conv2``'s middle tensor have very
different ranges, the small channels get few INT8 levels. Scaling output channel ``i`` of ``conv1`` by ``1/s_i`` and
input channel ``i`` of ``conv2`` by ``s_i`` leaves the FP32 function unchanged (ReLU is positively homogeneous) and
can equalize the ranges (Nagel et al. 2019, "Data-Free Quantization", DFQ).

ReLU6 is not homogeneous: ``clip(z/s, 0, 6) ≠ clip(z, 0, 6)/s``. The per-channel bound ``6/s_i`` cannot be one DLA
Clip (one max value in [1, 127] for the whole tensor), so a ReLU6 channel may be scaled only where the rewrite is
*provably* exact with the original Clip kept: the channel's pre-activation can never reach the bound (interval
arithmetic from the layer's bounded input, e.g. a previous ReLU6 output in [0, 6]) and stays below it after scaling.
The other option, replacing ReLU6 by ReLU, changes the model; it is only done on request (``relu6="relu"``) and is
reported with its FP32 effect measured by :func:`verify` (on EfficientNet-Lite0 it costs the FP32 model itself
tens of dB, which is why it is not the default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from dlakit.errors import OptionError

#: DLA Clipped ReLU: minimum 0, maximum in [1, 127] (facts/dla.md §1.2 Activation)
DLA_CLIP_MAX = (1.0, 127.0)
RELU6_MODES = ("keep", "bounded", "relu")


@dataclass
class Pair:
    """``first → activation → second`` where the middle tensor feeds only ``second``."""

    first: str
    activation: str | None  # node name of the Relu/Clip between them, None when linear
    kind: str  # "linear" | "relu" | "clip"
    second: str
    channels: int
    bound: float | None = None  # Clip max


@dataclass
class PairResult:
    pair: Pair
    scaled_channels: int
    skipped_channels: int  # ReLU6 channels left unscaled because scaling them would change the Clip
    range_ratio_before: float  # max/min per-channel weight range of the middle channels (first layer side)
    range_ratio_after: float
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        p = self.pair
        return {"first": p.first, "activation": p.activation, "kind": p.kind, "second": p.second,
                "channels": p.channels, "scaled_channels": self.scaled_channels,
                "skipped_channels": self.skipped_channels, "range_ratio_before": round(self.range_ratio_before, 2),
                "range_ratio_after": round(self.range_ratio_after, 2), "note": self.note}


@dataclass
class EqualizeResult:
    model: onnx.ModelProto
    pairs: list[PairResult] = field(default_factory=list)
    relu6_replaced: list[str] = field(default_factory=list)  # Clip nodes turned into Relu (a model change)
    refused: list[str] = field(default_factory=list)  # one line per pair or ReLU6 channel set left alone, with why

    @property
    def changed(self) -> bool:
        return any(p.scaled_channels for p in self.pairs) or bool(self.relu6_replaced)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _clip_bounds(node: onnx.NodeProto, inits: dict[str, np.ndarray]) -> tuple[float, float] | None:
    if node.op_type == "Relu":
        return 0.0, np.inf
    if node.op_type != "Clip":
        return None
    lo, hi = -np.inf, np.inf
    for i, attr in ((1, "min"), (2, "max")):
        if len(node.input) > i and node.input[i]:
            if node.input[i] not in inits or inits[node.input[i]].size != 1:
                return None
            value = float(inits[node.input[i]].reshape(()))
        else:
            value = next((a.f for a in node.attribute if a.name == attr), None)
        if value is not None:
            lo, hi = (value, hi) if i == 1 else (lo, value)
    return lo, hi


def _conv_info(node: onnx.NodeProto, inits: dict[str, np.ndarray]) -> str | None:
    """'dense' or 'depthwise' for a Conv with constant 4-D weights (bias optional), else None."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in inits:
        return None
    weight = inits[node.input[1]]
    if weight.ndim != 4:
        return None
    group = _attr(node, "group", 1)
    if group == 1:
        return "dense"
    return "depthwise" if group == weight.shape[0] and weight.shape[1] == 1 else None


def find_pairs(model: onnx.ModelProto) -> list[Pair]:
    """Every conv → (Relu | Clip(0, b) | nothing) → conv chain whose middle tensor has no other reader."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}

    def only_reader(tensor: str) -> onnx.NodeProto | None:
        readers = consumers.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in outputs else None

    pairs = []
    for node in model.graph.node:
        if _conv_info(node, inits) is None:
            continue
        nxt = only_reader(node.output[0])
        act, kind, bound = None, "linear", None
        if nxt is not None and nxt.op_type in ("Relu", "Clip"):
            bounds = _clip_bounds(nxt, inits)
            if bounds is None or bounds[0] != 0.0:
                continue
            act, kind = nxt, "relu" if np.isinf(bounds[1]) else "clip"
            bound = None if np.isinf(bounds[1]) else bounds[1]
            nxt = only_reader(nxt.output[0])
        if nxt is None or _conv_info(nxt, inits) is None or nxt.input[0] != (act or node).output[0]:
            continue
        channels = inits[node.input[1]].shape[0]
        w2 = inits[nxt.input[1]]
        expected = w2.shape[0] if _conv_info(nxt, inits) == "depthwise" else w2.shape[1]
        if expected != channels:
            continue
        pairs.append(Pair(node.name, act.name if act else None, kind, nxt.name, channels, bound))
    return pairs


def _input_bounds(model: onnx.ModelProto, node: onnx.NodeProto, inits: dict[str, np.ndarray],
                  domain: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """Value range of ``node``'s data input: the bounds of the Clip that produced it, or the declared input domain
    of a graph input (e.g. (x - 127) / 128 of 8-bit pixels lies in [-0.99, 1])."""
    if node.input[0] in domain:
        return domain[node.input[0]]
    for producer in model.graph.node:
        if node.input[0] in producer.output:
            bounds = _clip_bounds(producer, inits)
            return bounds if bounds is not None and np.isfinite(bounds[1]) else None
    return None


def _upper_bound(weight: np.ndarray, bias: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Largest pre-activation each output channel can reach for inputs in [lo, hi] (interval arithmetic)."""
    flat = weight.reshape(weight.shape[0], -1).astype(np.float64)
    return bias + np.where(flat > 0, flat * hi, flat * lo).sum(axis=1)


def _ranges(weight: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(np.abs(weight), axis, 0)
    return moved.reshape(moved.shape[0], -1).max(axis=1).astype(np.float64)


def _spread(ranges: np.ndarray) -> float:
    """max / median of the non-negligible channel ranges: how unequal the channels are."""
    live = ranges[ranges > ranges.max() * 1e-6] if ranges.size and ranges.max() > 0 else ranges[:0]
    return float(live.max() / np.median(live)) if live.size else 1.0


def equalize(model: onnx.ModelProto, relu6: str = "keep", sweeps: int = 3,
             input_domain: dict[str, tuple[float, float]] | None = None) -> EqualizeResult:
    """Equalize every pair of ``model`` (a copy is returned; the input is never modified).

    ``relu6``: "keep" leaves ReLU6 pairs alone (reported), "bounded" also scales the ReLU6 channels that provably
    never reach the bound, "relu" replaces ReLU6 by ReLU in equalized pairs (a model change; measure it).
    ``input_domain``: value range of graph inputs (the preprocessing's output range); with it, "bounded" can prove
    the first layer's channels safe. Exactness is then guaranteed for inputs inside that domain.
    """
    if relu6 not in RELU6_MODES:
        raise OptionError(f"{{relu6}}: '{relu6}' is not one of {', '.join(RELU6_MODES)}", "relu6")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    protos = {i.name: i for i in graph.initializer}
    arrays = {name: numpy_helper.to_array(p).astype(np.float64) for name, p in protos.items()}
    nodes = {n.name: n for n in graph.node}
    result = EqualizeResult(out)
    pairs = find_pairs(out)
    replaced: set[str] = set()
    if relu6 == "relu":
        for pair in pairs:
            if pair.kind == "clip" and pair.activation not in replaced:
                act = nodes[pair.activation]
                act.op_type = "Relu"
                del act.input[1:]
                del act.attribute[:]
                replaced.add(pair.activation)
                pair.kind, pair.bound = "relu", None
        result.relu6_replaced = sorted(replaced)
    before = [_spread(_ranges(arrays[nodes[p.first].input[1]], 0)) for p in pairs]
    total = [np.ones(p.channels) for p in pairs]
    skipped = [0] * len(pairs)
    for _ in range(sweeps):
        for index, pair in enumerate(pairs):
            first, second = nodes[pair.first], nodes[pair.second]
            w1 = arrays[first.input[1]]
            b1 = arrays[first.input[2]] if len(first.input) > 2 and first.input[2] else None
            w2 = arrays[second.input[1]]
            depthwise2 = w2.shape[1] == 1 and _attr(second, "group", 1) > 1
            r1, r2 = _ranges(w1, 0), _ranges(w2, 0 if depthwise2 else 1)
            live = (r1 > 0) & (r2 > 0)
            scale = np.ones(pair.channels)
            scale[live] = np.sqrt(r1[live] / r2[live])  # after scaling both sides have range sqrt(r1·r2)
            if pair.kind == "clip":
                bounds = _input_bounds(out, first, arrays, input_domain or {}) if relu6 == "bounded" else None
                bound = float(pair.bound)  # type: ignore[arg-type]
                free = np.zeros(pair.channels, bool)
                if bounds is not None:
                    upper = _upper_bound(w1, b1 if b1 is not None else np.zeros(pair.channels), *bounds)
                    free = upper <= bound
                    # the scaled channel must stay below the unchanged Clip bound too
                    scale = np.where(free, np.maximum(scale, np.maximum(upper, 0) / bound), 1.0)
                else:
                    scale[:] = 1.0
                skipped[index] = int(np.sum(~free & live))
            scale = np.where(live, scale, 1.0)
            total[index] *= scale
            arrays[first.input[1]] = w1 / scale[:, None, None, None]
            if b1 is not None:
                arrays[first.input[2]] = b1 / scale
            shape = (-1, 1, 1, 1) if depthwise2 else (1, -1, 1, 1)
            arrays[second.input[1]] = w2 * scale.reshape(shape)
    for index, pair in enumerate(pairs):
        scaled = int(np.sum(np.abs(total[index] - 1.0) > 1e-6))
        note = ""
        if pair.kind == "clip" and skipped[index]:
            note = (f"{skipped[index]} of {pair.channels} channels left unscaled: their pre-activation can reach "
                    f"the Clip bound {pair.bound:g}, and a per-channel bound is not one DLA Clip")
            result.refused.append(f"{pair.first} → {pair.activation} → {pair.second}: {note}")
        after = _spread(_ranges(arrays[nodes[pair.first].input[1]], 0))
        result.pairs.append(PairResult(pair, scaled, skipped[index], before[index], after, note))
    for name, proto in protos.items():
        if name in arrays and proto.data_type == onnx.TensorProto.FLOAT:
            original = numpy_helper.to_array(proto)
            if original.ndim and not np.array_equal(arrays[name], original.astype(np.float64)):
                proto.CopyFrom(numpy_helper.from_array(arrays[name].astype(np.float32), name))
    return result


@dataclass
class Verification:
    """Original vs rewritten FP32 outputs on real samples."""

    max_abs_diff: float
    sqnr_db: float
    samples: int

    def as_dict(self) -> dict[str, float]:
        return {"max_abs_diff": self.max_abs_diff, "sqnr_db": round(self.sqnr_db, 2) if np.isfinite(
            self.sqnr_db) else None, "samples": self.samples}


def verify(original: onnx.ModelProto, rewritten: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]
           ) -> Verification:
    """Run both models with ONNX Runtime on ``feeds`` and compare every graph output."""
    from dlakit.quantize.runtime import session

    a, b = session(original), session(rewritten)
    names = [o.name for o in original.graph.output]
    worst, signal, noise = 0.0, 0.0, 0.0
    for feed in feeds:
        for ref, new in zip(a.run(names, feed), b.run(names, feed), strict=True):
            diff = ref.astype(np.float64) - new
            worst = max(worst, float(np.abs(diff).max()) if diff.size else 0.0)
            signal += float(np.sum(ref.astype(np.float64) ** 2))
            noise += float(np.sum(diff**2))
    db = float("inf") if noise == 0 else 10 * float(np.log10(signal / noise)) if signal > 0 else float("-inf")
    return Verification(worst, db, len(feeds))
