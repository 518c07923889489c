"""``dlakit trtexec`` (the command for the board) and ``dlakit compare`` (what the board did, against dlakit)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlakit.cli.common import ModelArg, PlatformOpt, ReleaseOpt, ShapesOpt, check_format, print_json
from dlakit.deploy.tensorrt_logs import parse_build_log, parse_profile, read_text
from dlakit.errors import DlakitError
from dlakit.targets import resolve_target
from dlakit.vocab import Placement, Precision


def _layer_list(value: str | None) -> list[str]:
    """``a,b,c``, ``@file`` (one name per line or a dlakit quantize JSON with "fp16_nodes"), or nothing."""
    if not value:
        return []
    if value.startswith("@"):
        text = read_text(value[1:], "layer list")
        if text.lstrip().startswith("{"):
            import json

            data = json.loads(text)
            for key in ("fp16_layers", "fp16_nodes"):
                if key in data:
                    return list(data[key])
            raise DlakitError(f"{value[1:]}: JSON without an 'fp16_layers' or 'fp16_nodes' list")
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [v.strip() for v in value.split(",") if v.strip()]


def trtexec(
    model: str = ModelArg,
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    core: int = typer.Option(0, "--core", help="DLA core to build for."),
    int8: bool = typer.Option(True, "--int8/--fp16", help="INT8 (default) or FP16 build."),
    calib: str | None = typer.Option(None, "--calib", help="TensorRT calibration cache (dlakit quantize)."),
    fp16_layers: str | None = typer.Option(
        None, "--fp16-layers", help="Layers kept in FP16: a,b or @file (names, or dlakit quantize's JSON)."
    ),
    sparse: bool = typer.Option(False, "--sparse", help="Add --sparsity (enable if weights are 2:4, else force)."),
    standalone: bool = typer.Option(False, "--standalone", help="Build a cuDLA loadable (no GPU fallback)."),
    profile: bool = typer.Option(False, "--profile", help="Add per-layer profiling exports for dlakit compare."),
    fmt: str = typer.Option("table", "--format", "-f", help="table (a commented shell command) or json."),
) -> None:
    """Print the exact trtexec command for the target release, with a comment explaining every flag."""
    from dlakit.analysis import Analysis
    from dlakit.deploy.trtexec import TrtexecOptions, build_command
    from dlakit.model import parse_shapes
    from dlakit.sources import open_model

    check_format(fmt, ("table", "json"))
    precision = Precision.INT8 if int8 else Precision.FP16
    target = resolve_target(platform, release)
    loaded = open_model(model, shapes)
    report = Analysis.of(loaded, target, precision).placement
    sparsity = None
    if sparse:
        sparsity = "enable" if _has_sparse_weights(report) else "force"
    setup = []
    model_path = model
    if not Path(model).exists():  # a zoo name: the command reads the file the first line writes
        from dlakit.zoo.registry import canonical

        model_path = f"{canonical(model)}.onnx"
        setup = [f"dlakit zoo build {canonical(model)} -o {model_path}"]
    options = TrtexecOptions(core=core, precision=precision, calib=calib, layer_precisions=_layer_list(fp16_layers),
                             sparse=sparsity, standalone=standalone, shapes=parse_shapes(shapes), profile=profile,
                             model_path=model_path)
    calib_warnings: list[str] = []
    if options.calib:  # quantize (and ONNX Runtime with it) only loads when a cache is given
        from dlakit.quantize.deploy import with_calibration

        calib_warnings = with_calibration(options, report, loaded.graph)
    command = build_command(report, loaded.graph, options)
    command.setup = setup
    command.warnings += calib_warnings
    if fmt == "json":
        print_json(command.as_dict())
    else:
        typer.echo(command.script(), nl=False)


def _has_sparse_weights(report) -> bool:
    from dlakit.model import constant_array
    from dlakit.sparsity.pattern import has_2to4

    convs = [n for n in report.nodes if n.op == "Conv" and n.placement == Placement.DLA]
    arrays = [constant_array(n.node.inputs[1]) for n in convs]
    return any(a is not None and a.ndim == 4 and a.shape[1] > 64 and has_2to4(a) for a in arrays)


def compare(
    model: str = ModelArg,
    log: str | None = typer.Option(None, "--log", help="trtexec build log (--verbose not needed)."),
    profile: str | None = typer.Option(None, "--profile", help="trtexec --exportProfile JSON (one DLA core)."),
    power_mode: str | None = typer.Option(None, "--power-mode", help="Power mode the board ran in."),
    refit: str | None = typer.Option(None, "--refit", help="Refit the performance model to this measurement and "
                                     "save it as local profile NAME (dlakit estimate --profile NAME)."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    int8: bool = typer.Option(True, "--int8/--fp16", help="Precision the engine was built with."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Compare what TensorRT did on the device (build log, profile) with dlakit's placement and estimate."""
    from dlakit.analysis import Analysis
    from dlakit.deploy.compare import compare_placement, compare_timing
    from dlakit.sources import open_model

    check_format(fmt, ("table", "json"))
    if refit and profile is None:
        raise DlakitError("--refit needs --profile (trtexec --exportProfile JSON measured on the board)")
    if log is None and profile is None:
        raise DlakitError("compare: give --log (trtexec build log) and/or --profile (trtexec --exportProfile JSON)")
    precision = Precision.INT8 if int8 else Precision.FP16
    target = resolve_target(platform, release)
    analysis = Analysis.of(open_model(model, shapes), target, precision)
    report = analysis.placement
    result = timing = None
    if log is not None:
        build = parse_build_log(read_text(log, "build log"))
        if not build.dla_subgraphs and not build.gpu_layers and not build.fallbacks:
            raise DlakitError(f"{log}: no placement found; build with trtexec --useDLACore=N --allowGPUFallback and "
                              "keep its INFO output (the 'Layers Running on DLA/GPU' block)")
        result = compare_placement(report, build)
    if profile is not None:
        from dlakit.perf import conditions_for, evaluate

        entries = parse_profile(read_text(profile, "profile"), profile)
        cond, label = conditions_for(target, power_mode, cores=1, precision=precision)
        prepared = analysis.prepared
        timing = compare_timing(report, evaluate(prepared, cond, label), entries)
        if refit:
            from dlakit.perf.profiles import BoardMeasurement, save_profile
            from dlakit.perf.profiles import refit as refit_model

            measured = [BoardMeasurement(prepared, cond, label, timing.measured_total_ms)]
            calib = refit_model(measured)
            path = save_profile(refit, calib, measured)
            refitted = evaluate(prepared, cond, label, calib=calib).latency_ms
            typer.echo(f"refitted profile '{refit}' written to {path}: predicted {timing.predicted_total_ms:.3f} ms "
                       f"→ {refitted:.3f} ms (measured {timing.measured_total_ms:.3f} ms)", err=True)
            from dlakit.perf.profiles import MAX_FACTOR, bounded_parameters

            stuck = bounded_parameters(calib)
            if stuck:
                typer.echo(f"warning: {', '.join(stuck)} stopped at {MAX_FACTOR:g}x the shipped value: the measurement "
                           "disagrees with the model beyond what a refit absorbs (GPU layers or reformat copies in "
                           "the end-to-end time?); check the per-loadable times above", err=True)
    if fmt == "json":
        print_json({"model": report.source, "target": target.label,
                    "placement": result.as_dict() if result else None,
                    "timing": timing.as_dict() if timing else None})
        return
    console = Console()
    console.print(escape(f"model: {report.source}\ntarget: {target.label}"))
    if timing is not None:
        table = Table(title="Measured vs predicted time (one DLA core)", title_justify="left")
        for column in ("TensorRT layer", "dlakit subgraph", "measured ms", "predicted ms", "error"):
            table.add_column(column, overflow="fold")
        for row in timing.subgraphs:
            table.add_row(escape(row.name), "" if row.subgraph is None else str(row.subgraph), f"{row.measured_ms:.3f}",
                          "" if row.predicted_ms is None else f"{row.predicted_ms:.3f}",
                          "" if row.error_pct is None else f"{row.error_pct:+.1f}%")
        table.add_row("end to end", "", f"{timing.measured_total_ms:.3f}", f"{timing.predicted_total_ms:.3f}",
                      f"{timing.total_error_pct:+.1f}%")
        console.print(table)
    if result is None:
        return
    console.print(f"DLA subgraphs: measured {result.measured_subgraphs}, predicted {result.predicted_subgraphs}; "
                  f"node agreement {result.agreement:.1%} ({len(result.agree)} nodes agree)")
    if result.predicted_dla_measured_gpu or result.predicted_gpu_measured_dla:
        table = Table(title="Disagreements", title_justify="left")
        for column in ("node", "dlakit", "TensorRT", "why"):
            table.add_column(column, overflow="fold")
        for name, why in result.predicted_dla_measured_gpu:
            table.add_row(escape(name), "dla", "gpu", escape(f"TensorRT: {why}"))
        for name, why in result.predicted_gpu_measured_dla:
            table.add_row(escape(name), "gpu", "dla", escape(f"dlakit: {why}"))
        console.print(table)
    if result.unknown_layers:
        console.print(escape(f"layers in the log that are not ONNX node names (fused or renamed): "
                             f"{', '.join(result.unknown_layers[:10])}"))


def register(app: typer.Typer) -> None:
    app.command("trtexec")(trtexec)
    app.command("compare")(compare)
