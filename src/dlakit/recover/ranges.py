"""Per-tensor range search with the DLA emulator in the loop.

Why not one global method: the best clip point depends on the tensor (heavy-tailed projection outputs want
clipping, saturated ReLU6 outputs do not) and on the noise that arrives from upstream INT8 layers, which no
histogram of FP32 activations sees. So each scale group (tensors DLA forces to share a scale: pooling in/out,
element-wise inputs, concat in/out) is scored on what the emulator actually feeds it: the emulated value x̃ of each
member before its own quantizer, compared to the FP32 reference x, error E‖Q_a(x̃) − x‖² for a grid of candidate
ranges a, all candidates scored from the same emulator run. Sign-aware: never-negative tensors are scored on the
grid they will use (127 positive levels when symmetric, 255 with unsigned INT8 where the DLA has it).

A final emulator run checks the chosen ranges against the starting (max) ranges on the model output; when the search
did not help there, the starting ranges are kept, so the search never does worse than max calibration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from dlakit.quantize.emulate import build_emulator, comparable
from dlakit.quantize.numerics import MIN_AMAX
from dlakit.quantize.plan import QuantPlan
from dlakit.quantize.runtime import session, with_outputs
from dlakit.recover.observe import Source

#: candidate ranges as fractions of the group's observed max (geometric, 1.0 included)
CANDIDATE_FRACTIONS = tuple(float(f) for f in np.geomspace(1.0, 0.12, 18))
SAMPLE_ELEMENTS = 8192  # elements per tensor and sample that enter the scoring (a fixed strided subset)
UINT8_ZERO_POINT = "dlakit_uint8_zero_point"


@dataclass
class GroupChoice:
    tensors: list[str]
    start_amax: float
    amax: float
    gain_db: float  # local error reduction of the chosen range over the starting one

    def as_dict(self) -> dict[str, object]:
        return {"tensors": self.tensors, "start_amax": self.start_amax, "amax": self.amax,
                "gain_db": round(self.gain_db, 2)}


@dataclass
class RangeSearch:
    amax: dict[str, float]
    groups: list[GroupChoice] = field(default_factory=list)
    start_sqnr_db: float = 0.0
    searched_sqnr_db: float = 0.0
    kept_start: bool = False
    final_sqnr_db: float = 0.0
    seconds: float = 0.0


def quantizer_inputs(emulated: onnx.ModelProto, compare: dict[str, str]) -> dict[str, str]:
    """For each scaled tensor, the name of the value its QuantizeLinear reads in the emulator (before rounding)."""
    producers = {out: node for node in emulated.graph.node for out in node.output}
    found = {}
    for tensor, result in compare.items():
        dq = producers.get(result)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producers.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            found[tensor] = q.input[0]
    return found


def make_unsigned(emulated: onnx.ModelProto, compare: dict[str, str], tensors: set[str], amax: dict[str, float]
                  ) -> None:
    """Switch the quantizers of ``tensors`` to UINT8, zero point 0, scale amax/255 (in place).

    Only for DLA releases with unsigned INT8 (``--allow-uint8``): a never-negative tensor then gets 255 levels
    instead of 127 for the same range.
    """
    graph = emulated.graph
    producers = {out: node for node in graph.node for out in node.output}
    graph.initializer.append(numpy_helper.from_array(np.array(0, np.uint8), UINT8_ZERO_POINT))
    for tensor in tensors:
        dq = producers.get(compare.get(tensor, ""))
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producers[dq.input[0]]
        scale_name = f"{tensor}__uint8_scale"
        graph.initializer.append(numpy_helper.from_array(np.array(amax[tensor] / 255.0, np.float32), scale_name))
        for node in (q, dq):
            node.input[1] = scale_name
            node.input[2] = UINT8_ZERO_POINT


def build(model: onnx.ModelProto, plan: QuantPlan, amax: dict[str, float], unsigned: set[str]
          ) -> tuple[onnx.ModelProto, dict[str, str]]:
    """The emulator for ``amax`` with ``unsigned`` tensors on UINT8; returns it and the scaled tensors' names."""
    emu = build_emulator(model, plan, amax)
    if unsigned:
        make_unsigned(emu.model, emu.compare_names, unsigned & set(emu.scales), amax)
    return emu.model, emu.compare_names


