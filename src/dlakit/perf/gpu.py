"""A calibrated per-layer model of Orin's integrated GPU, beside the DLA model and sharing its DRAM model.

Each operation of the fused network (:func:`dlakit.perf.ops.build_ops`, the same ops the DLA model prices) costs
the larger of its math time and its DRAM time, plus one kernel launch:

* math: tensor-core MACs with the channels of each group padded to the kernels' 32-channel (INT8) or 16-channel
  (FP16) vectors, or CUDA-core MACs where that is faster (depthwise and small-group convolutions), at
  ``SMs x per-SM rate x clock`` of the power mode (``data/gpu.toml``); 2:4 sparse weights double the tensor rate of
  eligible convolutions;
* DRAM: the same tensor bytes as the DLA model (:func:`dlakit.perf.cost.tensor_bytes`: 32-channel INT8 vectors)
  at the platform's peak bandwidth for the EMC clock; an intermediate tensor small enough for the L2 costs none;
  weights are read once per batch (the GPU runs the whole batch in each kernel, unlike the DLA, which runs a batch
  image by image).

Three global parameters are fitted (:func:`fit`) to public GPU-only measurements (``shared/data/orin_gpu_measured.csv``,
MLPerf INT8 rows of the zoo networks): compute efficiency, DRAM efficiency and the per-kernel overhead.
``benchmarks/bench_gpu.py`` prints the fit and its leave-one-network-out error and writes the calibration section.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlakit.data.opdata import read
from dlakit.errors import DlakitError
from dlakit.perf.cost import Conditions, tensor_bytes
from dlakit.perf.fitting import StoredFit, calibration_section, multi_start, write_section
from dlakit.perf.fitting import leave_one_network_out as lono
from dlakit.perf.hardware import DlaSpec, Param, ParamSet, _params, load_perf_data
from dlakit.perf.ops import DlaOp

ARCH_KEYS = ("tensor_int8_macs_per_clk", "tensor_fp16_macs_per_clk", "cuda_int8_macs_per_clk",
             "cuda_fp16_macs_per_clk", "depthwise_macs_per_clk", "elems_per_clk", "channel_tile_int8",
             "channel_tile_fp16", "image_channels",
             "sparse_speedup", "sparse_weight_bytes", "sparse_min_channels", "l2_resident_bytes")
PARAM_NAMES = ("compute_efficiency", "dram_efficiency", "layer_overhead_us")


@dataclass(frozen=True)
class GpuArch(ParamSet):
    """Per-SM rates of one GPU architecture."""

    key: str
    name: str
    params: dict[str, Param]


@dataclass(frozen=True)
class GpuMode:
    name: str
    sms: int
    mhz: float
    confidence: str
    source: str


@dataclass(frozen=True)
class GpuPlatform:
    key: str
    arch: GpuArch
    modes: tuple[GpuMode, ...]

    def mode(self, name: str) -> GpuMode:
        for mode in self.modes:
            if mode.name.lower() == name.lower():
                return mode
        raise DlakitError(f"gpu.toml: no GPU clock for power mode '{name}' of {self.key} (known: "
                          f"{', '.join(m.name for m in self.modes)})")


@dataclass(frozen=True, kw_only=True)
class GpuCalibration(StoredFit):
    compute_efficiency: float
    dram_efficiency: float
    layer_overhead_us: float

    FIT: ClassVar[tuple[str, ...]] = ("compute_efficiency", "dram_efficiency", "layer_overhead_us")


@dataclass(frozen=True)
class GpuData:
    archs: dict[str, GpuArch]
    platforms: dict[str, GpuPlatform]
    calibration: GpuCalibration

    def platform(self, key: str) -> GpuPlatform:
        if key not in self.platforms:
            raise DlakitError(f"gpu.toml: no GPU data for platform {key} (known: {', '.join(self.platforms)})")
        return self.platforms[key]


@cache
def load_gpu_data() -> GpuData:
    return parse_gpu_data(read("gpu.toml"))


def parse_gpu_data(data: dict[str, Any]) -> GpuData:
    """Build and check the GPU parameters; a missing or out-of-range entry is named."""
    archs = {}
    for key, entry in data.get("arch", {}).items():
        params = _params(f"arch.{key}", entry, ARCH_KEYS, "gpu.toml")
        for k in ("tensor_int8_macs_per_clk", "tensor_fp16_macs_per_clk", "cuda_int8_macs_per_clk",
                  "cuda_fp16_macs_per_clk", "depthwise_macs_per_clk", "elems_per_clk", "channel_tile_int8",
                  "channel_tile_fp16",
                  "image_channels", "sparse_speedup"):
            if params[k].value <= 0:
                raise ValueError(f"gpu.toml: arch.{key}.{k} must be positive")
        archs[key] = GpuArch(key, str(entry.get("name", key)), params)
    platforms = {}
    for key, entry in data.get("platform", {}).items():
        arch = entry.get("arch")
        if arch not in archs:
            raise ValueError(f"gpu.toml: platform.{key}: arch '{arch}' is not one of {', '.join(archs)}")
        modes = []
        for m in entry.get("modes", []):
            try:
                mode = GpuMode(str(m["name"]), int(m["sms"]), float(m["mhz"]), str(m.get("confidence", "high")),
                               str(m["source"]))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"gpu.toml: platform.{key}: each mode needs name, sms, mhz and source") from None
            if mode.sms < 1 or not 50 <= mode.mhz < 5000:
                raise ValueError(f"gpu.toml: platform.{key} mode {mode.name}: sms >= 1 and mhz in [50, 5000)")
            modes.append(mode)
        if not modes:
            raise ValueError(f"gpu.toml: platform.{key} lists no modes")
        platforms[key] = GpuPlatform(key, archs[arch], tuple(modes))
    calib = GpuCalibration.read(data.get("calibration", {}), "gpu.toml")
    if not (0 < calib.compute_efficiency <= 1.5 and 0 < calib.dram_efficiency <= 1.5 and calib.layer_overhead_us >= 0):
        raise ValueError("gpu.toml: calibration parameters out of range")
    return GpuData(archs, platforms, calib)


@dataclass(frozen=True)
class GpuConditions:
    """Where the GPU runs: SMs and clock of the power mode, DRAM, precision, sparsity and its batch."""

    sms: int
    mhz: float
    emc_mhz: float
    dram_gbps: float
    precision: str = "int8"
    sparse: bool = False
    batch: int = 1
    sparse_nodes: frozenset[str] | None = None


def gpu_conditions(platform: Any, mode_name: str, precision: str = "int8", sparse: bool = False, batch: int = 1,
                   data: GpuData | None = None, emc_mhz: float | None = None) -> GpuConditions:
    """The GPU of ``platform`` (a :class:`dlakit.targets.Platform`) in power mode ``mode_name``."""
    data = data or load_gpu_data()
    gmode = data.platform(platform.key).mode(mode_name)
    emc = emc_mhz or platform.power_mode(mode_name).emc_mhz
    return GpuConditions(gmode.sms, gmode.mhz, emc, platform.dram_gbps(emc), precision, sparse, batch)


@dataclass
class GpuCosts:
    """Parameter-independent work of every op for one GPU batch: SM-cycles at 100%, DRAM bytes, kernel launches."""

    cycles: np.ndarray
    dram: np.ndarray
    launches: np.ndarray
    sparse: np.ndarray


def ops_batch(ops: Sequence[DlaOp]) -> int:
    """The batch the ops were built at (first dimension of the first convolution's output)."""
    for op in ops:
        if op.output is not None and op.kind != "free":
            return max(1, op.output.dims[0])
    return 1


def _sparse_ok(op: DlaOp, arch: GpuArch, cond: GpuConditions) -> bool:
    if not cond.sparse or arch.sparse_speedup <= 1 or op.kind not in ("conv", "fc") or op.groups != 1:
        return False
    if cond.sparse_nodes is not None and not any(n in cond.sparse_nodes for n in op.nodes):
        return False
    m = int(arch.sparse_min_channels)
    return op.in_c % m == 0 and op.out_c % m == 0 and op.in_c >= m


def op_cycles(op: DlaOp, arch: GpuArch, cond: GpuConditions, per_image: float) -> tuple[float, bool]:
    """SM-cycles of one image of ``op`` at the full per-SM rate (``per_image`` = 1 / the ops' own batch)."""
    int8 = cond.precision == "int8"
    if op.kind in FREE_KINDS:
        return 0.0, False
    macs = op.macs * per_image
    cuda = arch.cuda_int8_macs_per_clk if int8 else arch.cuda_fp16_macs_per_clk
    if op.kind in ("conv", "fc", "deconv") and macs:
        tile = int(arch.channel_tile_int8 if int8 else arch.channel_tile_fp16)
        groups = max(1, op.groups)
        cin_g, k_g = max(1, op.in_c // groups), max(1, op.out_c // groups)
        c_pad = (int(arch.image_channels) if op.image_input and cin_g <= arch.image_channels
                 else math.ceil(cin_g / tile) * tile)
        k_pad = math.ceil(k_g / tile) * tile
        sparse = _sparse_ok(op, arch, cond)
        rate = (arch.tensor_int8_macs_per_clk if int8 else arch.tensor_fp16_macs_per_clk)
        tensor = macs * (c_pad * k_pad) / (cin_g * k_g) / rate / (arch.sparse_speedup if sparse else 1.0)
        return (tensor, sparse) if tensor <= macs / cuda else (macs / cuda, False)
    if op.kind == "depthwise":
        return macs / arch.depthwise_macs_per_clk, False
    out = sum(t.elements for t in op.outputs)
    elems = max(out, sum(t.elements for t in op.inputs)) * per_image
    return elems / arch.elems_per_clk, False


def gpu_costs(ops: Sequence[DlaOp], arch: GpuArch, cond: GpuConditions, spec: DlaSpec,
              engine_of: Callable[[DlaOp], str] | None = None) -> GpuCosts:
    """Work of each op run on the GPU at ``cond.batch`` (ops built at another batch are scaled per image).

    ``engine_of``: which engine runs each op (default: all on the GPU); a tensor crossing to another engine, and any
    graph input or output, goes through DRAM; other intermediate tensors that fit the L2 share cost no DRAM bytes.
    """
    engine_of = engine_of or (lambda op: "gpu")
    built = ops_batch(ops)
    per_image = 1.0 / built
    scale = cond.batch / built
    dla_cond = Conditions(dla_mhz=1.0, emc_mhz=cond.emc_mhz, dram_gbps=cond.dram_gbps, precision=cond.precision)
    producer = {t.name: engine_of(op) for op in ops for t in op.outputs}
    readers: dict[str, set[str]] = {}
    for op in ops:
        for t in op.inputs:
            readers.setdefault(t.name, set()).add(engine_of(op))
    limit = arch.l2_resident_bytes

    def in_dram(t: Any) -> bool:
        if t.graph_input or t.graph_output or producer.get(t.name, "gpu") != "gpu":
            return True
        if readers.get(t.name, {"gpu"}) != {"gpu"}:
            return True
        return tensor_bytes(t, dla_cond, spec) * scale > limit

    cycles, dram, launches, sparse = [], [], [], []
    bpe = 1 if cond.precision == "int8" else 2
    for op in ops:
        c, s = op_cycles(op, arch, cond, per_image)
        if op.kind in FREE_KINDS:
            cycles.append(0.0)
            dram.append(0.0)
            launches.append(0.0)
            sparse.append(False)
            continue
        act = sum(tensor_bytes(t, dla_cond, spec) for t in op.inputs if in_dram(t))
        act += sum(tensor_bytes(t, dla_cond, spec) for t in op.outputs if in_dram(t))
        weights = op.weight_elems * bpe * (arch.sparse_weight_bytes if s else 1.0)
        cycles.append(c * cond.batch)
        dram.append(act * scale + weights)
        launches.append(1.0)
        sparse.append(s)
    return GpuCosts(np.array(cycles), np.array(dram), np.array(launches), np.array(sparse, dtype=bool))


def gpu_times(costs: GpuCosts, params: Sequence[float], cond: GpuConditions) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """Seconds per op for the batch: max(math, DRAM) + one kernel launch; returns (time, compute, memory)."""
    eff_c, eff_m, overhead_us = params[:3]
    compute = costs.cycles / (cond.sms * cond.mhz * 1e6 * eff_c)
    memory = costs.dram / (cond.dram_gbps * 1e9 * eff_m)
    overlap = OVERLAP
    time = np.maximum(compute, memory) + (1.0 - overlap) * np.minimum(compute, memory)
    return time + costs.launches * launch_seconds(overhead_us, cond.mhz), compute, memory


#: Share of the shorter of math and DRAM time hidden behind the longer one (1 = per-op roofline).
OVERLAP = 1.0
#: Op kinds that cost nothing on the GPU: reshapes, and channel concatenations (TensorRT's GPU builder writes the
#: producers into the output; ASSUMPTION, as before the DLA model priced concat alignment). Slices are copies.
FREE_KINDS = ("free", "concat")
#: GPU clock at which ``layer_overhead_us`` is stated (AGX Orin MAXN).
REFERENCE_GPU_MHZ = 1300.5
#: exponent of the launch overhead's scaling with the GPU clock (0 = fixed)
OVERHEAD_CLOCK_EXPONENT = 1.0


def launch_seconds(overhead_us: float, mhz: float) -> float:
    """Per-kernel overhead (launch, tail of the last wave, synchronisation), scaled with the GPU clock."""
    return overhead_us * 1e-6 * (REFERENCE_GPU_MHZ / mhz) ** OVERHEAD_CLOCK_EXPONENT


@dataclass
class GpuEstimate:
    images_per_second: float
    latency_ms: float
    batch: int
    sms: int
    gpu_mhz: float
    precision: str
    sparse: bool
    compute_ms: float
    memory_ms: float
    overhead_ms: float
    dram_bytes: float
    layer_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"images_per_second": round(self.images_per_second, 2), "latency_ms": round(self.latency_ms, 4),
                "batch": self.batch, "sms": self.sms, "gpu_mhz": self.gpu_mhz, "precision": self.precision,
                "sparse": self.sparse, "compute_ms": round(self.compute_ms, 4), "memory_ms": round(self.memory_ms, 4),
                "overhead_ms": round(self.overhead_ms, 4), "dram_mb_per_batch": round(self.dram_bytes / 1e6, 3)}


def estimate_gpu(ops: Sequence[DlaOp], spec: DlaSpec, arch: GpuArch, cond: GpuConditions,
                 calib: GpuCalibration | Sequence[float] | None = None) -> GpuEstimate:
    """The whole network on the GPU at ``cond.batch``: images/s (one stream) and latency per batch."""
    params = (calib or load_gpu_data().calibration)
    vector = params.vector() if isinstance(params, GpuCalibration) else list(params)
    costs = gpu_costs(ops, arch, cond, spec)
    times, compute, memory = gpu_times(costs, vector, cond)
    latency = float(times.sum())
    overhead = float(costs.launches.sum()) * vector[2] * 1e-6
    return GpuEstimate(cond.batch / latency, latency * 1e3, cond.batch, cond.sms, cond.mhz, cond.precision,
                       cond.sparse, float(compute.sum()) * 1e3, float(memory.sum()) * 1e3, overhead * 1e3,
                       float(costs.dram.sum()), [float(t) * 1e3 for t in times])


def gpu_mode_for(platform_key: str, mode_name: str, data: GpuData | None = None) -> GpuMode | None:
    """The GPU's SMs and clock in a power mode, or None where gpu.toml does not list the platform or mode."""
    data = data or load_gpu_data()
    plat = data.platforms.get(platform_key)
    if plat is None:
        return None
    return next((m for m in plat.modes if m.name.lower() == mode_name.lower()), None)


def fallback_times(ops: Sequence[DlaOp], spec: DlaSpec, cond: Conditions, platform_key: str,
                   data: GpuData | None = None) -> np.ndarray:
    """Seconds of each op placed on the GPU by ``check`` (0 for DLA ops): the calibrated GPU model at the
    network's own batch, on ``cond.gpu_sms`` SMs at ``cond.gpu_mhz``, tensors crossing to the DLA through DRAM."""
    data = data or load_gpu_data()
    gplat = data.platforms.get(platform_key) or data.platforms["agx-orin-64gb"]
    gcond = GpuConditions(cond.gpu_sms, cond.gpu_mhz, cond.emc_mhz, cond.dram_gbps, cond.precision, cond.sparse,
                          ops_batch(ops), cond.sparse_nodes)
    costs = gpu_costs(ops, gplat.arch, gcond, spec, engine_of=lambda op: op.device)
    times, _, _ = gpu_times(costs, data.calibration.vector(), gcond)
    on_gpu = np.array([op.device == "gpu" for op in ops], dtype=bool)
    return np.where(on_gpu, times, 0.0)


def all_on_gpu(ops: Sequence[DlaOp]) -> list[DlaOp]:
    return [replace(op, device="gpu") for op in ops]


# ---------------------------------------------------------------------------------------------------------------
# Calibration against public GPU-only measurements
# ---------------------------------------------------------------------------------------------------------------

#: CSV network names -> zoo networks (rows of other networks are not used: the model needs the graph)
ZOO_NAMES = {"resnet50-v1.5": "resnet50", "ssd-mobilenetv1": "ssd-mobilenetv1", "ssd-resnet34": "ssd-resnet34",
             "retinanet-resnext50-fpn(mlperf)": "retinanet-resnext50"}
#: CSV platform prefixes -> dlakit platform whose GPU it has (the 32 GB-RAM devkit has the full 16-SM GPU)
PLATFORMS = (("agx-orin-devkit-32gbRAM", "agx-orin-64gb"), ("agx-orin-devkit-64gb", "agx-orin-64gb"),
             ("orin-nx-16gb", "orin-nx-16gb"))
MAXQ = re.compile(r"GPU ([\d.]+)\s*MHz EMC (uncapped|[\d.]+\s*MHz)")


@dataclass(frozen=True)
class GpuMeasurement:
    network: str
    input_hw: tuple[int, int]
    batch: int
    platform: str
    mode: str
    sms: int
    mhz: float
    emc_mhz: float
    images_per_second: float
    tensorrt: str

    @property
    def label(self) -> str:
        return f"{self.network} b{self.batch} {self.platform} {self.mode}"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:4])


