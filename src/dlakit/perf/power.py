"""Power of the DLA cores and of the GPU per power mode, and DLA-versus-GPU performance per watt.

Each engine's power (``data/power.toml``) is ``units x P_ref x [static x v + (1 - static) x f/f_ref x v^2]``: the
leakage of the units left on by the mode (SMs, DLA cores), roughly proportional to the supply voltage ``v``, and the
switching power, proportional to clock x voltage squared; the voltage falls with the clock down to a floor (DVFS);
the DLA's switching part is scaled by its activity on the network (:func:`dla_activity`: not while it waits in
per-op setup or the loadable's launch). The ratio the model is fitted to is NVIDIA's table of DLA images/s per watt
over GPU images/s per watt (``shared/facts/dla.md`` 3.7, 10 rows x 4 power modes): the images/s come from the DLA
model and the GPU model (:mod:`dlakit.perf.gpu`), three power parameters are fitted (the DLA core's watts at 1600
MHz, the voltage floor and the static share; the GPU's watts at MAXN are an anchor, since a ratio cannot fix the
absolute scale), and the fit is cross-validated leaving one network out (``benchmarks/bench_gpu.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dlakit.data.opdata import read
from dlakit.errors import DlakitError
from dlakit.perf.fitting import StoredFit, calibration_section, multi_start, write_section
from dlakit.perf.fitting import leave_one_network_out as lono
from dlakit.perf.hardware import Param, _params

PARAM_NAMES = ("dla_core_watts", "voltage_floor", "static_share", "gpu_fixed_share")
ENGINE_KEYS = ("ref_mhz", "ref_units")


@dataclass(frozen=True, kw_only=True)
class PowerCalibration(StoredFit):
    dla_core_watts: float
    voltage_floor: float
    static_share: float
    gpu_fixed_share: float = 0.0

    FIT: ClassVar[tuple[str, ...]] = ("dla_core_watts", "voltage_floor", "static_share", "gpu_fixed_share")


@dataclass(frozen=True)
class PowerData:
    gpu: dict[str, Param]
    dla: dict[str, Param]
    seed_batches: dict[str, dict[str, int]]
    calibration: PowerCalibration


@cache
def load_power_data() -> PowerData:
    return parse_power_data(read("power.toml"))


def parse_power_data(data: dict[str, Any]) -> PowerData:
    gpu = _params("gpu", data.get("gpu", {}), ("ref_watts", *ENGINE_KEYS), "power.toml")
    dla = _params("dla", data.get("dla", {}), ENGINE_KEYS, "power.toml")
    for where, params in (("gpu", gpu), ("dla", dla)):
        if any(p.value <= 0 for p in params.values()):
            raise ValueError(f"power.toml: every [{where}] value must be positive")
    seeds = {}
    for net, entry in data.get("seed_batches", {}).items():
        if not (isinstance(entry, dict) and isinstance(entry.get("dla"), int) and isinstance(entry.get("gpu"), int)):
            raise ValueError(f"power.toml: seed_batches.{net} must be {{ dla = N, gpu = N }}")
        seeds[net] = {"dla": entry["dla"], "gpu": entry["gpu"]}
    calib = PowerCalibration.read(data.get("calibration", {}), "power.toml")
    if not (calib.dla_core_watts > 0 and 0 <= calib.voltage_floor <= 1 and 0 <= calib.static_share <= 1):
        raise ValueError("power.toml: calibration out of range (watts > 0, voltage_floor and static_share in [0, 1])")
    return PowerData(gpu, dla, seeds, calib)


def engine_power(ref_watts: float, ref_units: float, ref_mhz: float, units: float, mhz: float,
                 voltage_floor: float, static_share: float, fixed_share: float = 0.0, activity: float = 1.0) -> float:
    """Watts of ``units`` SMs or DLA cores at ``mhz`` (see the module docstring for the form); ``fixed_share`` of
    the reference watts does not depend on how many units the mode leaves on (the GPU's L2, front end and rail);
    ``activity``: share of the time the units switch (the switching power scales with it, leakage does not)."""
    x = mhz / ref_mhz
    v = voltage_floor + (1.0 - voltage_floor) * x
    per_unit = static_share * v + (1.0 - static_share) * x * v * v * activity
    return ref_watts * (fixed_share * v + (1.0 - fixed_share) * units / ref_units * per_unit)


def gpu_watts(sms: int, mhz: float, params: Sequence[float] | None = None, data: PowerData | None = None) -> float:
    data = data or load_power_data()
    _, floor, static, fixed = params if params is not None else data.calibration.vector()
    g = data.gpu
    return engine_power(g["ref_watts"].value, g["ref_units"].value, g["ref_mhz"].value, sms, mhz, floor, static,
                        fixed)


def dla_watts(cores: int, mhz: float, params: Sequence[float] | None = None, data: PowerData | None = None,
              activity: float = 1.0) -> float:
    """Watts of ``cores`` DLA cores at ``mhz``; ``activity`` (:func:`dla_activity`) scales their switching power."""
    data = data or load_power_data()
    watts, floor, static, _ = params if params is not None else data.calibration.vector()
    d = data.dla
    return engine_power(watts, d["ref_units"].value, d["ref_mhz"].value, cores, mhz, floor, static,
                        activity=activity)


def dla_activity(estimate: Any) -> float:
    """Share of an inference's DLA time the core computes or moves data: not the per-op overhead or the launch of
    the loadable, where it waits on setup with its datapath idle (its switching power gated, leakage still paid).
    ASSUMPTION: NVIDIA publishes no DLA power per network; without it the DLA's watts would be the same for a
    network that spends half its time in per-op setup (SSD-MobileNetV1 at batch 2) as for one that computes."""
    split = estimate.split_ms
    total = split["dla"] + split["launch"]
    if total <= 0:
        return 1.0
    return max(0.0, min(1.0, 1.0 - (split["overhead"] + split["launch"]) / total))


# ---------------------------------------------------------------------------------------------------------------
# NVIDIA's perf/W table and the fit
# ---------------------------------------------------------------------------------------------------------------

#: Row labels of the table (dla.md 3.7) -> zoo networks.
SEED_NETWORKS = (("RetinaNet ResNeXt-50", "retinanet-resnext50"), ("ResNet-34 backbone", "resnet34-backbone"),
                 ("RetinaNet ResNet-34", "retinanet-resnet34"), ("SSD-ResNet-34", "ssd-resnet34"),
                 ("SSD-MobileNetV1", "ssd-mobilenetv1"), ("ResNet-50", "resnet50"))
MODES = ("MAXN", "50W", "30W", "15W")
SECTION = "### 3.7"


@dataclass(frozen=True)
class SeedRatio:
    network: str
    weights: str
    power_mode: str
    dla_batch: int
    gpu_batch: int
    ratio: float


def load_seed_ratios(path: str | Path) -> list[SeedRatio]:
    """NVIDIA's DLA/GPU perf-per-watt table from dla.md section 3.7 (AGX Orin 64GB, JetPack 5.1.1)."""
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: no such facts file")
    text = path.read_text(encoding="utf-8")
    if SECTION not in text:
        raise DlakitError(f"{path}: no section '{SECTION}' (DLA performance per watt relative to the GPU)")
    rows = []
    for line in text[text.index(SECTION):].splitlines()[1:]:
        if line.startswith("## ") or line.startswith("### "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or cells[1] not in ("Dense", "Sparse"):
            continue
        label = cells[0]
        net = next((key for prefix, key in SEED_NETWORKS if label.startswith(prefix)), None)
        if net is None:
            continue
        dla_b = re.search(r"DLA bs=(\d+)", label) or re.search(r"bs=(\d+)", label)
        gpu_b = re.search(r"GPU bs=(\d+)", label) or dla_b
        assert dla_b is not None and gpu_b is not None
        for mode, cell in zip(MODES, cells[2:6], strict=True):
            rows.append(SeedRatio(net, cells[1].lower(), mode, int(dla_b.group(1)), int(gpu_b.group(1)),
                                  float(cell.rstrip("x"))))
    if not rows:
        raise DlakitError(f"{path}: section {SECTION} holds no ratio rows")
    return rows


@dataclass
class PowerCase:
    row: SeedRatio
    dla_ips: float
    gpu_ips: float
    dla_mhz: float
    dla_cores: int
    gpu_sms: int
    gpu_mhz: float
    dla_activity: float = 1.0

    def ratio(self, params: Sequence[float]) -> float:
        d = dla_watts(self.dla_cores, self.dla_mhz, params, activity=self.dla_activity)
        g = gpu_watts(self.gpu_sms, self.gpu_mhz, params)
        return (self.dla_ips / d) / (self.gpu_ips / g)


PLATFORM = "agx-orin-64gb"
RELEASE = "jetpack-5.1.1"


def build_power_cases(rows: Sequence[SeedRatio]) -> list[PowerCase]:
    """Images/s of each row on both DLAs (DLA model, all layers on DLA, as NVIDIA ran them) and on the GPU (GPU
    model, the table's GPU batch); 2:4 sparse rows run sparse on both."""
    from dlakit import zoo
    from dlakit.model import load_model
    from dlakit.perf.estimate import conditions_for, evaluate, prepare
    from dlakit.perf.gpu import estimate_gpu, gpu_conditions, load_gpu_data
    from dlakit.perf.hardware import load_perf_data
    from dlakit.targets import resolve_target

    target = resolve_target(PLATFORM, RELEASE)
    spec = load_perf_data().spec(target.platform.dla_generation)
    arch = load_gpu_data().platform(PLATFORM).arch
    preps: dict[tuple[str, int], Any] = {}
    cases = []
    for row in rows:
        key = (row.network, row.dla_batch)
        if key not in preps:
            preps[key] = prepare(load_model(zoo.build(row.network, form="prepared", batch=row.dla_batch)), target,
                                 placement={})
        prep = preps[key]
        sparse = row.weights == "sparse"
        cond, label = conditions_for(target, row.power_mode, 2, sparse)
        dla = evaluate(prep, cond, label)
        gcond = gpu_conditions(target.platform, row.power_mode, "int8", sparse, row.gpu_batch)
        from dlakit.perf.gpu import all_on_gpu

        g = estimate_gpu(all_on_gpu(prep.ops), spec, arch, gcond)
        cases.append(PowerCase(row, dla.images_per_second, g.images_per_second, cond.dla_mhz, 2, gcond.sms,
                               gcond.mhz, dla_activity(dla)))
    return cases


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _to_params(x: np.ndarray) -> list[float]:
    return [math.exp(x[0]), _sigmoid(x[1]), _sigmoid(x[2]), _sigmoid(x[3])]


def _from_params(p: Sequence[float]) -> np.ndarray:
    return np.array([math.log(p[0]), *(math.log(v / (1 - v)) for v in p[1:])])


def _loss(cases: Sequence[PowerCase], params: Sequence[float]) -> float:
    return float(sum(math.log(c.ratio(params) / c.row.ratio) ** 2 for c in cases))


STARTS = ((1.5, 0.6, 0.3, 0.2), (3.0, 0.4, 0.1, 0.4), (1.0, 0.8, 0.5, 0.1))


def fit(cases: Sequence[PowerCase]) -> tuple[list[float], float]:
    """The power parameters minimising the squared log error of the perf/W ratio."""
    best, best_loss = multi_start(lambda x: _loss(cases, _to_params(x)), [_from_params(s) for s in STARTS], 0.5)
    return _to_params(best), best_loss


def errors_pct(cases: Sequence[PowerCase], params: Sequence[float]) -> np.ndarray:
    return np.array([100.0 * (c.ratio(params) / c.row.ratio - 1.0) for c in cases])


def leave_one_network_out(cases: Sequence[PowerCase]) -> dict[str, tuple[list[float], np.ndarray]]:
    return lono(cases, lambda c: c.row.network, fit, errors_pct)


def engine_watts(case: PowerCase, params: Sequence[float]) -> tuple[float, float]:
    return (dla_watts(case.dla_cores, case.dla_mhz, params, activity=case.dla_activity),
            gpu_watts(case.gpu_sms, case.gpu_mhz, params))


MARKER = "# === calibration: generated by benchmarks/bench_gpu.py --write; everything below is replaced ===\n"


def calibration_toml(cases: Sequence[PowerCase], params: Sequence[float],
                     lono: dict[str, tuple[list[float], np.ndarray]], version: str, fitted: str, label: str) -> str:
    errs = errors_pct(cases, params)
    procedure = ("dlakit.perf.power.fit: 4 parameters (dla_core_watts at 1600 MHz, voltage_floor, static_share, "
                 "gpu_fixed_share; GPU watts anchored by [gpu] ref_watts), Nelder-Mead on the squared log error of the "
                 "DLA/GPU perf-per-watt ratio, images/s from the calibrated DLA model (2 cores, all layers on DLA) and "
                 "GPU model (the table's GPU batch), sparse rows sparse on both engines")
    values = {"dla_core_watts": f"{params[0]:.5f}", "voltage_floor": f"{params[1]:.5f}",
              "static_share": f"{params[2]:.5f}", "gpu_fixed_share": f"{params[3]:.5f}"}
    rows = [f'  {{ network = "{c.row.network}", weights = "{c.row.weights}", power_mode = "{c.row.power_mode}", '
            f"dla_batch = {c.row.dla_batch}, gpu_batch = {c.row.gpu_batch}, measured = {c.row.ratio:g}, "
            f"predicted = {c.ratio(params):.3f}, error_pct = {err:.2f} }},"
            for c, err in zip(cases, errs, strict=True)]
    return calibration_section(version, fitted, label, procedure, values, errs, lono, rows)


def write_calibration(section: str, path: Path | None = None) -> Path:
    path = write_section("power.toml", MARKER, section, path)
    load_power_data.cache_clear()
    return path


def seed_ratio(network: str, weights: str, power_mode: str) -> float | None:
    """NVIDIA's measured ratio for this case when it is one of the fitted rows."""
    for row in load_power_data().calibration.residuals:
        if row.get("network") == network and row.get("weights") == weights and row.get("power_mode") == power_mode:
            return float(row["measured"])
    return None


# ---------------------------------------------------------------------------------------------------------------
# DLA versus GPU for one estimate (dlakit estimate --vs-gpu)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class VsGpu:
    """The same network on the GPU alone, and images/s per watt on each engine."""

    dla_images_per_second: float
    gpu_images_per_second: float
    gpu_batch: int
    gpu_latency_ms: float
    gpu_sms: int
    gpu_mhz: float
    dla_watts: float
    gpu_watts: float
    measured_ratio: float | None = None

    @property
    def perf_per_watt_ratio(self) -> float:
        return (self.dla_images_per_second / self.dla_watts) / (self.gpu_images_per_second / self.gpu_watts)

    def as_dict(self) -> dict[str, Any]:
        return {"gpu_images_per_second": round(self.gpu_images_per_second, 2), "gpu_batch": self.gpu_batch,
                "gpu_latency_ms": round(self.gpu_latency_ms, 4), "gpu_sms": self.gpu_sms, "gpu_mhz": self.gpu_mhz,
                "gpu_watts": round(self.gpu_watts, 3), "dla_watts": round(self.dla_watts, 3),
                "dla_images_per_watt": round(self.dla_images_per_second / self.dla_watts, 3),
                "gpu_images_per_watt": round(self.gpu_images_per_second / self.gpu_watts, 3),
                "perf_per_watt_ratio": round(self.perf_per_watt_ratio, 3),
                "measured_perf_per_watt_ratio": self.measured_ratio}


def default_gpu_batch(network: str, dla_batch: int) -> int:
    """The GPU batch of NVIDIA's perf/W table for a zoo network, else the DLA batch."""
    entry = load_power_data().seed_batches.get(network)
    return entry["gpu"] if entry else dla_batch


def vs_gpu(prep: Any, estimate: Any, cond: Any, gpu_batch: int | None = None) -> VsGpu:
    """``estimate`` (DLA, from :func:`dlakit.perf.evaluate`) against the whole network on the GPU of the same power
    mode, at ``gpu_batch`` (default :func:`default_gpu_batch`); 2:4 sparse on both engines when the estimate is."""
    from dlakit.perf.gpu import all_on_gpu, estimate_gpu, gpu_conditions, load_gpu_data
    from dlakit.perf.hardware import load_perf_data

    platform = prep.target.platform
    gplat = load_gpu_data().platform(platform.key)
    if gplat.arch.key != "ampere":
        raise DlakitError(f"--vs-gpu: the power model covers Orin's Ampere GPU only, not {platform.name}")
    batch = gpu_batch if gpu_batch is not None else default_gpu_batch(prep.name, prep.batch)
    if batch < 1:
        raise DlakitError(f"--gpu-batch: {batch} must be at least 1")
    mode = estimate.power_mode.split(" (")[0]
    gcond = gpu_conditions(platform, mode, cond.precision, cond.sparse, batch, emc_mhz=cond.emc_mhz)
    gcond = replace(gcond, sparse_nodes=cond.sparse_nodes)
    spec = load_perf_data().spec(platform.dla_generation)
    g = estimate_gpu(all_on_gpu(prep.ops), spec, gplat.arch, gcond)
    weights = "sparse" if cond.sparse else "dense"
    measured = seed_ratio(prep.name, weights, mode) if platform.key == PLATFORM and cond.cores == 2 else None
    return VsGpu(estimate.images_per_second, g.images_per_second, batch, g.latency_ms, gcond.sms, gcond.mhz,
                 dla_watts(cond.cores, cond.dla_mhz, activity=dla_activity(estimate)), gpu_watts(gcond.sms, gcond.mhz),
                 measured)
