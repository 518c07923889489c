"""Calibration statistics measured in shards and folded in batch order equal the serial statistics bit for bit,
on adversarial batch orders (a small maximum first, a huge one later, values at the exact top of a range, sampled
tensors whose weights are not whole numbers, a tensor zero in the first batch); summing shard histograms would not."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from dlakit.quantize.calibrators import TensorStats
from dlakit.scale.calib import _fits

SAMPLED = 64 * 112 * 112  # over HIST_SAMPLE_LIMIT: every 13th value enters the histogram, weight 12.9998...


def state(st: TensorStats) -> tuple:
    hist = None if st.hist is None else st.hist.tobytes()
    return st.minimum, st.maximum, st.count, st.zeros, st.nonfinite, st.hist_range, hist


def serial(batches: list[np.ndarray], histogram: bool = True) -> TensorStats:
    st = TensorStats(histogram=histogram)
    for b in batches:
        st.update(b)
    return st


def shard(batches: list[np.ndarray], start: float | None, histogram: bool = True) -> list:
    """What a worker sends back: one observation per batch, binned at the ranges its own batches need."""
    local = TensorStats(histogram=histogram)
    if start:
        local._grow(start)
    out = []
    for b in batches:
        obs = local.measure(b)
        local.fold(obs)
        out.append(obs)
    return out


def sharded(batches: list[np.ndarray], cut: list[int], histogram: bool = True) -> TensorStats:
    first = TensorStats(histogram=histogram)
    first.update(batches[0])
    start = first.hist_range if first.hist is not None else None
    merged = TensorStats(histogram=histogram)
    bounds = [0, *cut, len(batches)]
    for lo, hi in pairwise(bounds):
        part = shard(batches[lo:hi], start, histogram)
        if not _fits({"t": merged}, {"t": part}):  # started at its own first non-zero batch: again
            part = shard(batches[lo:hi], merged.hist_range, histogram)
        for obs in part:
            merged.fold(obs)
    return merged


def adversarial(size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scales = [0.01, 1, 1, 3, 1, 1000, 0.5, 1, 40, 1, 2, 1]
    batches = [(rng.normal(size=size) * s).astype(np.float32) for s in scales]
    base = float(np.abs(batches[0]).max())
    for i, b in enumerate(batches[1:], 1):  # values at the exact top of a doubled range, where bins are clamped
        b[:3] = np.float32(base) * np.float32(2.0 ** (i % 6))
    batches[4] = np.maximum(batches[4], 0)
    batches[7][:7] = np.nan
    return batches


@pytest.mark.parametrize("size", [500, 70_000, SAMPLED])
@pytest.mark.parametrize("cut", [[1], [4], [3, 6, 9], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]])
def test_shards_folded_in_order_equal_serial(size, cut):
    batches = adversarial(size, size)
    assert state(sharded(batches, cut)) == state(serial(batches))
    assert state(sharded(batches, cut, False)) == state(serial(batches, False))


@pytest.mark.parametrize("cut", [[2], [1, 3, 5], [6]])
def test_tensor_zero_in_the_first_batch(cut):
    """No starting range from the first batch: a later shard's own start is wrong and it is measured again."""
    rng = np.random.default_rng(5)
    batches = [np.zeros(1000, np.float32), np.zeros(1000, np.float32)]
    batches += [(rng.normal(size=1000) * s).astype(np.float32) for s in (0.3, 5, 1, 0.1, 70, 2)]
    assert state(sharded(batches, cut)) == state(serial(batches))


def test_summing_shard_histograms_is_not_exact():
    """Why the driver folds per-batch observations: the weighted float sums of a sampled tensor depend on
    their grouping (and counts clamped into the top bin of a smaller range re-bin into the wrong bin)."""
    batches = adversarial(SAMPLED, 1)
    whole = serial(batches)
    first = serial(batches[:1])
    parts = []
    for lo, hi in ((0, 6), (6, 12)):
        st = TensorStats()
        st._grow(first.hist_range)
        for b in batches[lo:hi]:
            st.update(b)
        parts.append(st)
    merged = TensorStats()
    merged._grow(first.hist_range)
    for st in parts:
        merged._grow(st.hist_range)
        factor = round(merged.hist_range / st.hist_range)
        add = np.zeros(merged.bins)
        add[: merged.bins // factor] = st.hist.reshape(-1, factor).sum(axis=1)
        merged.hist += add
    assert merged.hist_range == whole.hist_range
    assert merged.hist.sum() == pytest.approx(whole.hist.sum())
    assert merged.hist.tobytes() != whole.hist.tobytes()