def load_gpu_measurements(path: str | Path, data: GpuData | None = None) -> list[GpuMeasurement]:
    """The rows of the GPU CSV the model can be fitted to: INT8 zoo networks on a known platform with known clocks
    (nvpmodel MAXN, or MLPerf MaxQ's stated clocks); of repeated (network, batch, platform, clocks) rows the newest
    TensorRT is kept (JetPack releases differ by 5-20%)."""
    from dlakit.targets import resolve_target

    data = data or load_gpu_data()
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: no such measurement file")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    best: dict[tuple[Any, ...], GpuMeasurement] = {}
    for entry in csv.DictReader(lines):
        net = ZOO_NAMES.get(entry.get("network", ""))
        plat = next((key for prefix, key in PLATFORMS if entry.get("platform", "").startswith(prefix)), None)
        if net is None or plat is None or entry.get("precision") != "int8" or not entry.get("batch", "").isdigit():
            continue
        if not entry.get("latency_ms"):
            continue  # MLPerf Offline: throughput of the harness's own batching and streams, not one engine's
        mode_text = entry.get("power_mode", "")
        platform = resolve_target(plat).platform
        maxn = data.platform(plat).mode("MAXN")
        if mode_text.startswith("MAXN"):
            mode, mhz, emc = "MAXN", maxn.mhz, platform.power_mode("MAXN").emc_mhz
        elif (m := MAXQ.search(mode_text)) is not None:
            mhz = float(m.group(1))
            emc = 3200.0 if m.group(2) == "uncapped" else float(m.group(2).replace("MHz", ""))
            mode = f"MaxQ {mhz:g}/{emc:g}"
        else:
            continue
        h, w = (int(v) for v in entry["input_hw"].lower().split("x"))
        row = GpuMeasurement(net, (h, w), int(entry["batch"]), plat, mode, maxn.sms, mhz, emc,
                             float(entry["images_per_second"]), entry.get("tensorrt", ""))
        key = (net, row.batch, plat, mhz, emc)
        if key not in best or _version(row.tensorrt) >= _version(best[key].tensorrt):
            best[key] = row
    return list(best.values())


