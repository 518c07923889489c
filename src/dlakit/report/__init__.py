"""``dlakit report``: one self-contained HTML page a team lead can forward.

Everything is computed by the same functions the other commands use (check, estimate, trtexec); this module
only gathers the results and lays them out. The page has no external resources: plots are inline SVG.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlakit.analysis import Analysis
from dlakit.check import FIXABLE, GPU, CheckReport
from dlakit.deploy.trtexec import TrtexecCommand, TrtexecOptions, build_command
from dlakit.errors import DlakitError
from dlakit.model import LoadedModel
from dlakit.quantize.cache import is_cache_file
from dlakit.targets import Target
from dlakit.vocab import Precision


@dataclass
class ModeEstimate:
    power_mode: str
    dense: Any  # dlakit.perf.Estimate
    sparse: Any | None
    #: DLA vs GPU (dlakit.perf.power.VsGpu) for the dense and sparse estimates; None where not modelled
    vs_gpu: Any | None = None
    vs_gpu_sparse: Any | None = None


@dataclass
class ReportData:
    check: CheckReport
    loaded: LoadedModel
    modes: list[ModeEstimate] = field(default_factory=list)
    default: Any | None = None  # the estimate shown per layer (default power mode, dense)
    ceilings: tuple[float, float] | None = None  # (peak MAC/s, DRAM bytes/s) of one core
    estimate_error: str | None = None
    trtexec: TrtexecCommand | None = None
    int8_layers: list[dict[str, Any]] | None = None
    int8_error: str | None = None

    @property
    def fixes(self) -> list[tuple[str, int]]:
        counts = Counter(n.fix for n in self.check.nodes if n.placement == FIXABLE and n.fix)
        return counts.most_common()


def gather(source: Analysis | LoadedModel, target: Target | None = None, precision: str = Precision.INT8,
           calib: str | None = None) -> ReportData:
    """Run check, estimate (every power mode, dense and sparse), trtexec and, with data, the INT8 emulator, all on
    one placement: ``source``'s analysis (or that of a model, ``target`` and ``precision``)."""
    if isinstance(source, Analysis):
        analysis = source
    else:
        if target is None:
            raise TypeError("gather(model, target): a model needs its target")
        analysis = Analysis.of(source, target, precision)
    loaded, report = analysis.model, analysis.placement
    data = ReportData(check=report, loaded=loaded)
    _estimates(data, analysis)
    try:
        data.trtexec = _trtexec(report, loaded, analysis.precision, calib)
    except DlakitError as exc:  # e.g. a platform whose core count rules the command out
        data.estimate_error = data.estimate_error or str(exc)
    if calib:
        _int8(data, loaded, calib)
    return data


def _trtexec(report: CheckReport, loaded: LoadedModel, precision: str, calib: str | None) -> TrtexecCommand:
    """The command ``dlakit trtexec`` prints, with the report's ``--calib``: a cache is used as is (with the
    FP16 layers quantize would list); calibration data is not a cache, so the page says how to make one."""
    from dlakit.quantize.deploy import with_calibration

    is_cache = calib is not None and is_cache_file(calib)
    options = TrtexecOptions(precision=precision, model_path=_model_path(report.source),
                             calib=calib if is_cache else None)
    extra = with_calibration(options, report, loaded.graph)
    command = build_command(report, loaded.graph, options)
    from dlakit.zoo.registry import canonical, is_zoo_name

    if is_zoo_name(report.source) and not Path(report.source).exists():
        command.setup = [f"dlakit zoo build {canonical(report.source)} -o {options.model_path}"]
    if calib is not None and not is_cache and precision == Precision.INT8 and not report.target.release.strongly_typed:
        command.warnings = [w for w in command.warnings if not w.startswith("no --calib")]
        extra.append(f"the error table above calibrated on {calib}; for the board, write a cache with "
                     f"dlakit quantize {report.source} --calib {calib} -o DIR and add --calib=DIR/"
                     f"{_model_path(report.source).rsplit('/', 1)[-1][:-5]}.cache")
    command.warnings += extra
    return command


def _model_path(source: str) -> str:
    return source if source.endswith(".onnx") else f"{source}.onnx"


def _estimates(data: ReportData, analysis: Analysis) -> None:
    from dlakit.perf import conditions_for, evaluate, load_perf_data

    target, precision = analysis.target, analysis.precision
    try:
        prepared = analysis.prepared
        perf = load_perf_data()
        spec = perf.spec(target.platform.dla_generation)
        for mode in target.platform.power_modes:
            cond, label = conditions_for(target, mode.name, precision=precision)
            dense = evaluate(prepared, cond, label)
            sparse = None
            if spec.sparse and precision == Precision.INT8:
                cond_sparse, _ = conditions_for(target, mode.name, precision=precision, sparse=True)
                sparse = evaluate(prepared, cond_sparse, label)
            data.modes.append(ModeEstimate(mode.name, dense, sparse, *_vs_gpu(prepared, dense, cond, sparse,
                                                                             cond_sparse if sparse else None)))
        default = target.platform.power_mode(None)
        data.default = next(m.dense for m in data.modes if m.power_mode == default.name)
        macs_per_clk = spec.int8_macs_per_clk if precision == Precision.INT8 else spec.fp16_macs_per_clk
        cond, _ = conditions_for(target, default.name, precision=precision)
        data.ceilings = (macs_per_clk * cond.dla_mhz * 1e6, cond.dram_gbps * 1e9)
    except DlakitError as exc:
        data.estimate_error = str(exc)


def _vs_gpu(prepared: Any, dense: Any, cond: Any, sparse: Any, cond_sparse: Any) -> tuple[Any, Any]:
    """The DLA/GPU perf-per-watt comparison of ``estimate --vs-gpu``, or Nones where the GPU is not modelled."""
    try:
        from dlakit.perf.power import vs_gpu

        return (vs_gpu(prepared, dense, cond),
                vs_gpu(prepared, sparse, cond_sparse) if sparse is not None else None)
    except (ImportError, DlakitError):
        return None, None


def _int8(data: ReportData, loaded: LoadedModel, calib: str) -> None:
    from dlakit.quantize.report import per_layer_error

    try:
        data.int8_layers = per_layer_error(loaded, data.check, calib)
    except DlakitError as exc:
        data.int8_error = str(exc)


def gpu_or_fixable(report: CheckReport) -> list:
    return [n for n in report.nodes if n.placement in (GPU, FIXABLE)]
