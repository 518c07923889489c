"""Streaming range calibrators: per-tensor statistics that never keep activations in memory.

Every calibrator sees each activation batch once and keeps O(bins) state per tensor. One :class:`TensorStats`
records everything the methods need (extremes, exact-zero count, a 2048-bin histogram of |x|), so a calibration run
can be scored with max, entropy, percentile and MSE without running the model again.

DLA INT8 is symmetric per tensor, so all methods work on |x|: a never-negative tensor (ReLU/ReLU6 output) keeps
its 127 positive levels, and the histogram is not wasted on an empty negative half (the signed-histogram KL search
clipped ReLU6 outputs from 6.0 to 0.4-2.3 in the measured baseline, int8_baseline.md pitfall 2). Exact zeros
(ReLU's dead half, padding) quantize exactly at any scale, so they are counted apart and do not vote in the search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dlakit.choices import METHODS

HIST_BINS = 2048
QUANT_LEVELS = 128  # EntropyCalibration2 merges the histogram into 128 levels (the positive half of INT8)
#: values per tensor and batch that enter the histogram (every value enters the extremes and zero count)
HIST_SAMPLE_LIMIT = 1 << 16


@dataclass
class BatchObservation:
    """One batch of one tensor as :meth:`TensorStats.measure` sees it: what :meth:`TensorStats.fold` adds. A
    sharded calibration sends these back in batch order and folds them as the serial run does."""

    nonfinite: int = 0
    lo: float = 0.0
    hi: float = 0.0
    total: int = 0
    zeros: int = 0
    weight: float = 1.0
    hist_range: float = 0.0
    counts: np.ndarray | None = None


@dataclass
class TensorStats:
    """Running statistics of one tensor: exact extremes and a histogram of |x| whose range only grows by
    powers of two, so that re-binning merges whole bins and stays exact."""

    bins: int = HIST_BINS
    histogram: bool = True
    minimum: float = math.inf
    maximum: float = -math.inf
    count: int = 0
    zeros: int = 0
    hist: np.ndarray | None = None
    hist_range: float = 0.0
    nonfinite: int = 0

    @property
    def amax(self) -> float:
        return max(abs(self.minimum), abs(self.maximum)) if self.count else 0.0

    @property
    def never_negative(self) -> bool:
        return self.count > 0 and self.minimum >= 0.0

    def update(self, values: np.ndarray) -> None:
        self.fold(self.measure(values))

    def measure(self, values: np.ndarray) -> BatchObservation:
        """What one batch adds to these statistics, without adding it: the extremes, counts and the histogram
        counts of |x| binned at the range :meth:`fold` will grow to (bin indices not clamped at the top bin, so
        that the counts can be re-binned exactly to any power-of-two larger range)."""
        flat = np.asarray(values, dtype=np.float32).ravel()
        if flat.size == 0:
            return BatchObservation()
        lo, hi, total = float(flat.min()), float(flat.max()), flat.size
        nonfinite = 0
        if not (math.isfinite(lo) and math.isfinite(hi)):
            finite = np.isfinite(flat)
            nonfinite = int(flat.size - finite.sum())
            flat = flat[finite]
            if flat.size == 0:
                return BatchObservation(nonfinite)
            total = flat.size
            lo, hi = float(flat.min()), float(flat.max())
        obs = BatchObservation(nonfinite, lo, hi, total)
        if not self.histogram:
            return obs
        top = max(abs(lo), abs(hi))
        # an evenly strided sample bounds the cost of huge tensors; the extremes above came from every value
        step = -(-flat.size // HIST_SAMPLE_LIMIT)
        if step > 1:
            flat = flat[::step]
        obs.weight = total / flat.size
        obs.zeros = int(flat.size - np.count_nonzero(flat))
        if top == 0.0:
            return obs
        obs.hist_range = self._grown_range(top)
        scaled = np.abs(flat)
        np.multiply(scaled, np.float32(self.bins / obs.hist_range), out=scaled)
        obs.counts = np.bincount(scaled.astype(np.intp), minlength=self.bins)
        return obs

    def fold(self, obs: BatchObservation) -> None:
        """Add one batch (a :meth:`measure` of it), binned at this range or at one a power of two smaller."""
        self.nonfinite += obs.nonfinite
        if not obs.total:
            return
        self.minimum, self.maximum = min(self.minimum, obs.lo), max(self.maximum, obs.hi)
        self.count += obs.total
        if not self.histogram:
            return
        top = max(abs(obs.lo), abs(obs.hi))
        self._grow(top)
        self.zeros += round(obs.zeros * obs.weight)
        if top == 0.0 or obs.counts is None:
            return
        counts = obs.counts
        factor = round(self.hist_range / obs.hist_range)
        if factor != 1:
            if factor < 1 or factor & (factor - 1) or factor * obs.hist_range != self.hist_range:
                raise ValueError(f"counts binned at range {obs.hist_range} cannot be re-binned to {self.hist_range}")
            counts = np.bincount(np.arange(counts.size) // factor, weights=counts, minlength=self.bins).astype(np.int64)
        clamped = counts[: self.bins].astype(np.float64)  # indices at or above the top bin count in it
        clamped[self.bins - 1] += counts[self.bins:].sum()
        clamped[0] -= obs.zeros  # exact zeros are tracked apart
        assert self.hist is not None
        self.hist += clamped * obs.weight

    def _grown_range(self, top: float) -> float:
        """The histogram range after seeing ``top``: the first one's, doubled until it holds ``top``."""
        if self.hist is None:
            return top
        if top <= self.hist_range:
            return self.hist_range
        return self.hist_range * (1 << math.ceil(math.log2(top / self.hist_range)))

    def _grow(self, top: float) -> None:
        if top == 0.0:
            return
        if self.hist is None:
            self.hist = np.zeros(self.bins, np.float64)
            self.hist_range = top
            return
        if top <= self.hist_range:
            return
        factor = round(self._grown_range(top) / self.hist_range)
        if factor >= self.bins:
            merged = np.zeros(self.bins, np.float64)
            merged[0] = self.hist.sum()
        else:
            merged = np.zeros(self.bins, np.float64)
            merged[: self.bins // factor] = self.hist.reshape(-1, factor).sum(axis=1)
        self.hist = merged
        self.hist_range *= factor

    @property
    def bin_width(self) -> float:
        return self.hist_range / self.bins


def _xlogx(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def entropy_amax(stats: TensorStats, levels: int = QUANT_LEVELS) -> float:
    """TensorRT EntropyCalibration2's threshold: the clip point whose 128-level quantized distribution has the least
    KL divergence from the clipped reference distribution (outliers folded into the last kept bin).

    Same candidates and distributions as NVIDIA's reference (GTC 2017 "8-bit inference with TensorRT";
    pytorch-quantization ``_compute_amax_entropy``), evaluated for all candidates at once with prefix sums instead
    of one Python loop per candidate: O(candidates x 128) instead of O(candidates x bins) with interpreter overhead.
    """
    hist = stats.hist
    if hist is None or hist.sum() == 0:
        return stats.amax
    used = int(np.flatnonzero(hist)[-1]) + 1
    bins = hist[: max(used, levels)]
    n = len(bins)
    total = bins.sum()
    s = np.concatenate([[0.0], np.cumsum(bins)])
    nz = np.concatenate([[0], np.cumsum(bins > 0)])
    lg = np.concatenate([[0.0], np.cumsum(_xlogx(bins))])
    cand = np.arange(levels, n + 1)  # keep bins [0, i)
    c = np.arange(levels)
    start = (c[None, :] * cand[:, None] + levels - 1) // levels
    end = ((c[None, :] + 1) * cand[:, None] + levels - 1) // levels
    chunk_sum = s[end] - s[start]
    chunk_nz = nz[end] - nz[start]
    outliers = total - s[cand]
    last = bins[cand - 1]
    sum_plogp = (lg[cand] - _xlogx(last) + _xlogx(last + outliers)) / total - math.log(total)
    chunk_mass = chunk_sum.copy()
    chunk_mass[:, -1] += outliers
    with np.errstate(divide="ignore", invalid="ignore"):  # candidates with no mass below them: 0·inf, masked
        log_q = np.log(np.where(chunk_nz > 0, chunk_sum / np.maximum(chunk_nz, 1), 1.0)) - np.log(s[cand])[:, None]
        cross = np.where(chunk_nz > 0, chunk_mass * log_q, 0.0).sum(axis=1) / total
    kl = sum_plogp - cross
    kl[(last == 0) & (outliers > 0)] = np.inf
    best = len(kl) - 1 - int(np.argmin(kl[::-1]))  # ties: the widest range, as the reference does
    return float(min(cand[best] * stats.bin_width, stats.amax))


def percentile_amax(stats: TensorStats, percentile: float = 99.99) -> float:
    """The |x| below which ``percentile`` % of all values (zeros included) lie."""
    hist = stats.hist
    if hist is None or hist.sum() == 0:
        return stats.amax
    cumulative = np.cumsum(hist) + stats.zeros
    index = int(np.searchsorted(cumulative, cumulative[-1] * percentile / 100.0))
    return float(min((index + 1) * stats.bin_width, stats.amax))


def mse_amax(stats: TensorStats, stride: int = 4) -> float:
    """The clip point minimising the expected squared error of symmetric INT8 over the histogram (bin centres)."""
    hist = stats.hist
    if hist is None or hist.sum() == 0:
        return stats.amax
    used = int(np.flatnonzero(hist)[-1]) + 1
    width = stats.bin_width
    centres = (np.arange(used) + 0.5) * width
    counts = hist[:used]
    candidates = np.unique(np.concatenate([np.arange(max(used // 16, 1), used + 1, stride), [used]]))
    amaxes = np.minimum(candidates * width, stats.amax)
    scale = amaxes[:, None] / 127.0
    quantized = np.minimum(np.rint(centres[None, :] / scale), 127.0) * scale
    errors = ((centres[None, :] - quantized) ** 2 * counts[None, :]).sum(axis=1)
    return float(amaxes[int(np.argmin(errors))])


@dataclass
class Calibrator:
    """Collects :class:`TensorStats` for named tensors; :meth:`ranges` turns them into amax per method."""

    method: str = "entropy"
    percentile: float = 99.99
    stats: dict[str, TensorStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            from dlakit.errors import OptionError

            raise OptionError(f"{{method}}: unknown calibration method '{self.method}'; choose one of: "
                              f"{', '.join(METHODS)}", "method")

    @property
    def needs_histogram(self) -> bool:
        return self.method != "max"

    def observe(self, name: str, values: np.ndarray) -> None:
        if name not in self.stats:
            self.stats[name] = TensorStats(histogram=self.needs_histogram)
        self.stats[name].update(values)

    def ranges(self, method: str | None = None) -> dict[str, float]:
        """amax per tensor for ``method`` (default: the calibrator's own)."""
        method = method or self.method
        compute = {
            "max": lambda st: st.amax,
            "entropy": entropy_amax,
            "percentile": lambda st: percentile_amax(st, self.percentile),
            "mse": mse_amax,
        }[method]
        return {name: float(compute(st)) for name, st in self.stats.items()}