def _levels(tensor: str, unsigned: set[str]) -> tuple[float, float, float]:
    """(lowest code, highest code, divisor of amax) of the tensor's grid."""
    return (0.0, 255.0, 255.0) if tensor in unsigned else (-128.0, 127.0, 127.0)


REFERENCE_CACHE_BYTES = 256 << 20


class Reference:
    """The FP32 model and its outputs per data source, run once and reused by every emulator run compared with it.

    The FP16 selection and the noise budget compare one emulated model per candidate against the same FP32
    outputs; running (and loading) the FP32 model each time doubled their cost. Outputs over
    ``REFERENCE_CACHE_BYTES`` are not kept and are recomputed per comparison instead.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.names = [o.name for o in model.graph.output]
        self.inputs = {i.name for i in model.graph.input}
        self._runs: dict[tuple[int, int], tuple[Source, list[list[np.ndarray]]]] = {}

    def outputs(self, source: Source, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int, list[np.ndarray]]]:
        """Per batch: the feeds, the number of valid rows and the FP32 outputs."""
        key = (id(source), batch_size)
        cached = self._runs.get(key)
        sess = None if cached else session(self.model)
        kept: list[list[np.ndarray]] | None = [] if cached is None else None
        size = 0
        for index, (batch, valid) in enumerate(source.batches(batch_size)):
            feeds = {k: v for k, v in batch.items() if k in self.inputs}
            if cached is not None:
                refs = cached[1][index]
            else:
                assert sess is not None
                refs = sess.run(self.names, feeds)
                size += sum(r.nbytes for r in refs)
                if kept is not None and size <= REFERENCE_CACHE_BYTES:
                    kept.append(refs)
                else:
                    kept = None
            yield feeds, valid, refs
        if kept is not None:
            self._runs[key] = (source, kept)  # the source is kept too, so that its id is never reused


def output_sqnr(reference: onnx.ModelProto | Reference, emulated: onnx.ModelProto, source: Source,
                batch_size: int) -> float:
    """Logit SQNR of ``emulated`` against ``reference`` over ``source`` (all graph outputs together)."""
    ref = reference if isinstance(reference, Reference) else Reference(reference)
    emu_sess = session(emulated, quantized=True)
    signal = noise = 0.0
    for feeds, valid, refs in ref.outputs(source, batch_size):
        for out, emu in zip(refs, emu_sess.run(ref.names, feeds), strict=True):
            if not comparable(out, emu):
                continue  # NMS indices, argmax, detection counts: not a signal to optimise
            out64, emu64 = out[:valid].astype(np.float64), emu[:valid].astype(np.float64)
            signal += float(np.sum(out64**2))
            noise += float(np.sum((out64 - emu64) ** 2))
    return float("inf") if noise == 0 else 10 * float(np.log10(signal / noise))


def search_ranges(reference: onnx.ModelProto, model: onnx.ModelProto, plan: QuantPlan, start: dict[str, float],
                  source: Source, batch_size: int, unsigned: set[str] | None = None,
                  keep: set[str] | None = None) -> RangeSearch:
    """Choose a range per scale group of ``plan`` for the emulated ``model`` against FP32 ``reference``.

    ``reference`` must name its tensors as ``model`` does (the pre-bias-correction rewrite of the same graph);
    ``start`` are constraint-tied ranges (usually max); ``keep`` are tensors whose range is not searched.
    """
    began = time.perf_counter()
    unsigned = unsigned or set()
    keep = keep or set()
    emulated, compare = build(model, plan, start, unsigned)
    pre = quantizer_inputs(emulated, compare)
    tensors = [t for t in plan.tensors if t in pre and t in start]
    groups: dict[str, list[str]] = {}
    for t in tensors:
        groups.setdefault(plan.group_of(t), []).append(t)
    searchable = {root: members for root, members in groups.items() if not keep & set(members)}
    fractions = np.asarray(CANDIDATE_FRACTIONS)
    errors = {root: np.zeros(len(fractions)) for root in searchable}
    ref_sess = session(with_outputs(reference, tensors))
    emu_names = [pre[t] for t in tensors]
    emu_sess = session(with_outputs(emulated, emu_names), quantized=True)
    out_names = [o.name for o in reference.graph.output]
    inputs = {i.name for i in reference.graph.input}
    signal = noise = 0.0
    picks: dict[str, np.ndarray] = {}
    for batch, valid in source.batches(batch_size):
        feeds = {k: v for k, v in batch.items() if k in inputs}
        refs = dict(zip(out_names + tensors, ref_sess.run(out_names + tensors, feeds), strict=True))
        emus = dict(zip(out_names + emu_names, emu_sess.run(out_names + emu_names, feeds), strict=True))
        for name in out_names:
            if not comparable(refs[name], emus[name]):
                continue
            r, e = refs[name][:valid].astype(np.float64), emus[name][:valid].astype(np.float64)
            signal += float(np.sum(r**2))
            noise += float(np.sum((r - e) ** 2))
        for root, members in searchable.items():
            group_amax = start[root] if root in start else max(start[m] for m in members)
            for t in members:
                r, e = refs[t][:valid].reshape(-1), emus[pre[t]][:valid].reshape(-1)
                if t not in picks:
                    picks[t] = np.arange(0, r.size, max(1, r.size // SAMPLE_ELEMENTS))[:SAMPLE_ELEMENTS]
                idx = picks[t][picks[t] < r.size]
                r64, e32 = r[idx].astype(np.float64), e[idx]
                lo, hi, div = _levels(t, unsigned)
                scales = (max(group_amax, MIN_AMAX) * fractions / div).astype(np.float32)[:, None]
                q = np.clip(np.rint(e32[None, :] / scales), lo, hi) * scales
                errors[root] += ((q - r64[None, :]) ** 2).sum(axis=1)
    start_db = float("inf") if noise == 0 else 10 * float(np.log10(signal / noise))
    chosen = dict(start)
    result = RangeSearch(chosen, start_sqnr_db=start_db, searched_sqnr_db=start_db)  # no change proposed: = start
    for root, members in searchable.items():
        err = errors[root]
        best = int(np.argmin(err))
        group_amax = max(start[m] for m in members)
        gain = 10 * float(np.log10(err[0] / err[best])) if err[best] > 0 and err[0] > 0 else 0.0
        for t in members:
            chosen[t] = group_amax * float(fractions[best])
        result.groups.append(GroupChoice(members, group_amax, group_amax * float(fractions[best]), gain))
    # local error is a proxy: clipping a heavy-tailed tensor can win locally and lose at the output, where its
    # outliers carry the signal. So the changes are applied in order of local gain and the best prefix on the
    # output wins (all, half, a quarter, an eighth, none): four extra emulator runs, never worse than max.
    order = sorted((g for g in result.groups if g.amax != g.start_amax), key=lambda g: -g.gain_db)
    best_db, best_amax = start_db, dict(start)
    fp32 = Reference(reference)
    for count in dict.fromkeys(max(1, len(order) // d) for d in (1, 2, 4, 8)) if order else ():
        trial = dict(start)
        for group in order[:count]:
            for t in group.tensors:
                trial[t] = group.amax
        searched, _ = build(model, plan, trial, unsigned)
        db = output_sqnr(fp32, searched, source, batch_size)
        if count == len(order):
            result.searched_sqnr_db = db
        if db > best_db:
            best_db, best_amax = db, trial
    result.amax, result.kept_start = best_amax, best_amax == start
    result.final_sqnr_db = best_db
    result.seconds = time.perf_counter() - began
    return result
