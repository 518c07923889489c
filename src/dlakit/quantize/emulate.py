"""Run a model with DLA INT8 numerics on ONNX Runtime, and find the layers that lose the accuracy.

The emulator is a copy of the model with the DLA numerics written into the graph, so ORT's optimized kernels run
it at full speed: QuantizeLinear→DequantizeLinear (INT8, zero point 0, round half to even, saturate) on every tensor
with a scale, per-output-channel fake-quantized weights, and an FP16 round trip (Cast) on DLA tensors without a
scale. Products of INT8 values accumulate exactly in float32 up to 2^24, close to the DLA's INT32 accumulator;
biases stay in float because DLA adds them in its higher-precision post-processing stage, not in INT32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx

from dlakit.errors import OptionError
from dlakit.model import LoadedModel
from dlakit.quantize.data import DataSource
from dlakit.quantize.numerics import INT8_MAX, ROUNDINGS, fake_quant, sqnr_db
from dlakit.quantize.plan import QuantPlan, build_plan
from dlakit.quantize.qdq import QdqModel, insert_qdq
from dlakit.quantize.runtime import Session, progress_bar, session, to_proto, with_outputs

EmulatedModel = QdqModel


def build_emulator(model: onnx.ModelProto, plan: QuantPlan, amax: dict[str, float], fp16: bool = True,
                   rounding: str = "even") -> QdqModel:
    """Copy ``model`` and write DLA numerics into it; ``amax`` is per scaled tensor, constraints applied.

    ``rounding``: ``even`` (TensorRT's documented Q/DQ rounding) or ``away`` (open NVDLA's converters): running
    both shows whether the unsure DLA rounding mode matters for a model.
    """
    if rounding not in ROUNDINGS:
        raise OptionError(f"{{rounding}}: '{rounding}' is not one of {', '.join(ROUNDINGS)}", "rounding")
    return insert_qdq(model, plan, amax, weights="fake", fp16_casts=fp16, rounding=rounding)


@dataclass
class TensorError:
    """FP32 vs emulated INT8 for one tensor, accumulated over all samples."""

    tensor: str
    producer: str = ""
    op: str = ""
    signal: float = 0.0
    noise: float = 0.0
    local_signal: float = 0.0
    local_noise: float = 0.0
    max_abs: float = 0.0
    cosine_sum: float = 0.0
    rows: int = 0
    layer_sqnr_db: float = float("inf")
    inputs: list[str] = field(default_factory=list)

    @property
    def sqnr_db(self) -> float:
        return _db(self.signal, self.noise)

    @property
    def local_sqnr_db(self) -> float:
        """Error of quantizing this tensor alone (FP32 activations through its scale)."""
        return _db(self.local_signal, self.local_noise)

    @property
    def cosine(self) -> float:
        return self.cosine_sum / self.rows if self.rows else 1.0

    def add(self, ref: np.ndarray, emu: np.ndarray, scale: float | None) -> None:
        self.merge(batch_stats(ref, emu, scale))

    def merge(self, stats: BatchStats) -> None:
        """Add one batch's :func:`batch_stats`; merging the batches in their order gives the same floats
        whichever process computed each (how sharded runs equal the serial one bit for bit)."""
        signal, noise, max_abs, cosine_sum, rows, local = stats
        self.signal += signal
        self.noise += noise
        self.max_abs = max(self.max_abs, max_abs)
        self.cosine_sum += cosine_sum
        self.rows += rows
        if local is not None:
            self.local_signal += local[0]
            self.local_noise += local[1]

    def as_dict(self) -> dict[str, object]:
        return {"tensor": self.tensor, "layer": self.producer, "op": self.op, "sqnr_db": _round(self.sqnr_db),
                "layer_sqnr_db": _round(self.layer_sqnr_db), "local_sqnr_db": _round(self.local_sqnr_db),
                "max_abs_error": self.max_abs, "cosine": round(self.cosine, 6)}


#: one batch of one tensor: signal, noise, max |error|, sum of row cosines, rows, (local signal, local noise) or None
BatchStats = tuple[float, float, float, float, int, tuple[float, float] | None]


def batch_stats(ref: np.ndarray, emu: np.ndarray, scale: float | None) -> BatchStats:
    """What one batch adds to a :class:`TensorError` (``scale``: also the error of quantizing ``ref`` alone)."""
    ref64, emu64 = ref.astype(np.float64), emu.astype(np.float64)
    signal = float(np.sum(ref64**2))
    noise = float(np.sum((ref64 - emu64) ** 2))
    max_abs = float(np.max(np.abs(ref64 - emu64))) if ref.size else 0.0
    rows_ref = ref64.reshape(ref.shape[0], -1) if ref.ndim > 1 else ref64.reshape(1, -1)
    rows_emu = emu64.reshape(rows_ref.shape)
    norm_ref, norm_emu = np.linalg.norm(rows_ref, axis=1), np.linalg.norm(rows_emu, axis=1)
    norms = norm_ref * norm_emu
    # both zero: identical (1); exactly one zero: nothing in common (0), not a perfect match
    cos = np.where(norms > 0, np.sum(rows_ref * rows_emu, axis=1) / np.where(norms > 0, norms, 1),
                   np.where((norm_ref == 0) & (norm_emu == 0), 1.0, 0.0))
    local = None
    if scale is not None:
        local = (float(np.sum(ref64**2)), float(np.sum((ref64 - fake_quant(ref, scale)) ** 2)))
    return signal, noise, max_abs, float(cos.sum()), len(cos), local


def _db(signal: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")


def _round(value: float) -> float | None:
    return round(value, 2) if np.isfinite(value) else None


def _sources(model: onnx.ModelProto, names: set[str]) -> dict[str, tuple[str, str, list[str]]]:
    """For each compared tensor: producer layer, op, and the nearest compared tensors it is computed from."""
    producers = {out: node for node in model.graph.node for out in node.output}
    weights = {i.name for i in model.graph.initializer}

    def upstream(tensor: str, seen: set[str]) -> list[str]:
        node = producers.get(tensor)
        if node is None:
            return []
        found: list[str] = []
        for name in node.input:
            if not name or name in weights or name in seen:
                continue
            seen.add(name)
            found += [name] if name in names else upstream(name, seen)
        return found

    out = {}
    for name in names:
        node = producers.get(name)
        out[name] = (node.name if node else "(input)", node.op_type if node else "", upstream(name, set()))
    return out


def compare_layers(model: onnx.ModelProto, emulated: QdqModel, source: DataSource, batch_size: int,
                   progress: bool = True) -> list[TensorError]:
    """Per-tensor error of the emulated model against FP32, sorted by the error each layer adds (worst first).

    Accumulated error hides where it started, so ``layer_sqnr_db`` is the SQNR of only the noise a layer adds on
    top of the noisiest tensor it is computed from (noise-to-signal ratios subtract, decibels do not).
    """
    names = compared_tensors(model, emulated)
    errors = {n: TensorError(n) for n in names}
    with progress_bar(len(source), "comparing FP32 and emulated INT8", progress) as advance:
        for stats, valid in layer_batch_stats(model, emulated, source, batch_size):
            for name, value in stats.items():
                errors[name].merge(value)
            advance(valid)
    return rank_layers(model, errors)


def compared_tensors(model: onnx.ModelProto, emulated: QdqModel) -> list[str]:
    """Every INT8 tensor, and the graph outputs whatever their precision."""
    outputs = [o.name for o in model.graph.output]
    return list(dict.fromkeys([n for n in emulated.compare_names if n in emulated.scales] + outputs))


def layer_batch_stats(model: onnx.ModelProto, emulated: QdqModel, source: DataSource, batch_size: int,
                      session_of: Callable[..., Session] = session) -> Iterator[tuple[dict[str, BatchStats], int]]:
    """Per batch of ``source``: the :func:`batch_stats` of every compared tensor, and the batch's real samples.
    ``session_of(model, quantized)`` makes the sessions (a worker keeps them for its next shard)."""
    names = compared_tensors(model, emulated)
    ref_sess = session_of(with_outputs(model, names), False)
    emu_names = [emulated.compare_names.get(n, n) for n in names]
    emu_sess = session_of(with_outputs(emulated.model, emu_names), True)
    inputs = {i.name for i in model.graph.input}
    for batch, valid in source.batches(batch_size):
        feeds = {k: v for k, v in batch.items() if k in inputs}
        refs = ref_sess.run(names, feeds)
        emus = emu_sess.run(emu_names, feeds)
        stats = {}
        for name, ref, emu in zip(names, refs, emus, strict=True):
            if ref.ndim and ref.shape[0] == batch_size and valid < batch_size:
                ref, emu = ref[:valid], emu[:valid]
            if comparable(ref, emu):
                stats[name] = batch_stats(ref, emu, emulated.scales.get(name))
        yield stats, valid


def rank_layers(model: onnx.ModelProto, errors: dict[str, TensorError]) -> list[TensorError]:
    """Fill in producer, op and ``layer_sqnr_db`` of the accumulated errors; worst first."""
    for name, (producer, op, ups) in _sources(model, set(errors)).items():
        err = errors[name]
        err.producer, err.op, err.inputs = producer, op, ups
        worst_input = max((_nsr(errors[u]) for u in ups), default=0.0)
        added = _nsr(err) - worst_input
        err.layer_sqnr_db = float(-10 * np.log10(added)) if added > 0 else float("inf")
    return sorted(errors.values(), key=lambda e: (e.layer_sqnr_db, e.sqnr_db))


def _nsr(err: TensorError) -> float:
    return err.noise / err.signal if err.signal > 0 else 0.0


def run_model(model: onnx.ModelProto, source: DataSource, batch_size: int, quantized: bool,
              progress: bool = True) -> list[np.ndarray]:
    """The graph outputs over all samples, concatenated along the batch axis."""
    return join_outputs(output_batches(model, source, batch_size, quantized, progress))


def output_batches(model: onnx.ModelProto, source: DataSource, batch_size: int, quantized: bool,
                   progress: bool = False, session_of: Callable[..., Session] = session) -> list[list[np.ndarray]]:
    """Per graph output, its value for each batch (padding removed): what :func:`join_outputs` concatenates."""
    sess = session_of(model, quantized)
    names = [o.name for o in model.graph.output]
    inputs = {i.name for i in model.graph.input}
    collected: list[list[np.ndarray]] = [[] for _ in names]
    with progress_bar(len(source), "running", progress) as advance:
        for batch, valid in source.batches(batch_size):
            for i, value in enumerate(sess.run(names, {k: v for k, v in batch.items() if k in inputs})):
                collected[i].append(value[:valid] if value.ndim and value.shape[0] == batch_size else value)
            advance(valid)
    return collected


def join_outputs(collected: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [_join(parts) for parts in collected]


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """Batches along axis 0; outputs whose shape depends on the data (NMS indices, NonZero) are flattened."""
    if len({p.shape[1:] for p in parts}) == 1:
        return np.concatenate(parts)
    return np.concatenate([p.reshape(-1) for p in parts])


def comparable(ref: np.ndarray, emu: np.ndarray) -> bool:
    """Float outputs of equal shape: SQNR of integer indices or of different detection counts means nothing."""
    return np.issubdtype(ref.dtype, np.floating) and ref.shape == emu.shape


__all__ = ["EmulatedModel", "TensorError", "build_emulator", "compare_layers", "run_model", "sqnr_db"]


@dataclass
class Emulation:
    """Everything needed to run and compare one model under DLA numerics."""

    model: onnx.ModelProto  # FP32 model without Q/DQ
    plan: QuantPlan
    amax: dict[str, float]
    emulated: QdqModel
    ignored_scales: list[str] = field(default_factory=list)  # cache entries no DLA INT8 tensor uses


def emulation_from_scales(loaded: LoadedModel, scales: dict[str, float], fp16: bool = True, rounding: str = "even",
                          off_dla: frozenset[str] = frozenset()) -> Emulation:
    """Emulate ``loaded`` with per-tensor ``scales`` (from a calibration cache or a Q/DQ model).

    The DLA equal-scale constraints are applied on top, as TensorRT would; planned tensors without a scale run FP16.
    ``off_dla``: layers ``dlakit check`` places on the GPU; they keep FP32.
    """
    plan = build_plan(loaded.graph, off_dla=off_dla)
    model = to_proto(loaded)
    known = {name: scale * INT8_MAX for name, scale in scales.items() if name in set(plan.tensors)}
    tied, _ = plan.apply_constraints(known)
    ignored = [name for name in scales if name not in set(plan.observed)]
    return Emulation(model, plan, tied, build_emulator(model, plan, tied, fp16, rounding), ignored)


def output_errors(emulation: Emulation, source: DataSource, batch_size: int, progress: bool = True
                  ) -> list[dict[str, object]]:
    """SQNR, max error, cosine and (for 2-D score outputs) top-1 agreement of every graph output."""
    reference = run_model(emulation.model, source, batch_size, quantized=False, progress=progress)
    emulated = run_model(emulation.emulated.model, source, batch_size, quantized=True, progress=progress)
    return output_rows(emulation.model, reference, emulated)


def output_rows(model: onnx.ModelProto, reference: list[np.ndarray], emulated: list[np.ndarray]
                ) -> list[dict[str, object]]:
    """:func:`output_errors` from the outputs of both models over every sample."""
    rows = []
    for output, ref, emu in zip(model.graph.output, reference, emulated, strict=True):
        if not comparable(ref, emu):
            rows.append({"name": output.name, "sqnr_db": None, "max_abs_error": None, "cosine": None,
                         "note": "integer or data-dependent output (indices, detection count): not compared"})
            continue
        err = TensorError(output.name)
        err.add(ref, emu, None)
        row: dict[str, object] = {"name": output.name, "sqnr_db": _round(err.sqnr_db), "max_abs_error": err.max_abs,
                                  "cosine": round(err.cosine, 6)}
        scores = ref.ndim >= 2 and ref.shape[1] > 1 and all(d == 1 for d in ref.shape[2:])  # [N,C] or [N,C,1,1]
        if scores:
            ref2, emu2 = ref.reshape(ref.shape[:2]), emu.reshape(emu.shape[:2])
            row["top1_agreement"] = round(float(np.mean(ref2.argmax(1) == emu2.argmax(1))), 4)
        rows.append(row)
    return rows
