"""Fit the model's few global parameters to measured throughput, and cross-validate the fit.

Procedure (documented in perf.toml's [calibration] section, run by ``benchmarks/bench_estimate.py --write``):

1. Every measured row (network, resolution, batch, dense/sparse, power mode, cores) is built from ``dlakit.zoo`` in
   prepared form, fused into DLA ops and priced with :func:`~dlakit.perf.cost.raw_costs`: ideal cycles and DRAM
   bytes do not depend on the fitted parameters, so they are computed once per row.
2. Five parameters are fitted: compute efficiency (share of the MAC array's atom-limited peak), DRAM efficiency
   (share of the core's part of peak bandwidth), a per-op overhead (µs at EMC 3200 MHz, scaled with the EMC
   clock, see :func:`~dlakit.perf.cost.overhead_seconds`), paid per hardware op, i.e. once per image of a batch
   (:func:`~dlakit.perf.cost.launches`), a per-inference launch cost of the loadable (µs at Falcon 844.8 MHz,
   :func:`~dlakit.perf.cost.loadable_seconds`) and the depthwise path's efficiency (share of the derived
   ``depthwise_macs_per_clk``, at most 1). The depthwise efficiency is fitted only when the training rows hold a
   depthwise network; a fold without one keeps the derived rate (1.0), so the cross-validation of the depthwise
   network itself is out of sample. Compute and memory of an op overlap fully (per-op
   roofline, ``overlap = 1``): with the overlap free the fit puts it at 1.0 anyway, and leaving it free only made
   the cross-validation worse (it trades off against DRAM efficiency). The overlap applies to an op's streamed
   traffic only: the bytes a CBUF-tiled convolution fetches again (weights per input stripe, input per weight
   chunk, halo rows) add to its time (:func:`~dlakit.perf.cost.conv_traffic`), a structural choice with no
   parameter of its own. The loss is the sum of squared log errors
   of images/s (a 10% miss counts the same at 36 and at 2664 img/s), minimised by Nelder-Mead on the logarithms
   of the parameters from a few starting points; numpy only.
3. Leave-one-network-out: for each network, refit on the other networks' rows and predict its rows.
4. Nested cross-validation (:func:`nested_cv`), the figure to trust: the model's structure choices (the candidates in
   :data:`STRUCTURES`, e.g. whether CBUF stripes hold bank-aligned rows) are themselves chosen by an inner
   leave-one-network-out on the other networks only, then the parameters are refitted on them and the held-out
   network predicted. Its errors give the error band (:data:`BAND_QUANTILE` quantile) and the band's measured
   coverage: each outer fold's band comes from its inner errors alone, so the coverage is out of sample too.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from dlakit.errors import DlakitError
from dlakit.model import load_model, static_dims
from dlakit.perf.cost import (
    REFERENCE_FALCON_MHZ,
    Conditions,
    core_bandwidth,
    depthwise_ops,
    loadable_seconds,
    op_times,
    raw_costs,
)
from dlakit.perf.estimate import layer_kind
from dlakit.perf.hardware import Calibration, Param, PerfData, load_perf_data
from dlakit.perf.ops import DlaOp, build_ops
from dlakit.targets import resolve_target
from dlakit.vocab import Precision

#: The parameter vector of a fit, in order: Calibration.vector() (the per-op parameters), then the launch cost.
PARAM_NAMES = ("compute_efficiency", "dram_efficiency", "op_overhead_us", "overlap", "depthwise_efficiency",
               "launch_us")
#: Compute/memory overlap within an op, fixed (see the module docstring).
OVERLAP = 1.0
#: NVIDIA's measurements (JetPack 5.1.1, TensorRT 8.5) on an AGX Orin 64GB.
FIT_PLATFORM, FIT_RELEASE = "agx-orin-64gb", "jetpack-5.1.1"


@dataclass(frozen=True)
class Measurement:
    network: str
    input_hw: tuple[int, int]
    batch: int
    weights: str
    power_mode: str
    cores: int
    images_per_second: float

    @property
    def label(self) -> str:
        return f"{self.network} {self.input_hw[0]}x{self.input_hw[1]} b{self.batch} {self.weights} {self.power_mode}"


@dataclass
class FitCase:
    """One measured row with its parameter-independent costs precomputed."""

    row: Measurement
    cycles: np.ndarray
    dram: np.ndarray
    counted: np.ndarray
    dla_mhz: float
    bandwidth: float
    kinds: frozenset[str]
    emc_mhz: float = 3200.0
    refetch: np.ndarray | None = None
    #: ops on the depthwise path (Calibration.depthwise_efficiency applies to them)
    depthwise: np.ndarray | None = None
    falcon_mhz: float = REFERENCE_FALCON_MHZ

    @property
    def has_depthwise(self) -> bool:
        return self.depthwise is not None and bool(self.depthwise.any())

    def seconds(self, params: Sequence[float]) -> float:
        """One inference of one core: the ops, plus one launch of the loadable (NVIDIA's rows run every layer
        on the DLA, one loadable)."""
        times, _, _ = op_times(self.cycles, self.dram, self.counted, params[:5], self.dla_mhz, self.bandwidth,
                               self.emc_mhz, self.refetch, self.depthwise)
        return float(times.sum()) + loadable_seconds(params[5], self.falcon_mhz)

    def images_per_second(self, params: Sequence[float]) -> float:
        return self.row.cores * self.row.batch / self.seconds(params)


def load_measurements(path: str | Path) -> list[Measurement]:
    """Read the measured-throughput CSV (``#`` lines are comments)."""
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: no such measurement file")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    rows = []
    for entry in csv.DictReader(lines):
        try:
            h, w = (int(v) for v in entry["input_hw"].lower().split("x"))
            rows.append(Measurement(entry["network"], (h, w), int(entry["batch"]), entry["weights"],
                                    entry["power_mode"], int(entry["dla_cores"]), float(entry["images_per_second"])))
        except (KeyError, ValueError) as exc:
            raise DlakitError(f"{path}: bad row {entry} ({exc})") from None
    return rows


def zoo_builder(name: str, batch: int) -> onnx.ModelProto:
    from dlakit import zoo

    return zoo.build(name, form="prepared", batch=batch)


def build_cases(rows: Sequence[Measurement], builder: Callable[[str, int], onnx.ModelProto] = zoo_builder,
                data: PerfData | None = None) -> list[FitCase]:
    """Price every row once. All layers are placed on the DLA: NVIDIA's runs used no GPU fallback."""
    data = data or load_perf_data()
    target = resolve_target(FIT_PLATFORM, FIT_RELEASE)
    spec = data.spec(target.platform.dla_generation)
    graphs: dict[tuple[str, int], list[DlaOp]] = {}
    cases = []
    for row in rows:
        key = (row.network, row.batch)
        if key not in graphs:
            loaded = load_model(builder(row.network, row.batch))
            dims = next((static_dims(v) for v in loaded.graph.inputs), None)
            # The CSV writes sizes as W x H for non-square inputs (1280x768); accept either order.
            if dims is None or tuple(dims[-2:]) not in (row.input_hw, row.input_hw[::-1]):
                raise DlakitError(f"{row.network}: built with input {dims}, but the measurement is at {row.input_hw}")
            graphs[key] = build_ops(loaded.graph, {})
        ops = graphs[key]
        mode = target.platform.power_mode(row.power_mode)
        cond = Conditions(mode.dla_mhz, mode.emc_mhz, target.platform.dram_gbps(mode.emc_mhz), row.cores,
                          "int8", row.weights == "sparse", falcon_mhz=mode.falcon_mhz)
        raws = raw_costs(ops, data, spec, cond)
        kinds = frozenset(layer_kind(op) for op in ops if op.kind != "free")
        cases.append(FitCase(row, np.array([r.cycles for r in raws]), np.array([r.dram_bytes for r in raws]),
                             np.array([r.counted for r in raws], dtype=float), cond.dla_mhz,
                             core_bandwidth(spec, cond), kinds, cond.emc_mhz,
                             np.array([r.refetch_bytes for r in raws]),
                             depthwise_ops(ops), cond.falcon))
    return cases


def _to_params(x: np.ndarray) -> list[float]:
    """Search space (logs of: compute and DRAM efficiency, per-op overhead, launch cost[, depthwise efficiency])
    -> the parameter vector (:data:`PARAM_NAMES`); without a fifth entry the depthwise rate stays as derived, and
    it never exceeds the derived rate (efficiency <= 1)."""
    depthwise = min(1.0, math.exp(x[4])) if len(x) > 4 else 1.0
    return [math.exp(x[0]), math.exp(x[1]), math.exp(x[2]), OVERLAP, depthwise, math.exp(x[3])]


def _from_params(p: Sequence[float], depthwise: bool) -> np.ndarray:
    x = [math.log(p[0]), math.log(p[1]), math.log(max(p[2], 1e-3)), math.log(max(p[5], 1e-3))]
    return np.array([*x, math.log(p[4])] if depthwise else x)


def stored_params(calib: Calibration | None = None) -> list[float]:
    """A calibration as a fit's parameter vector (:data:`PARAM_NAMES`): the per-op vector, then the launch cost."""
    calib = calib or load_perf_data().calibration
    return [*calib.vector(), calib.launch_us]


def loss(cases: Sequence[FitCase], params: Sequence[float]) -> float:
    return float(sum(math.log(c.images_per_second(params) / c.row.images_per_second) ** 2 for c in cases))


def nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, step: float = 0.3, iters: int = 600,
                tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Minimise ``f`` without derivatives (standard reflection/expansion/contraction/shrink)."""
    n = len(x0)
    simplex = [x0.astype(float)] + [x0 + step * np.eye(n)[i] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if abs(values[-1] - values[0]) < tol:
            break
        centroid = np.mean(simplex[:-1], axis=0)
        reflected = centroid + (centroid - simplex[-1])
        fr = f(reflected)
        if fr < values[0]:
            expanded = centroid + 2 * (centroid - simplex[-1])
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (x - simplex[0]) for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    best = int(np.argmin(values))
    return simplex[best], values[best]


STARTS = ((0.9, 0.5, 2.0, OVERLAP, 1.0, 50.0), (0.9, 0.7, 0.5, OVERLAP, 0.7, 200.0),
          (0.7, 0.4, 8.0, OVERLAP, 0.5, 10.0), (1.0, 0.9, 20.0, OVERLAP, 1.0, 400.0))


def fit(cases: Sequence[FitCase]) -> tuple[list[float], float]:
    """Best parameters over a few starting points (the loss has shallow valleys between the efficiencies)."""
    best, best_loss = None, math.inf
    depthwise = any(c.has_depthwise for c in cases)
    for start in STARTS:
        x, value = nelder_mead(lambda x: loss(cases, _to_params(x)), _from_params(start, depthwise))
        x, value = nelder_mead(lambda x: loss(cases, _to_params(x)), x, step=0.05)  # restart: polish
        if value < best_loss:
            best, best_loss = x, value
    assert best is not None
    return _to_params(best), best_loss


def errors_pct(cases: Sequence[FitCase], params: Sequence[float]) -> np.ndarray:
    return np.array([100.0 * (c.images_per_second(params) / c.row.images_per_second - 1.0) for c in cases])


def leave_one_network_out(cases: Sequence[FitCase]) -> dict[str, tuple[list[float], np.ndarray]]:
    """For each network: parameters fitted without it, and its rows' held-out errors (%)."""
    result = {}
    for network in dict.fromkeys(c.row.network for c in cases):
        train = [c for c in cases if c.row.network != network]
        test = [c for c in cases if c.row.network == network]
        params, _ = fit(train)
        result[network] = (params, errors_pct(test, params))
    return result


def calibration_toml(cases: Sequence[FitCase], params: Sequence[float], lono: dict[str, tuple[list[float],
                     np.ndarray]], version: str, fitted: str, data_label: str,
                     nested: Sequence[NestedFold] | None = None) -> str:
    """The generated [calibration] section: parameters, fit quality, residuals per row."""
    errs = errors_pct(cases, params)
    held = np.concatenate([e for _, e in lono.values()])
    if nested:
        outer = np.abs(np.concatenate([f.errors for f in nested]))
        covered = sum(int(inside) for f in nested for inside in fold_coverage(f))
        band = math.ceil(float(np.quantile(outer, BAND_QUANTILE)))
        nested_lines = [f"nested_median_abs_pct = {float(np.median(outer)):.2f}",
                        f"nested_max_abs_pct = {float(outer.max()):.2f}",
                        f"band_coverage_pct = {100.0 * covered / len(outer):.1f}"]
        band_rule = (f"error band = {BAND_QUANTILE:.0%} quantile of nested cross-validation held-out errors "
                     f"(aimed at {BAND_COVERAGE:.0%} coverage of unseen networks), widened per extrapolation ([band])")
    else:
        band = math.ceil(float(np.percentile(np.abs(held), 90)))
        nested_lines, band_rule = [], "error band = 90th percentile of leave-one-network-out errors"
    kinds = sorted(set().union(*(c.kinds for c in cases)))
    lines = [
        "[calibration]",
        f'version = "{version}"',
        f'fitted = "{fitted}"',
        f'data = "{data_label}"',
        'procedure = "dlakit.perf.calibrate: 5 global parameters (compute_efficiency, dram_efficiency, '
        'op_overhead_us per hardware op = per image at EMC 3200 MHz, launch_us per inference of a loadable at '
        'Falcon 844.8 MHz, depthwise_efficiency <= 1 of the derived depthwise rate, fitted only with a depthwise '
        'network among the rows; overlap of streamed traffic fixed at 1, CBUF re-fetches not overlapped), '
        'Nelder-Mead '
        'on the squared log error of images/s over all rows, zoo networks in prepared form, all layers on DLA; '
        f'{band_rule}"',
        f"compute_efficiency = {params[0]:.5f}",
        f"dram_efficiency = {params[1]:.5f}",
        f"op_overhead_us = {params[2]:.3f}",
        f"overlap = {params[3]:.5f}",
        f"launch_us = {params[5]:.2f}",
        f"depthwise_efficiency = {params[4]:.5f}",
        f"rows = {len(cases)}",
        f"median_abs_pct = {float(np.median(np.abs(errs))):.2f}",
        f"lono_median_abs_pct = {float(np.median(np.abs(held))):.2f}",
        f"lono_p90_abs_pct = {float(np.percentile(np.abs(held), 90)):.2f}",
        f"error_band_pct = {band:.1f}",
        *nested_lines,
        f"networks = [{', '.join(repr(n).replace(chr(39), chr(34)) for n in lono)}]",
        f"layer_kinds = [{', '.join(chr(34) + k + chr(34) for k in kinds)}]",
        "residuals = [",
    ]
    for case, err in zip(cases, errs, strict=True):
        r = case.row
        lines.append(f'  {{ network = "{r.network}", batch = {r.batch}, weights = "{r.weights}", '
                     f'power_mode = "{r.power_mode}", cores = {r.cores}, measured = {r.images_per_second:g}, '
                     f"predicted = {case.images_per_second(params):.1f}, error_pct = {err:.2f} }},")
    lines.append("]")
    return "\n".join(lines) + "\n"


MARKER = "# === calibration: generated by benchmarks/bench_estimate.py --write; everything below is replaced ===\n"


def write_calibration(section: str, path: Path | None = None) -> Path:
    """Replace everything after perf.toml's generated-section marker line with ``section``."""
    from importlib import resources

    from dlakit.atomic import write_text

    path = path or Path(str(resources.files("dlakit.data").joinpath("perf.toml")))
    text = path.read_text(encoding="utf-8")
    if MARKER not in text:
        raise ValueError(f"{path}: no generated-calibration marker line; restore it before refitting")
    write_text(path, text[: text.index(MARKER) + len(MARKER)] + section)
    load_perf_data.cache_clear()
    return path


#: Structure candidates the nested cross-validation chooses among (model-section overrides of perf.toml): whether a
#: tiled convolution's input rows are aligned to CBUF banks, and whether each image of a batch has the whole SRAM
#: pool (only the two batch-2 networks together can tell: a fold holding one of them out cannot, so the nested CV
#: reports the procedure's error, not the stored structure's). The CBUF's weight/data split stays at half (with the
#: split among the candidates too, 3/8 or 5/8 is picked in three folds on noise: nested median 5.5%, against 2.2%
#: without). Whether a batch shares a layer's weight fetch is not a candidate: it follows from the tiling
#: (dlakit.perf.cost.conv_traffic).
STRUCTURES: tuple[dict[str, float], ...] = tuple(
    {"cbuf_rows_bank_aligned": aligned, "sram_per_image": per_image} for per_image in (0, 1) for aligned in (0, 1))
#: Share of held-out rows the error band is meant to cover.
BAND_COVERAGE = 0.8
#: The band is this quantile of held-out errors: a quantile of one set of held-out errors covers less of the next
#: held-out network than its level says (with the launch cost and depthwise efficiency fitted, the 90% quantile of
#: each fold's inner errors covered 76% of the outer rows, the 95% quantile 88%), so the band is taken at 95%,
#: which the nested folds show to cover >= BAND_COVERAGE (bench_estimate.py prints the coverage).
BAND_QUANTILE = 0.95


def with_model(data: PerfData, overrides: dict[str, float]) -> PerfData:
    """``data`` with some [model] structure parameters replaced (sources say so)."""
    model = dict(data.model)
    for key, value in overrides.items():
        model[key] = Param(float(value), f"nested-CV candidate ({key} = {value:g})", "low")
    return dataclasses.replace(data, model=model)


def _lono_errors(cases: Sequence[FitCase]) -> np.ndarray:
    return np.concatenate([e for _, e in leave_one_network_out(cases).values()])


@dataclass
class NestedFold:
    network: str
    structure: dict[str, float]
    params: list[float]
    errors: np.ndarray       # held-out errors (%) of this network's rows
    band_pct: float          # error band from the inner cross-validation only
    cases: list[FitCase]


def nested_cv(cases_by_structure: Sequence[Sequence[FitCase]],
              structures: Sequence[dict[str, float]] = STRUCTURES) -> list[NestedFold]:
    """Outer leave-one-network-out; inside each fold the structure is chosen, and the band sized, by a
    leave-one-network-out over the remaining networks only (the held-out network never touches either)."""
    networks = list(dict.fromkeys(c.row.network for c in cases_by_structure[0]))
    folds = []
    for held in networks:
        best = None
        for index, cases in enumerate(cases_by_structure):
            train = [c for c in cases if c.row.network != held]
            inner = np.abs(_lono_errors(train))
            score = float(np.median(inner))
            if best is None or score < best[0] - 1e-9:
                best = (score, index, inner)
        assert best is not None
        _, index, inner = best
        train = [c for c in cases_by_structure[index] if c.row.network != held]
        test = [c for c in cases_by_structure[index] if c.row.network == held]
        params, _ = fit(train)
        band = float(np.quantile(inner, BAND_QUANTILE))
        folds.append(NestedFold(held, dict(structures[index]), params, errors_pct(test, params), band, test))
    return folds


def categories(row: Measurement) -> dict[str, str]:
    """The categories a row's error is reported under (issue 21)."""
    return {"weights": row.weights, "cores": f"{row.cores} core(s)", "power mode": row.power_mode,
            "family": network_family(row.network), "batch": f"batch {row.batch}"}


def network_family(network: str) -> str:
    if "mobilenet" in network:
        return "depthwise (MobileNet)"
    if network.startswith("resnet50") or network == "resnet34-backbone":
        return "ResNet classifier/backbone"
    if "resnext" in network:
        return "grouped (ResNeXt)"
    return "ResNet detector"


def fold_coverage(fold: NestedFold) -> list[bool]:
    """Whether each held-out row of ``fold`` lies inside the band its inner cross-validation gives, widened for
    the row's extrapolations as an estimate would be (only depthwise applies among NVIDIA's rows)."""
    from dlakit.perf.band import extrapolations, widened

    data = load_perf_data()
    inside = []
    for case, err in zip(fold.cases, fold.errors, strict=True):
        tags = extrapolations(generation=2, fit_platform=True, precision=Precision.INT8, cores=case.row.cores,
                              batch=case.row.batch, kinds=case.kinds)
        inside.append(abs(float(err)) <= widened(fold.band_pct, tags, data))
    return inside
