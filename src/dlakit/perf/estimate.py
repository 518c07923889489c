"""``estimate``: images per second and per-layer time of a network on one platform / power mode.

The expensive part (placement and fusion into DLA ops) is done once in :func:`prepare`; :func:`evaluate` then
prices the ops for any clocks, core count, precision or sparsity in milliseconds, which is what makes the
power-mode and dense/sparse tables cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dlakit.errors import DlakitError
from dlakit.model import LoadedModel, static_dims
from dlakit.perf.band import extrapolations, widened
from dlakit.perf.cost import (
    Conditions,
    core_bandwidth,
    depthwise_ops,
    dla_loadables,
    loadable_seconds,
    op_times,
    overhead_seconds,
    raw_costs,
    tensor_bytes,
)
from dlakit.perf.gpu import fallback_times, gpu_mode_for, load_gpu_data
from dlakit.perf.hardware import Calibration, DlaSpec, PerfData, load_perf_data
from dlakit.perf.ops import DlaOp, build_ops
from dlakit.targets import Target
from dlakit.vocab import Device, Precision

if TYPE_CHECKING:
    from dlakit.check import CheckReport

PRECISIONS = tuple(Precision)
#: Clock and batch ranges covered by the fit data (AGX Orin 64GB power modes, batches 1 and 2).
CALIBRATED_DLA_MHZ = (614.4, 1600.0)
CALIBRATED_BATCHES = (1, 2)
CALIBRATED_PLATFORMS = ("agx-orin-64gb",)


@dataclass
class Prepared:
    """A network placed and fused into ops, ready to be priced under any conditions."""

    name: str
    target: Target
    precision: str
    ops: list[DlaOp]
    batch: int
    placement_source: str
    fixable: int = 0

    @property
    def kinds(self) -> set[str]:
        return {layer_kind(op) for op in self.ops if op.device == Device.DLA and op.kind != "free"}


@dataclass
class LayerEstimate:
    name: str
    device: str
    kind: str
    time_us: float
    share: float
    bound: str
    macs: int
    bytes: int
    nodes: list[str]
    sparse: bool = False
    #: DRAM bytes (part of ``bytes``) fetched again because the op is tiled through the CBUF; they add to its
    #: time instead of hiding behind its compute (dlakit.perf.cost.conv_traffic)
    refetch_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "kind": self.kind, "time_us": round(self.time_us, 3),
                "share": round(self.share, 5), "bound": self.bound, "macs": self.macs, "bytes": self.bytes,
                "sparse": self.sparse, "nodes": self.nodes}


@dataclass
class Estimate:
    network: str
    platform: str
    power_mode: str
    cores: int
    batch: int
    precision: str
    sparse: bool
    images_per_second: float
    latency_ms: float
    layers: list[LayerEstimate]
    split_ms: dict[str, float]
    error_band_pct: float
    out_of_region: list[str]
    assumptions: dict[str, Any] = field(default_factory=dict)
    measured_images_per_second: float | None = None

    @property
    def images_per_second_range(self) -> tuple[float, float]:
        band = self.error_band_pct / 100.0
        return self.images_per_second * (1 - band), self.images_per_second * (1 + band)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.images_per_second_range
        return {
            "network": self.network,
            "platform": self.platform,
            "power_mode": self.power_mode,
            "cores": self.cores,
            "batch": self.batch,
            "precision": self.precision,
            "sparse": self.sparse,
            "images_per_second": round(self.images_per_second, 2),
            "latency_ms": round(self.latency_ms, 4),
            "error_band": {"pct": self.error_band_pct, "images_per_second_low": round(low, 2),
                           "images_per_second_high": round(high, 2), "calibrated": not self.out_of_region,
                           "out_of_region": self.out_of_region},
            "measured_images_per_second": self.measured_images_per_second,
            "split_ms": {k: round(v, 4) for k, v in self.split_ms.items()},
            "layers": [layer.as_dict() for layer in self.layers],
            "assumptions": self.assumptions,
        }


#: An input convolution runs in image-input mode (kDLA_HWC4) only with 1, 3 or 4 channels.
IMAGE_CHANNELS = 4


def layer_kind(op: DlaOp) -> str:
    """Kind label used to tell whether the fit data covered this kind of layer."""
    if op.kind == "conv" and op.image_input and op.in_c <= IMAGE_CHANNELS:
        return "conv-image-input"
    if op.kind == "conv" and op.groups > 1:
        return "conv-grouped"
    return op.kind


def placement_of(loaded: LoadedModel, target: Target, precision: str,
                 report: CheckReport | None = None) -> tuple[dict[str, str], str, int]:
    """Node placement from ``check`` (``report`` when the caller already has it, else placed here)."""
    from dlakit.check import FIXABLE, check_model

    report = report if report is not None else check_model(loaded, target, precision)
    placement = {n.name: n.placement for n in report.nodes}
    fixable = sum(1 for p in placement.values() if p == FIXABLE)
    return placement, "dlakit check", fixable


def model_batch(loaded: LoadedModel) -> int:
    for value in loaded.graph.inputs:
        dims = static_dims(value)
        if dims and len(dims) >= 4:
            return int(math.prod(dims[:-3]))
    return 1


#: below every nvpmodel DLA/EMC clock of the supported boards (Orin NX 10W: DLA 153.6 MHz); lower is a typo
MIN_CLOCK_MHZ = 50.0


def prepare(loaded: LoadedModel, target: Target, precision: str = Precision.INT8,
            placement: dict[str, str] | None = None, report: CheckReport | None = None) -> Prepared:
    """Place (or take ``placement``, or ``report``'s placement) and fuse ``loaded`` into DLA ops."""
    precision = Precision.parse(precision)
    source, fixable = "given", 0
    if placement is None:
        placement, source, fixable = placement_of(loaded, target, precision, report)
    ops = build_ops(loaded.graph, placement)
    if not any(op.device == Device.DLA and op.kind != "free" for op in ops):
        raise DlakitError(f"{loaded.source}: no layer of this network runs on the DLA of {target.platform.name}; "
                          "run dlakit check to see why")
    return Prepared(loaded.source, target, precision, ops, model_batch(loaded), source, fixable)


def price(loaded: LoadedModel, target: Target, precision: str = Precision.INT8, power_mode: str | None = None,
          report: CheckReport | None = None) -> Estimate:
    """The estimate of a model at the platform's default power mode, also when no layer runs on the DLA (then
    everything is priced on the GPU): what ``fix``'s time guard compares before and after a rewrite. ``report``:
    check's placement of ``loaded`` when the caller has it."""
    precision = Precision.parse(precision)
    placement, source, fixable = placement_of(loaded, target, precision, report)
    ops = build_ops(loaded.graph, placement)
    if all(op.kind == "free" for op in ops):
        raise DlakitError(f"{loaded.source}: no layer computes anything (only reshapes and copies); nothing to price")
    prep = Prepared(loaded.source, target, precision, ops, model_batch(loaded), source, fixable)
    cond, label = conditions_for(target, power_mode, precision=precision)
    return evaluate(prep, cond, label)


def conditions_for(target: Target, power_mode: str | None = None, cores: int | None = None, sparse: bool = False,
                   precision: str = Precision.INT8, dla_mhz: float | None = None, emc_mhz: float | None = None,
                   data: PerfData | None = None) -> tuple[Conditions, str]:
    """Resolve the clocks (power mode, optionally overridden), DRAM bandwidth and core count."""
    data = data or load_perf_data()
    plat = target.platform
    mode = plat.power_mode(power_mode)
    cores = plat.dla_cores if cores is None else cores
    if not 1 <= cores <= plat.dla_cores:
        raise DlakitError(f"--cores: {plat.name} has {plat.dla_cores} DLA core(s); choose 1..{plat.dla_cores}")
    for flag, value in (("--dla-mhz", dla_mhz), ("--emc-mhz", emc_mhz)):
        if value is not None and not MIN_CLOCK_MHZ <= value < 10000:
            raise DlakitError(f"{flag}: {value} MHz is not a plausible clock; give MHz like 1369.6")
    if sparse and not data.spec(plat.dla_generation).sparse:
        raise DlakitError(f"--sparse: {plat.name} has no structured sparsity on its DLA (Orin only)")
    label = mode.name if dla_mhz is None and emc_mhz is None else f"{mode.name} (custom clocks)"
    emc = emc_mhz or mode.emc_mhz
    gmode = gpu_mode_for(plat.key, mode.name)
    cond = Conditions(dla_mhz=dla_mhz or mode.dla_mhz, emc_mhz=emc, dram_gbps=plat.dram_gbps(emc), cores=cores,
                      precision=precision, sparse=sparse,
                      gpu_mhz=gmode.mhz if gmode else data.gpu["default_mhz"].value,
                      gpu_sms=gmode.sms if gmode else 8,
                      # an overridden core clock: the Falcon clock is derived from it (targets.PowerMode)
                      falcon_mhz=mode.falcon_mhz if dla_mhz is None else 0.0)
    return cond, label


def evaluate(prep: Prepared, cond: Conditions, mode_label: str = "", data: PerfData | None = None,
             calib: Calibration | None = None) -> Estimate:
    """Price the prepared ops under ``cond`` and assemble the estimate with its error band."""
    data = data or load_perf_data()
    calib = calib or data.calibration
    spec = data.spec(prep.target.platform.dla_generation)
    raws = raw_costs(prep.ops, data, spec, cond)
    on_dla = np.array([op.device == Device.DLA for op in prep.ops])
    cycles = np.array([r.cycles for r in raws])
    dram = np.array([r.dram_bytes for r in raws])
    counted = np.array([r.counted for r in raws], dtype=float)
    refetch = np.array([r.refetch_bytes for r in raws])
    bandwidth = core_bandwidth(spec, cond)
    times, compute, memory = op_times(cycles, dram, counted, calib, cond.dla_mhz, bandwidth, cond.emc_mhz, refetch,
                                      depthwise_ops(prep.ops))
    streamed = memory * np.divide(dram - refetch, dram, out=np.ones_like(dram), where=dram > 0)
    gpu = (fallback_times(prep.ops, spec, cond, prep.target.platform.key) if not on_dla.all()
           else np.zeros(len(prep.ops)))
    times = np.where(on_dla, times, gpu)
    crossings, crossing_bytes = _transitions(prep.ops, cond, spec)
    reformat_bw = cond.dram_gbps * 1e9 * load_gpu_data().calibration.dram_efficiency
    transition_s = crossings * data.gpu["transition_us"].value * 1e-6 + crossing_bytes / reformat_bw
    loadables = dla_loadables(prep.ops)
    launch_s = loadables * loadable_seconds(calib.launch_us, cond.falcon)
    latency = float(times.sum()) + transition_s + launch_s
    gpu_s = float(gpu.sum()) + transition_s
    # One instance per core; the GPU parts of all instances share the one GPU.
    period = max(latency, cond.cores * gpu_s)
    ips = cond.cores * prep.batch / period
    layers = []
    for i, op in enumerate(prep.ops):
        if op.kind == "free" or (op.device == Device.DLA and raws[i].counted == 0):
            continue  # reshapes, slice views, concats written in place
        if op.device == Device.GPU:
            bound = "gpu"
        else:
            hidden = min(compute[i], streamed[i]) * calib.overlap
            overhead = times[i] - compute[i] - memory[i] + hidden
            bound = max((compute[i], "compute"), (memory[i], "memory"), (overhead, "overhead"))[1]
        layers.append(LayerEstimate(op.name, op.device, layer_kind(op), float(times[i]) * 1e6,
                                    float(times[i]) / latency, bound, int(op.macs), int(dram[i]), op.nodes,
                                    raws[i].sparse_applied, int(refetch[i])))
    dla_compute = float((compute * on_dla).sum())
    dla_memory = float((memory * on_dla).sum())
    dla_total = float((times * on_dla).sum())
    overhead = float((counted * on_dla).sum()) * overhead_seconds(calib.op_overhead_us, cond.emc_mhz)
    split = {"compute": dla_compute, "memory": dla_memory, "overhead": overhead,
             "overlap_saved": dla_compute + dla_memory + overhead - dla_total,
             "dla": dla_total, "launch": launch_s, "gpu": float(gpu.sum()), "transitions": transition_s}
    reasons = out_of_region(prep, cond, calib)
    band_tags = extrapolations(
        generation=int(spec.generation), fit_platform=prep.target.platform.key in CALIBRATED_PLATFORMS,
        precision=cond.precision, cores=cond.cores, batch=prep.batch, kinds=prep.kinds,
        clocks_inside=CALIBRATED_DLA_MHZ[0] <= cond.dla_mhz <= CALIBRATED_DLA_MHZ[1],
        unfit_kinds=bool(prep.kinds - set(calib.layer_kinds)) and bool(calib.layer_kinds),
        gpu_fallback=any(op.device == Device.GPU and op.kind != "free" for op in prep.ops))
    band = widened(calib.error_band_pct, band_tags, data)
    assumptions = {
        "platform": prep.target.platform.key, "release": prep.target.release.key,
        "dla_generation": spec.generation, "dla_mhz": cond.dla_mhz, "emc_mhz": cond.emc_mhz,
        "dram_gbps_peak": round(cond.dram_gbps, 2), "core_dram_gbps_peak": round(bandwidth / 1e9, 2),
        "macs_per_clk": spec.int8_macs_per_clk if cond.precision == Precision.INT8 else spec.fp16_macs_per_clk,
        "atomic_c": spec.atomic_c, "atomic_k": spec.atomic_k, "sram_bytes": spec.sram_bytes,
        "cbuf_bytes": spec.cbuf_bytes, "placement": prep.placement_source,
        "falcon_mhz": round(cond.falcon, 1), "dla_loadables": loadables,
        "gpu_mhz": cond.gpu_mhz, "gpu_sms": cond.gpu_sms, "transitions": crossings,
        "fixable_layers_on_gpu": prep.fixable,
        "calibration": {"version": calib.version, "fitted": calib.fitted, "compute_efficiency":
                        calib.compute_efficiency, "dram_efficiency": calib.dram_efficiency,
                        "op_overhead_us_at_emc_3200": calib.op_overhead_us, "overlap": calib.overlap,
                        "launch_us_at_falcon_844_8": calib.launch_us,
                        "depthwise_efficiency": calib.depthwise_efficiency},
        "low_confidence_parameters": spec.low_confidence(),
        "error_band_widened_for": band_tags,
    }
    return Estimate(prep.name, prep.target.platform.key, mode_label, cond.cores, prep.batch, cond.precision,
                    cond.sparse, ips, latency * 1e3, layers, {k: v * 1e3 for k, v in split.items()},
                    band, reasons, assumptions, measured_for(prep, cond, mode_label, calib))


def measured_for(prep: Prepared, cond: Conditions, mode_label: str, calib: Calibration) -> float | None:
    """NVIDIA's measured images/s for exactly this case, when it is one of the calibration rows."""
    if prep.target.platform.key not in CALIBRATED_PLATFORMS or cond.precision != Precision.INT8:
        return None
    weights = "sparse" if cond.sparse else "dense"
    for row in calib.residuals:
        if (row.get("network") == prep.name and row.get("weights") == weights and row.get("power_mode") == mode_label
                and row.get("batch", prep.batch) == prep.batch and row.get("cores", 2) == cond.cores):
            return float(row["measured"])
    return None


def _transitions(ops: list[DlaOp], cond: Conditions, spec: DlaSpec) -> tuple[int, float]:
    """Tensors crossing between GPU and DLA: each is a task switch plus a reformat (read + write) through DRAM."""
    device = {t.name: op.device for op in ops for t in op.outputs}
    seen: set[tuple[str, str]] = set()
    total = 0.0
    for op in ops:
        for t in op.inputs:
            src = device.get(t.name, "dla" if not t.graph_input else op.device)
            if src != op.device and (t.name, op.device) not in seen:
                seen.add((t.name, op.device))
                total += 2 * tensor_bytes(t, cond, spec)
    return len(seen), total


def out_of_region(prep: Prepared, cond: Conditions, calib: Calibration) -> list[str]:
    """Why this estimate is an extrapolation from the fit data, one reason per line (empty: calibrated)."""
    reasons = []
    plat = prep.target.platform
    if plat.dla_generation != 2:
        reasons.append(f"{plat.name}: first-generation DLA, no measurement in the fit; parameters from NVDLA nv_full")
    elif plat.key not in CALIBRATED_PLATFORMS:
        reasons.append(f"{plat.name}: fit data is AGX Orin 64GB only; same DLA, other clocks/DRAM")
    if cond.precision != Precision.INT8:
        reasons.append("FP16: the fit has INT8 only, and the Orin FP16 MAC rate is a low-confidence guess")
    if cond.cores != 2:
        reasons.append(f"{cond.cores} core(s): the fit has two cores sharing DRAM; one core's bus share is a guess")
    if not CALIBRATED_DLA_MHZ[0] <= cond.dla_mhz <= CALIBRATED_DLA_MHZ[1]:
        reasons.append(f"DLA clock {cond.dla_mhz:g} MHz outside the fitted {CALIBRATED_DLA_MHZ[0]:g}-"
                       f"{CALIBRATED_DLA_MHZ[1]:g} MHz")
    if "depthwise" in prep.kinds:
        reasons.append("depthwise layers: one fit network (SSD-MobileNetV1, one power mode); their rate is fitted on "
                       "that one row, below the derived conv-core rate")
    if prep.batch not in CALIBRATED_BATCHES:
        reasons.append(f"batch {prep.batch}: the fit has batches 1 and 2 only")
    missing = sorted(prep.kinds - set(calib.layer_kinds))
    if missing:
        reasons.append(f"layer types absent from the fit data: {', '.join(missing)}")
    if any(op.device == Device.GPU and op.kind != "free" for op in prep.ops):
        reasons.append("GPU fallback layers: the GPU model is calibrated on whole networks on the GPU (data/gpu.toml); "
                       "transition costs are not calibrated")
    return reasons
