"""Streaming calibrators: the vectorised KL search equals NVIDIA's reference loop, histograms grow exactly."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dlakit.errors import DlakitError
from dlakit.quantize.calibrators import (
    HIST_BINS,
    Calibrator,
    TensorStats,
    entropy_amax,
    mse_amax,
    percentile_amax,
)


def reference_entropy_bin(bins: np.ndarray, levels: int = 128) -> int:
    """pytorch-quantization's ``_compute_amax_entropy`` loop (the published TensorRT EntropyCalibration2 recipe),
    returning the number of kept bins; KL divergence as scipy.stats.entropy computes it."""
    best, best_kl = 0, np.inf
    for i in range(levels, len(bins) + 1):
        chunk = np.floor(np.arange(i) * levels / i).astype(int)
        chunk[bins[:i] == 0] = -1
        sums = np.zeros(levels)
        for index, c in enumerate(chunk):
            if c >= 0:
                sums[c] += bins[index]
        counts = Counter(chunk)
        q = np.array([sums[c] / counts[c] if c >= 0 else 0.0 for c in chunk])
        p = bins[:i].astype(float).copy()
        p[-1] += bins[i:].sum()
        p, q = p / p.sum(), q / q.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.sum(np.where(p > 0, p * np.log(p / q), 0.0))
        if kl <= best_kl:  # ties: the later (wider) candidate, as the reference's reversed argmin
            best, best_kl = i, kl
    return best


@pytest.mark.parametrize("kind", ["gauss", "relu", "laplace", "bimodal"])
def test_entropy_matches_reference_loop(kind):
    rng = np.random.default_rng(7)
    values = {"gauss": rng.normal(size=50_000), "relu": np.maximum(rng.normal(size=50_000), 0),
              "laplace": rng.laplace(size=50_000),
              "bimodal": np.concatenate([rng.normal(size=40_000), 8 + rng.normal(size=500)])}[kind]
    stats = TensorStats(bins=384)
    stats.update(values.astype(np.float32))
    assert stats.hist is not None
    kept = reference_entropy_bin(stats.hist)
    assert entropy_amax(stats) == pytest.approx(min(kept * stats.bin_width, stats.amax))


def test_histogram_grows_by_merging_whole_bins():
    rng = np.random.default_rng(0)
    stats, whole = TensorStats(), []
    for scale in (0.1, 0.3, 5.0, 2.0, 40.0):
        batch = (rng.normal(size=5000) * scale).astype(np.float32)
        whole.append(batch)
        stats.update(batch)
    values = np.concatenate(whole)
    assert stats.hist is not None and len(stats.hist) == HIST_BINS  # O(bins) memory whatever the data
    assert stats.hist.sum() + stats.zeros == values.size
    assert stats.amax == pytest.approx(np.abs(values).max())
    assert stats.hist_range >= stats.amax
    # every count sits in the bin its value falls into at the final resolution (up to float32 rounding at edges)
    expected = np.bincount(np.minimum((np.abs(values) / stats.bin_width).astype(int), HIST_BINS - 1),
                           minlength=HIST_BINS)
    assert np.abs(stats.hist - expected).sum() <= values.size * 1e-3


def test_exact_zeros_are_kept_apart_and_sign_is_tracked():
    stats = TensorStats()
    stats.update(np.array([0.0, 0.0, 0.0, 1.0, 2.0, 6.0], np.float32))
    assert stats.zeros == 3 and stats.never_negative
    assert stats.hist is not None and stats.hist.sum() == 3
    stats.update(np.array([-0.5], np.float32))
    assert not stats.never_negative


def test_large_tensors_are_sampled_for_the_histogram_but_extremes_are_exact():
    values = np.zeros(1_000_003, np.float32)
    values[123_457] = 9.0  # not on the sampling stride
    values[::2] = 1.0
    stats = TensorStats()
    stats.update(values)
    assert stats.amax == 9.0
    assert stats.hist is not None and abs(stats.hist.sum() + stats.zeros - values.size) < values.size * 0.01


def test_methods_order_on_a_heavy_tail():
    rng = np.random.default_rng(3)
    stats = TensorStats()
    for _ in range(4):
        stats.update(rng.laplace(size=100_000).astype(np.float32))
    assert percentile_amax(stats, 99.99) < stats.amax
    assert mse_amax(stats) < stats.amax
    assert entropy_amax(stats) <= stats.amax
    gauss = TensorStats()
    gauss.update(rng.normal(size=400_000).astype(np.float32))
    assert percentile_amax(gauss, 99.99) == pytest.approx(3.89, abs=0.15)


def test_calibrator_interface_and_unknown_method():
    calibrator = Calibrator("mse")
    calibrator.observe("a", np.linspace(-3, 3, 1000, dtype=np.float32))
    calibrator.observe("b", np.zeros(10, np.float32))
    ranges = {m: calibrator.ranges(m) for m in ("max", "entropy", "percentile", "mse")}
    assert ranges["max"] == {"a": 3.0, "b": 0.0}
    assert all(0 < r["a"] <= 3.0 for r in ranges.values())
    with pytest.raises(DlakitError, match=r"^method: unknown calibration method"):
        Calibrator("kl")
