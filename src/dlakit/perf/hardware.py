"""Hardware parameters and calibration of the DLA performance model, loaded from ``data/perf.toml``.

Hardware facts are data, not code: each parameter carries its source and a confidence, so the estimate can say
which of its inputs are guesses. The file is validated when loaded, and a broken entry fails loudly naming itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from dlakit.data.opdata import check_confidence, read


@dataclass(frozen=True)
class Param:
    """One sourced number: the value, where it comes from, how sure we are."""

    value: float
    source: str
    confidence: str = "high"


class ParamSet:
    """Sourced parameters read as attributes (``spec.int8_macs_per_clk``)."""

    params: dict[str, Param]

    def __getattr__(self, key: str) -> float:
        try:
            return self.params[key].value
        except KeyError:
            raise AttributeError(key) from None


@dataclass(frozen=True)
class DlaSpec(ParamSet):
    """One DLA core of a generation: MAC array geometry, buffers and the rates of the side units."""

    generation: int
    name: str
    params: dict[str, Param]

    def low_confidence(self) -> list[str]:
        return sorted(k for k, p in self.params.items() if p.confidence == "low")


@dataclass(frozen=True)
class Calibration:
    """The fitted global parameters, with how and how well they were fitted."""

    version: str
    fitted: str
    data: str
    procedure: str
    compute_efficiency: float
    dram_efficiency: float
    op_overhead_us: float
    overlap: float
    rows: int
    median_abs_pct: float
    lono_median_abs_pct: float
    lono_p90_abs_pct: float
    error_band_pct: float
    #: nested cross-validation (structure chosen without the held-out network): median / worst |err| and the
    #: share of held-out rows inside their fold's band (percent); 0 = not computed (older calibration)
    nested_median_abs_pct: float = 0.0
    nested_max_abs_pct: float = 0.0
    band_coverage_pct: float = 0.0
    networks: tuple[str, ...] = ()
    layer_kinds: tuple[str, ...] = ()
    residuals: tuple[dict[str, Any], ...] = field(default=())
    #: fixed cost per inference of one DLA loadable, µs at Falcon 844.8 MHz (dlakit.perf.cost.loadable_seconds)
    launch_us: float = 0.0
    #: share of the derived depthwise rate (generation depthwise_macs_per_clk) the depthwise path achieves
    depthwise_efficiency: float = 1.0

    #: the per-op parameters, in the order of :meth:`vector` (dlakit.perf.cost.op_times)
    PER_OP = ("compute_efficiency", "dram_efficiency", "op_overhead_us", "overlap", "depthwise_efficiency")

    def vector(self) -> list[float]:
        return [float(getattr(self, k)) for k in self.PER_OP]


@dataclass(frozen=True)
class PerfData:
    generations: dict[int, DlaSpec]
    model: dict[str, Param]
    gpu: dict[str, Param]
    calibration: Calibration
    #: error-band widening factor per kind of extrapolation (dlakit.perf.band)
    band: dict[str, Param] = field(default_factory=dict)

    def spec(self, generation: int) -> DlaSpec:
        if generation not in self.generations:
            raise ValueError(f"perf.toml: no DLA generation {generation}")
        return self.generations[generation]


DLA_KEYS = (
    "int8_macs_per_clk", "fp16_macs_per_clk", "atomic_c", "atomic_k", "spatial_lanes", "cbuf_bytes", "sram_bytes",
    "depthwise_macs_per_clk", "sdp_elems_per_clk", "pdp_elems_per_clk", "cdp_elems_per_clk", "dma_bytes_per_clk",
    "depthwise_unit", "sparse", "sparse_min_channels", "image_input_max_channels", "post_extension_lines",
    "core_bus_share", "cbuf_banks", "feature_atom_bytes",
)
MODEL_KEYS = ("sram_activation_share", "cbuf_weight_share", "cbuf_rows_bank_aligned", "channel_views",
              "sram_per_image")
#: model keys that may be 0 (switches)
MODEL_SWITCHES = ("cbuf_rows_bank_aligned", "channel_views", "sram_per_image")
BAND_KEYS = ("depthwise", "fp16", "xavier", "other_orin", "unseen_batch", "one_core", "clocks", "layer_kinds",
             "gpu_fallback")
#: the GPU itself is modelled in dlakit.perf.gpu (data/gpu.toml); perf.toml keeps what crossing to it costs
GPU_KEYS = ("transition_us", "default_mhz")


@cache
def load_perf_data() -> PerfData:
    return parse_perf_data(read("perf.toml"))


def parse_perf_data(data: dict[str, Any]) -> PerfData:
    """Build and check the parameter set; every missing or out-of-range entry is named."""
    generations = {}
    for key, entry in data.get("generation", {}).items():
        gen = int(key)
        params = _params(f"generation.{key}", entry, DLA_KEYS)
        spec = DlaSpec(generation=gen, name=str(entry.get("name", key)), params=params)
        if spec.atomic_c * spec.atomic_k * spec.spatial_lanes != spec.int8_macs_per_clk:
            raise ValueError(f"perf.toml: generation.{key}: atomic_c x atomic_k x spatial_lanes != int8_macs_per_clk")
        if not 0 < spec.core_bus_share <= 1:
            raise ValueError(f"perf.toml: generation.{key}: core_bus_share must be in (0, 1]")
        generations[gen] = spec
    if not {1, 2} <= set(generations):
        raise ValueError("perf.toml: generations 1 (Xavier) and 2 (Orin) are both needed")
    model = _params("model", data.get("model", {}), MODEL_KEYS)
    for key in MODEL_KEYS:
        if not (0 <= model[key].value <= 1 if key in MODEL_SWITCHES else 0 < model[key].value <= 1):
            raise ValueError(f"perf.toml: model.{key} must be in (0, 1]")
    gpu = _params("gpu", data.get("gpu", {}), GPU_KEYS)
    band = _params("band", data.get("band", {}), BAND_KEYS)
    for key in BAND_KEYS:
        if band[key].value < 1:
            raise ValueError(f"perf.toml: band.{key} must be >= 1 (a widening factor)")
    return PerfData(generations, model, gpu, _calibration(data.get("calibration", {})), band)


def _params(where: str, entry: dict[str, Any], keys: tuple[str, ...], file: str = "perf.toml") -> dict[str, Param]:
    params = {}
    for key in keys:
        raw = entry.get(key)
        if not isinstance(raw, dict) or "value" not in raw or not raw.get("source"):
            raise ValueError(f"{file}: {where}.{key} must be {{ value = ..., source = \"...\" }}")
        value = raw["value"]
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{file}: {where}.{key} must be a non-negative number or a boolean")
        confidence = raw.get("confidence", "high")
        check_confidence(f"{file}: {where}.{key}", confidence)
        params[key] = Param(float(value), str(raw["source"]), confidence)
    return params


def _calibration(entry: dict[str, Any]) -> Calibration:
    try:
        calib = Calibration(
            version=str(entry["version"]),
            fitted=str(entry["fitted"]),
            data=str(entry["data"]),
            procedure=str(entry["procedure"]),
            compute_efficiency=float(entry["compute_efficiency"]),
            dram_efficiency=float(entry["dram_efficiency"]),
            op_overhead_us=float(entry["op_overhead_us"]),
            overlap=float(entry["overlap"]),
            rows=int(entry["rows"]),
            median_abs_pct=float(entry["median_abs_pct"]),
            lono_median_abs_pct=float(entry["lono_median_abs_pct"]),
            lono_p90_abs_pct=float(entry["lono_p90_abs_pct"]),
            error_band_pct=float(entry["error_band_pct"]),
            nested_median_abs_pct=float(entry.get("nested_median_abs_pct", 0.0)),
            nested_max_abs_pct=float(entry.get("nested_max_abs_pct", 0.0)),
            band_coverage_pct=float(entry.get("band_coverage_pct", 0.0)),
            networks=tuple(entry.get("networks", [])),
            layer_kinds=tuple(entry.get("layer_kinds", [])),
            residuals=tuple(entry.get("residuals", [])),
            launch_us=float(entry["launch_us"]),
            depthwise_efficiency=float(entry["depthwise_efficiency"]),
        )
    except KeyError as exc:
        raise ValueError(f"perf.toml: calibration lacks {exc}") from None
    if not (0 < calib.compute_efficiency <= 1.5 and 0 < calib.dram_efficiency <= 1.5 and 0 <= calib.overlap <= 1
            and 0 < calib.depthwise_efficiency <= 1 and calib.launch_us >= 0):
        raise ValueError("perf.toml: calibration parameters out of range (efficiencies in (0, 1.5], depthwise "
                         "efficiency in (0, 1], overlap in [0, 1], launch_us >= 0)")
    return calib
