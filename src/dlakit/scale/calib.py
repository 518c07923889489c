"""Calibration's statistics pass sharded over a Ray cluster, equal to the serial pass bit for bit.

A tensor's histogram range starts at the largest |x| of the first batch that has a non-zero value and only ever
doubles, and ``TensorStats.measure`` bins without clamping at the top bin, so counts binned at a range re-bin exactly
(``i // 2**k``) to any range a power of two larger. The driver measures the first batch itself and hands every
shard that starting range; a shard bins each of its batches at the range its own batches so far need (never more
than the serial run's at that batch) and sends back one :class:`~dlakit.quantize.calibrators.BatchObservation`
per tensor and batch. The driver folds them in batch order with the serial code's own ``TensorStats.fold``: the
extremes, counts and the float additions of the (sampled, weighted) histogram are the serial run's, in its order.
Summing each shard's histogram and merging the sums would not be: the weights of sampled tensors are not whole
numbers, so the float sums depend on their grouping.

A tensor that is exactly zero (or not finite) throughout the first batch has no starting range yet: the driver
measures the next few batches too; if it is zero in those as well, a shard starts it at its own first non-zero
batch, which is the serial one only for the first shard that sees it, and shards whose starting range turns out
wrong are run again (on the driver) with the right one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnx

from dlakit.quantize.calibrators import BatchObservation, Calibrator, TensorStats
from dlakit.quantize.data import DataSource
from dlakit.quantize.runtime import stream_activations
from dlakit.scale import Pool, run_shards
from dlakit.scale.data import SampleRange, shards_of, slice_source

#: batches after the first that the driver measures for the starting range of tensors zero throughout the first
START_BATCHES = 3


@dataclass(frozen=True)
class CalibJob:
    model: onnx.ModelProto
    tensors: list[str]
    histogram: bool
    batch_size: int
    budget_bytes: int
    sizes: dict[str, int]
    bases: dict[str, float]  # tensor -> the range its histogram starts at (the serial run's)


def _observe(job: CalibJob, part: DataSource, bases: dict[str, float]) -> tuple[int, dict[str, list[BatchObservation]]]:
    """Samples seen and, per tensor (in the serial run's order), one observation per batch of ``part``."""
    local: dict[str, TensorStats] = {}
    records: dict[str, list[BatchObservation]] = {}

    def sink(name: str, values: Any) -> None:
        if name not in local:
            local[name] = TensorStats(histogram=job.histogram)
            if name in bases:
                local[name]._grow(bases[name])
            records[name] = []
        obs = local[name].measure(values)
        local[name].fold(obs)
        if obs.counts is not None:
            obs.counts = obs.counts.astype("int32")  # at most 65,536 sampled values per batch: half the bytes
        records[name].append(obs)

    samples = stream_activations(job.model, part, job.tensors, sink, job.batch_size, job.budget_bytes, job.sizes,
                                 progress=False)
    return samples, records


def _calib_shard(job: CalibJob, part: SampleRange) -> tuple[int, dict[str, list[BatchObservation]]]:
    return _observe(job, part, job.bases)


def _fits(stats: dict[str, TensorStats], records: dict[str, list[BatchObservation]]) -> bool:
    """Whether every tensor's counts in ``records`` re-bin exactly to the ranges ``stats`` will grow to."""
    for name, observations in records.items():
        st = stats.get(name)
        first = next((o for o in observations if o.counts is not None), None)
        if st is None or st.hist is None or first is None:
            continue  # the serial run starts this tensor's range at this shard's first non-zero batch too
        ratio = max(st.hist_range, first.hist_range) / min(st.hist_range, first.hist_range)
        whole = round(ratio)
        if whole != ratio or whole & (whole - 1):
            return False
    return True


def sharder(where: Pool | None) -> Callable[..., int] | None:
    """What :func:`dlakit.quantize.calibrate` calls to run its statistics pass on ``where`` (None: run it there)."""
    if where is None:
        return None

    def sharded(model: onnx.ModelProto, source: DataSource, calibrator: Calibrator, tensors: list[str],
                batch_size: int, budget_bytes: int, sizes: dict[str, int], progress: bool = True) -> int:
        return calibrate_sharded(model, source, calibrator, tensors, batch_size, budget_bytes, sizes, where, progress)

    return sharded


def calibrate_sharded(model: onnx.ModelProto, source: DataSource, calibrator: Calibrator, tensors: list[str],
                      batch_size: int, budget_bytes: int, sizes: dict[str, int], where: Pool,
                      progress: bool = True) -> int:
    """:func:`dlakit.quantize.runtime.stream_activations` into ``calibrator.observe``, its samples sharded over
    ``where``; fills ``calibrator.stats`` exactly as the serial pass does and returns the samples seen."""
    histogram = calibrator.needs_histogram
    bases: dict[str, float] = {}
    probe = CalibJob(model, tensors, histogram, batch_size, budget_bytes, sizes, {})
    # the starting ranges: the first batch's (and, for tensors zero throughout it, the next few batches')
    for start, stop in ((0, 1), (1, 1 + START_BATCHES)) if histogram else ():
        if start * batch_size >= len(source) or (start and len(bases) == len(tensors)):
            break
        _, seen = _observe(probe, slice_source(source, start * batch_size, min(stop * batch_size, len(source))), {})
        for name, observations in seen.items():
            first = next((o for o in observations if o.counts is not None), None)
            if name not in bases and first is not None:
                bases[name] = first.hist_range
    job = CalibJob(model, tensors, histogram, batch_size, budget_bytes, sizes, bases)
    shards = shards_of(source, batch_size, where)
    parts = run_shards(_calib_shard, job, shards, where,
                       f"calibrating on {len(source)} samples on {where.workers} workers", progress)
    samples = 0
    for shard, (seen, records) in zip(shards, parts, strict=True):
        if not _fits(calibrator.stats, records):  # a tensor zero in the first batch, started elsewhere: again,
            # from the ranges so far (a power-of-two multiple of a starting range serves as one: it re-bins exactly)
            ranges = {n: st.hist_range for n, st in calibrator.stats.items() if st.hist is not None}
            seen, records = _observe(job, shard.payload, ranges)
        samples += seen
        for name, observations in records.items():
            if name not in calibrator.stats:
                calibrator.stats[name] = TensorStats(histogram=histogram)
            for obs in observations:
                calibrator.stats[name].fold(obs)
    return samples

