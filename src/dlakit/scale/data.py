"""``eval`` and ``emulate`` (``--compare``) sharded over a Ray cluster, equal to the serial run bit for bit.

The samples are cut into ranges of whole batches (:func:`dlakit.scale.batch_ranges`), so every worker feeds ONNX
Runtime the very batches the serial run feeds it (the last one padded the same way). Workers send back per-batch
values (outputs, or the per-batch statistics of :func:`dlakit.quantize.emulate.batch_stats`); the driver merges them
in batch order with the serial code's own functions, so the floats are added in the same order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dlakit.quantize.data import DataSource, Preset
from dlakit.scale import SHARDS_PER_WORKER, Pool, Shard, batch_ranges, run_shards


@dataclass
class SampleRange(DataSource):
    """Samples ``[skip, skip + count)`` of the files of a source (a shard of it)."""

    skip: int = 0
    count: int = 0

    def __len__(self) -> int:
        return self.count

    def samples(self):  # type: ignore[override]
        seen = produced = 0
        for path in self.files:
            for sample in self._read(path):
                if seen < self.skip:
                    seen += 1
                    continue
                if produced >= self.count:
                    return
                produced += 1
                yield sample


def slice_source(source: DataSource, start: int, stop: int) -> SampleRange:
    """The samples ``[start, stop)`` of ``source``, reading only the files that hold them."""
    if source._counts is None:  # one sample per file (images)
        return SampleRange(source.path, source.inputs, source.files[start:stop], source.kind, source.preset,
                           None, None, 0, stop - start)
    files, counts, skip, first = [], [], 0, 0
    for path, count in zip(source.files, source._counts, strict=True):
        last = first + count
        if last > start and first < stop:
            if not files:
                skip = start - first
            files.append(path)
            counts.append(count)
        first = last
    return SampleRange(source.path, source.inputs, files, source.kind, source.preset, None, counts, skip,
                       stop - start)


def shards_of(source: DataSource, batch_size: int, where: Pool) -> list[Shard]:
    shards = []
    for i, (start, stop) in enumerate(batch_ranges(len(source), batch_size, where.workers * SHARDS_PER_WORKER)):
        part = slice_source(source, start, stop)
        label = f"samples {start + 1}-{stop} from {part.files[0]}"
        shards.append(Shard(i, label, part, stop - start))
    return shards


#: (job token, quantized, graph name, outputs) -> ONNX Runtime session of the job this worker ran last: its later
#: shards reuse the sessions (making one costs seconds for a large model)
_SESSIONS: dict[tuple[Any, ...], Any] = {}


def _cached_session(token: str) -> Any:
    from dlakit.quantize.runtime import session

    if any(key[0] != token for key in _SESSIONS):
        _SESSIONS.clear()

    def session_of(model: onnx.ModelProto, quantized: bool) -> Any:
        key = (token, quantized, model.graph.name, tuple(o.name for o in model.graph.output))
        if key not in _SESSIONS:
            _SESSIONS[key] = session(model, quantized)
        return _SESSIONS[key]

    return session_of


def _token() -> str:
    return uuid.uuid4().hex


# --- eval ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalJob:
    model: onnx.ModelProto
    emulated: onnx.ModelProto | None
    batch_size: int
    token: str = field(default_factory=_token)


def _eval_shard(job: EvalJob, part: SampleRange) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    from dlakit.quantize.emulate import output_batches

    cached = _cached_session(job.token)
    fp32 = output_batches(job.model, part, job.batch_size, False, session_of=cached)[0]
    int8 = None if job.emulated is None else output_batches(job.emulated, part, job.batch_size, True,
                                                            session_of=cached)[0]
    return fp32, int8


def evaluate_sharded(model: onnx.ModelProto, emulated: onnx.ModelProto | None, files: list[Path],
                     labels: np.ndarray, input_name: str, sample_shape: tuple[int, ...], preset: Preset,
                     batch_size: int, where: Pool, progress: bool = True) -> dict[str, object]:
    """:func:`dlakit.quantize.evaluate.evaluate`, its images sharded over ``where``."""
    from dlakit.quantize.emulate import join_outputs
    from dlakit.quantize.evaluate import summarize

    source = DataSource(files[0].parent, {input_name: sample_shape}, files, "images", preset)
    parts = run_shards(_eval_shard, EvalJob(model, emulated, batch_size), shards_of(source, batch_size, where),
                       where, f"evaluating {len(files)} images on {where.workers} workers", progress)
    fp32 = join_outputs([[b for p in parts for b in p[0]]])[0]
    int8 = None if emulated is None else join_outputs([[b for p in parts for b in p[1]]])[0]
    return summarize(fp32, int8, labels)


# --- emulate ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmulateJob:
    emulation: Any  # dlakit.quantize.emulate.Emulation
    batch_size: int
    compare: bool
    token: str = field(default_factory=_token)


def _emulate_shard(job: EmulateJob, part: SampleRange) -> tuple[list, list, list | None]:
    from dlakit.quantize.emulate import layer_batch_stats, output_batches

    emulation, cached = job.emulation, _cached_session(job.token)
    reference = output_batches(emulation.model, part, job.batch_size, False, session_of=cached)
    emulated = output_batches(emulation.emulated.model, part, job.batch_size, True, session_of=cached)
    layers = None
    if job.compare:
        layers = [stats for stats, _ in layer_batch_stats(emulation.model, emulation.emulated, part,
                                                          job.batch_size, cached)]
    return reference, emulated, layers


def emulate_sharded(emulation: Any, source: DataSource, batch_size: int, compare: bool, where: Pool,
                    progress: bool = True) -> tuple[list[dict[str, object]], list[Any] | None]:
    """``(output_errors(...), compare_layers(...) or None)`` of ``emulate``, its samples sharded over ``where``."""
    from dlakit.quantize.emulate import TensorError, compared_tensors, join_outputs, output_rows, rank_layers

    parts = run_shards(_emulate_shard, EmulateJob(emulation, batch_size, compare),
                       shards_of(source, batch_size, where), where,
                       f"emulating {len(source)} samples on {where.workers} workers", progress)
    outputs = len(emulation.model.graph.output)
    reference = join_outputs([[b for p in parts for b in p[0][i]] for i in range(outputs)])
    emulated = join_outputs([[b for p in parts for b in p[1][i]] for i in range(outputs)])
    rows = output_rows(emulation.model, reference, emulated)
    if not compare:
        return rows, None
    errors = {n: TensorError(n) for n in compared_tensors(emulation.model, emulation.emulated)}
    for part in parts:
        for stats in part[2]:
            for name, value in stats.items():
                errors[name].merge(value)
    return rows, rank_layers(emulation.model, errors)