@dataclass
class GpuFitCase:
    row: GpuMeasurement
    costs: GpuCosts
    cond: GpuConditions

    def images_per_second(self, params: Sequence[float]) -> float:
        times, _, _ = gpu_times(self.costs, params, self.cond)
        return self.row.batch / float(times.sum())


def build_gpu_cases(rows: Sequence[GpuMeasurement], data: GpuData | None = None) -> list[GpuFitCase]:
    """Price every row once (zoo networks in prepared form, all layers on the GPU)."""
    from dlakit import zoo
    from dlakit.model import load_model
    from dlakit.perf.ops import build_ops
    from dlakit.targets import resolve_target

    data = data or load_gpu_data()
    spec = load_perf_data().spec(2)
    graphs: dict[str, list[DlaOp]] = {}
    cases = []
    for row in rows:
        if row.network not in graphs:
            graphs[row.network] = all_on_gpu(build_ops(load_model(zoo.build(row.network, form="prepared",
                                                                             batch=1)).graph, {}))
        platform = resolve_target(row.platform).platform
        cond = GpuConditions(row.sms, row.mhz, row.emc_mhz, platform.dram_gbps(row.emc_mhz), "int8", False,
                             row.batch)
        arch = data.platform(row.platform).arch
        cases.append(GpuFitCase(row, gpu_costs(graphs[row.network], arch, cond, spec), cond))
    return cases


