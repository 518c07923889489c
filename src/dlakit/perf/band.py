"""The error band of an estimate: calibrated where the fit data reach, widened where the model extrapolates.

The base band is the :data:`~dlakit.perf.calibrate.BAND_QUANTILE` quantile (90%, aimed at 80% coverage) of the
nested cross-validation's held-out errors (perf.toml ``[calibration] error_band_pct``); ``bench_estimate.py``
prints how many held-out rows it actually covers, each fold's band taken from that fold's inner cross-validation
only. Outside the fit data the band is multiplied by one factor per kind of extrapolation (perf.toml ``[band]``:
depthwise layers, FP16, Xavier, an unseen batch, one core, ...), because each rests on a derived or guessed
parameter that no fitted row checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from dlakit.perf.hardware import PerfData
from dlakit.vocab import Precision

#: The band never claims more than this (a -90% bound is already "we do not know").
MAX_BAND_PCT = 90.0
#: Batches present in the fit data (NVIDIA's rows: 1 and 2).
FIT_BATCHES = (1, 2)


def extrapolations(*, generation: int, fit_platform: bool, precision: str, cores: int, batch: int,
                   kinds: Iterable[str], clocks_inside: bool = True, unfit_kinds: bool = False,
                   gpu_fallback: bool = False) -> list[str]:
    """Tags (keys of perf.toml ``[band]``) of the ways an estimate leaves the fit data."""
    tags = []
    if generation != 2:
        tags.append("xavier")
    elif not fit_platform:
        tags.append("other_orin")
    if precision != Precision.INT8:
        tags.append("fp16")
    if cores != 2:
        tags.append("one_core")
    if batch not in FIT_BATCHES:
        tags.append("unseen_batch")
    if "depthwise" in set(kinds):
        tags.append("depthwise")
    if not clocks_inside:
        tags.append("clocks")
    if unfit_kinds:
        tags.append("layer_kinds")
    if gpu_fallback:
        tags.append("gpu_fallback")
    return tags


def widened(base_pct: float, tags: Iterable[str], data: PerfData) -> float:
    """``base_pct`` times the factor of every tag, capped at :data:`MAX_BAND_PCT`."""
    factor = math.prod(data.band[tag].value for tag in tags)
    return round(min(MAX_BAND_PCT, base_pct * factor), 1)
