"""DLA INT8 without a device: calibration, TensorRT calibration caches and Q/DQ models, emulation, evaluation.

The pieces, in the order a model goes through them:
``data`` (images / tensors, streamed) → ``plan`` (which tensors DLA needs scales for, equal-scale groups, fusions)
→ ``calibrate`` + ``calibrators`` (streaming histograms; max, entropy, percentile, MSE) → ``outputs`` (cache, JSON,
``--layerPrecisions``, Q/DQ model, trtexec) → ``emulate`` (DLA numerics on ONNX Runtime, per-layer error) →
``evaluate`` (top-1/top-5). ``qdq`` writes and reads Q/DQ graphs; ``cache`` reads and writes calibration caches.
"""

from dlakit.quantize.cache import CalibrationCache, format_cache, parse_cache, read_cache, write_cache
from dlakit.quantize.calibrate import Calibration, calibrate
from dlakit.quantize.calibrators import METHODS, Calibrator, TensorStats
from dlakit.quantize.data import PRESETS, Preset, make_preset, open_source
from dlakit.quantize.emulate import Emulation, build_emulator, compare_layers, emulation_from_scales
from dlakit.quantize.plan import QuantPlan, build_plan
from dlakit.quantize.qdq import insert_qdq, translate_qdq

__all__ = [
    "METHODS",
    "PRESETS",
    "Calibration",
    "CalibrationCache",
    "Calibrator",
    "Emulation",
    "Preset",
    "QuantPlan",
    "TensorStats",
    "build_emulator",
    "build_plan",
    "calibrate",
    "compare_layers",
    "emulation_from_scales",
    "format_cache",
    "insert_qdq",
    "make_preset",
    "open_source",
    "parse_cache",
    "read_cache",
    "translate_qdq",
    "write_cache",
]
