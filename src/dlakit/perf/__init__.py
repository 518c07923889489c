"""``dlakit estimate``: a calibrated per-layer performance model of the DLA.

Typical use::

    prep = prepare(load_model("net.onnx"), resolve_target("agx-orin-64gb"))
    cond, label = conditions_for(prep.target, power_mode="30W")
    result = evaluate(prep, cond, label)   # result.images_per_second, result.layers, result.error_band_pct
"""

from dlakit.perf.cost import Conditions
from dlakit.perf.estimate import Estimate, LayerEstimate, Prepared, conditions_for, evaluate, prepare, price
from dlakit.perf.hardware import Calibration, DlaSpec, PerfData, load_perf_data
from dlakit.perf.ops import DlaOp, build_ops

__all__ = [
    "Calibration",
    "Conditions",
    "DlaOp",
    "DlaSpec",
    "Estimate",
    "LayerEstimate",
    "PerfData",
    "Prepared",
    "build_ops",
    "conditions_for",
    "evaluate",
    "load_perf_data",
    "prepare",
    "price",
]