def _loss(cases: Sequence[GpuFitCase], params: Sequence[float]) -> float:
    return float(sum(math.log(c.images_per_second(params) / c.row.images_per_second) ** 2 for c in cases))


STARTS = ((0.6, 0.6, 5.0), (0.9, 0.8, 2.0), (0.4, 0.5, 10.0))


def fit(cases: Sequence[GpuFitCase]) -> tuple[list[float], float]:
    """Compute efficiency, DRAM efficiency and per-kernel overhead (µs) minimising the squared log error."""
    best, best_loss = multi_start(lambda x: _loss(cases, [math.exp(v) for v in x]),
                                  [np.log(np.array(s)) for s in STARTS])
    return [math.exp(v) for v in best], best_loss


def errors_pct(cases: Sequence[GpuFitCase], params: Sequence[float]) -> np.ndarray:
    return np.array([100.0 * (c.images_per_second(params) / c.row.images_per_second - 1.0) for c in cases])


def leave_one_network_out(cases: Sequence[GpuFitCase]) -> dict[str, tuple[list[float], np.ndarray]]:
    return lono(cases, lambda c: c.row.network, fit, errors_pct)


MARKER = "# === calibration: generated by benchmarks/bench_gpu.py --write; everything below is replaced ===\n"


def calibration_toml(cases: Sequence[GpuFitCase], params: Sequence[float],
                     lono: dict[str, tuple[list[float], np.ndarray]], version: str, fitted: str, label: str) -> str:
    errs = errors_pct(cases, params)
    procedure = ("dlakit.perf.gpu.fit: 3 global parameters (compute_efficiency of the tensor/CUDA-core peak, "
                 "dram_efficiency of peak DRAM bandwidth, layer_overhead_us per kernel), Nelder-Mead on the squared "
                 "log error of images/s, MLPerf INT8 GPU-only rows of zoo networks (prepared form, all layers on the "
                 "GPU), newest TensorRT per (network, batch, platform, clocks)")
    values = {"compute_efficiency": f"{params[0]:.5f}", "dram_efficiency": f"{params[1]:.5f}",
              "layer_overhead_us": f"{params[2]:.3f}"}
    rows = [f'  {{ network = "{c.row.network}", batch = {c.row.batch}, platform = "{c.row.platform}", '
            f'mode = "{c.row.mode}", sms = {c.row.sms}, gpu_mhz = {c.row.mhz:g}, emc_mhz = {c.row.emc_mhz:g}, '
            f'measured = {c.row.images_per_second:g}, predicted = {c.images_per_second(params):.1f}, '
            f"error_pct = {err:.2f} }},"
            for c, err in zip(cases, errs, strict=True)]
    return calibration_section(version, fitted, label, procedure, values, errs, lono, rows)


def write_calibration(section: str, path: Path | None = None) -> Path:
    path = write_section("gpu.toml", MARKER, section, path)
    load_gpu_data.cache_clear()
    return path
