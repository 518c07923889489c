"""``dlakit quantize``, ``qdq-translate``, ``emulate`` and ``eval``: DLA INT8 files and accuracy without a device."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from dlakit.choices import DEFAULT_BUDGET_MB, METHODS
from dlakit.cli.common import (
    FormatOpt,
    ModelArg,
    NumSamplesOpt,
    PlatformOpt,
    Preprocessing,
    ProgressOpt,
    ReleaseOpt,
    ShapesOpt,
    check_format,
    preprocessing_options,
    print_json,
)
from dlakit.errors import DlakitError
from dlakit.scale import RayOpt, WorkersOpt, pool
from dlakit.targets import resolve_target
from dlakit.vocab import Precision

if TYPE_CHECKING:
    import onnx

    from dlakit.quantize.data import Preset


def _names(text: str | None) -> set[str]:
    return {n.strip() for n in (text or "").split(",") if n.strip()}


@preprocessing_options
def quantize(
    model: str = ModelArg,
    calib: str = typer.Option(..., "--calib", "-c", help="Calibration data: image folder, .npy/.npz file or folder."),
    output: str = typer.Option(..., "--output", "-o", help="Folder for the cache, JSON, Q/DQ model, trtexec."),
    method: str = typer.Option("entropy", "--method", "-m", help=f"Calibration method: {', '.join(METHODS)}."),
    percentile: float = typer.Option(99.99, "--percentile", help="Percentile of |x| for --method percentile."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    num_samples: int | None = NumSamplesOpt,
    preprocessing: Preprocessing = None,  # type: ignore[assignment]  # the option group (preprocessing_options)
    fp16_layers: str | None = typer.Option(None, "--fp16-layers", help="Comma-separated layers to keep in FP16."),
    budget_mb: int = typer.Option(DEFAULT_BUDGET_MB, "--memory-budget-mb", help="Activations held per batch; "
                                  "more tensors are collected in several passes."),
    qdq_precision: str = typer.Option("auto", "--qdq-precision", help="Float type of the Q/DQ model: fp16 "
                                      "(strongly typed DLA, TensorRT 11.4+), fp32, or auto (by --release)."),
    progress: bool = ProgressOpt,
    fmt: str = FormatOpt,
    workers: int | None = WorkersOpt,
    address: str | None = RayOpt,
) -> None:
    """Calibrate MODEL on your data and write the DLA INT8 files for the release: calibration cache, scales JSON,
    --layerPrecisions string, Q/DQ model and the trtexec command."""
    from dlakit.analysis import Analysis
    from dlakit.quantize.calibrate import calibrate
    from dlakit.quantize.data import open_source
    from dlakit.quantize.outputs import write_outputs
    from dlakit.quantize.runtime import input_specs, upgrade_for_qdq
    from dlakit.scale.calib import sharder
    from dlakit.sources import open_model

    check_format(fmt, ("table", "json"))
    if not 0 < percentile <= 100:
        raise DlakitError(f"--percentile: {percentile} is not in (0, 100]; e.g. 99.99")
    if budget_mb < 1:
        raise DlakitError(f"--memory-budget-mb: {budget_mb} is not a positive number of MiB")
    target = resolve_target(platform, release)
    loaded = upgrade_for_qdq(open_model(model, shapes))
    analysis = Analysis.of(loaded, target, Precision.INT8)
    sample_shapes, _ = input_specs(loaded)
    source = open_source(calib, sample_shapes, preprocessing.preset(), num_samples)
    with pool(workers, address) as where:  # the statistics pass sharded over Ray: the same statistics
        result = calibrate(loaded, source, method, percentile, _names(fp16_layers), budget_mb, progress,
                           off_dla=analysis.off_dla, sharded=sharder(where))
    raw, tied, costs = result.ranges()
    info = {"model": loaded.source, "method": method, "samples": result.samples,
            "calibration_seconds": round(result.seconds, 2)}
    written = write_outputs(output, loaded, result.model, result.plan, raw, tied, costs, target, info,
                            result.never_negative(), qdq_precision=qdq_precision, placement=analysis.placement)
    if fmt == "json":
        print_json(written.summary)
        return
    _print_quantize(written.summary)


def _print_quantize(summary: dict[str, Any]) -> None:
    console = Console()
    fused = sum(1 for t in summary["tensors"] if t["fused_into"])
    console.print(f"[bold]{summary['model']}[/bold] for {summary['target']}: {len(summary['tensors']) - fused} "
                  f"INT8 tensors (+{fused} fused intermediates) scaled from {summary['samples']} samples "
                  f"({summary['method']}, {summary['calibration_seconds']} s)")
    never = sum(1 for t in summary["tensors"] if t["never_negative"])
    if never:
        console.print(f"{never} never-negative tensors use half the INT8 levels (DLA INT8 is symmetric)")
    if summary["equal_scale_costs"]:
        table = Table(title="scales widened by DLA's equal-scale rules")
        for column in ("tensor", "own amax", "shared amax", "bits lost", "why"):
            table.add_column(column, overflow="fold")
        for cost in summary["equal_scale_costs"][:10]:
            table.add_row(cost["tensor"], f"{cost['own_amax']:.4g}", f"{cost['amax']:.4g}", f"{cost['bits_lost']}",
                          cost["reason"])
        console.print(table)
    if summary["fp16_layers"]:
        console.print(f"FP16 layers: {summary['layer_precisions']}")
    for key, path in summary["files"].items():
        console.print(f"  {key:17} {path}")
    for warning in summary["trtexec_warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def qdq_translate(
    model: str = ModelArg,
    output: str = typer.Option(..., "--output", "-o", help="Folder for the outputs."),
    calib_cache: str | None = typer.Option(None, "--calib-cache", help="Reverse direction: build a Q/DQ model "
                                           "of MODEL from this calibration cache."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    rtol: float = typer.Option(1e-3, "--rtol", help="Relative tolerance of the weight-scale check."),
    fmt: str = FormatOpt,
) -> None:
    """Q/DQ model → model without Q/DQ + calibration cache + scales JSON + FP16 layer list, checking weight scales
    against TensorRT's per-channel max|W|/127 rule; with --calib-cache, the reverse (cache → Q/DQ model)."""
    from dlakit.emulation import cache_to_qdq, qdq_to_cache

    check_format(fmt, ("table", "json"))
    if not rtol > 0:
        raise DlakitError(f"--rtol: {rtol} is not a positive tolerance; e.g. 1e-3")
    target = resolve_target(platform, release)
    if calib_cache is not None:
        summary = cache_to_qdq(model, shapes, calib_cache, output, target)
    else:
        summary = qdq_to_cache(model, shapes, output, target, rtol)
    if fmt == "json":
        print_json(summary)
        return
    console = Console()
    console.print(f"[bold]{summary['model']}[/bold]: {len(summary['tensors'])} tensor scales ({summary['direction']})")
    for mismatch in summary.get("weight_scale_mismatches", []):
        console.print(f"[yellow]weight scale mismatch:[/yellow] {mismatch['layer']} ({mismatch['weight']}): "
                      f"{mismatch['channels']} channel(s) differ from max|W|/127 (worst ratio "
                      f"{mismatch['worst_ratio']}); TensorRT will recompute these scales")
    if "weights_checked" in summary:
        console.print(f"{summary['weights_checked']} weight tensors checked, "
                      f"{len(summary['weight_scale_mismatches'])} mismatch(es)")
    for key, path in summary["files"].items():
        console.print(f"  {key:17} {path}")


@preprocessing_options
def emulate(
    model: str = ModelArg,
    inputs: str = typer.Option(..., "--inputs", "-i", help="Input data: image folder, .npy/.npz file or folder."),
    calib_cache: str | None = typer.Option(None, "--calib-cache", help="TensorRT calibration cache for MODEL."),
    qdq: bool = typer.Option(False, "--qdq", help="MODEL is a Q/DQ model: take the scales from its Q/DQ nodes."),
    compare: bool = typer.Option(False, "--compare", help="Per-layer error against FP32, worst first."),
    top: int = typer.Option(20, "--top", help="Rows of the per-layer table."),
    save: str | None = typer.Option(None, "--save-emulated", help="Write the emulation model (ONNX) here."),
    rounding: str = typer.Option("even", "--rounding", help="INT8 rounding of ties: even (TensorRT's definition) "
                                 "or away (open NVDLA's converters; unsure for Orin): run both to see if it matters."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    num_samples: int | None = NumSamplesOpt,
    preprocessing: Preprocessing = None,  # type: ignore[assignment]  # the option group (preprocessing_options)
    progress: bool = ProgressOpt,
    fmt: str = FormatOpt,
    workers: int | None = WorkersOpt,
    address: str | None = RayOpt,
) -> None:
    """Run MODEL with DLA INT8 numerics on ONNX Runtime and report the error of every output against FP32."""
    import onnx

    from dlakit.atomic import write_with
    from dlakit.emulation import emulation_of
    from dlakit.quantize.calibrate import batch_size_for
    from dlakit.quantize.data import open_source
    from dlakit.quantize.emulate import compare_layers, output_errors
    from dlakit.quantize.runtime import input_specs

    check_format(fmt, ("table", "json"))
    if top < 0:
        raise DlakitError(f"--top: {top} is negative; give the number of rows to show")
    loaded, emulation = emulation_of(model, shapes, calib_cache, qdq, resolve_target(platform, release), rounding)
    sample_shapes, _ = input_specs(loaded)
    source = open_source(inputs, sample_shapes, preprocessing.preset(), num_samples)
    batch = batch_size_for(loaded)
    if save:
        write_with(save, lambda tmp: onnx.save(emulation.emulated.model, str(tmp)))
    summary: dict[str, Any] = {"model": loaded.source, "samples": len(source), "rounding": rounding,
                               "scaled_tensors": len(emulation.emulated.scales),
                               "fp16_layers": emulation.plan.fp16_layers,
                               "ignored_scales": emulation.ignored_scales}
    if workers is not None or address is not None:  # the same figures, the samples sharded over Ray workers
        from dlakit.scale.data import emulate_sharded

        with pool(workers, address) as where:
            summary["outputs"], errors = emulate_sharded(emulation, source, batch, compare, where, progress)
    else:
        summary["outputs"] = output_errors(emulation, source, batch, progress)
        errors = compare_layers(emulation.model, emulation.emulated, source, batch, progress) if compare else None
    if errors is not None:
        summary["layers"] = [e.as_dict() for e in errors]
    if fmt == "json":
        print_json(summary)
        return
    console = Console()
    console.print(f"[bold]{summary['model']}[/bold]: DLA INT8 emulation over {summary['samples']} samples, "
                  f"{summary['scaled_tensors']} INT8 tensors, {len(summary['fp16_layers'])} FP16 layers")
    table = Table(title="outputs vs FP32")
    for column in ("output", "SQNR dB", "max abs err", "cosine", "top-1 agreement"):
        table.add_column(column, overflow="fold")
    for row in summary["outputs"]:
        agree = row.get("top1_agreement")
        if row["max_abs_error"] is None:
            table.add_row(row["name"], "-", "-", "-", "not compared (integer / data-dependent)")
            continue
        table.add_row(row["name"], _cell(row["sqnr_db"]), f"{row['max_abs_error']:.4g}", f"{row['cosine']:.4f}",
                      "" if agree is None else f"{agree:.1%}")
    console.print(table)
    if compare:
        table = Table(title="per layer, worst first (layer SQNR: the error this layer adds)")
        for column in ("tensor", "op", "layer SQNR dB", "SQNR dB", "alone dB", "max abs err", "cosine"):
            table.add_column(column, overflow="fold")
        for row in summary["layers"][:top]:
            table.add_row(row["tensor"], row["op"], _cell(row["layer_sqnr_db"]), _cell(row["sqnr_db"]),
                          _cell(row["local_sqnr_db"]), _cell(row["max_abs_error"], ".4g"),
                          _cell(row["cosine"], ".4f"))
        console.print(table)


def _cell(value: Any, spec: str = "") -> str:
    """A table cell: '-' where there is no value (a tensor not compared), never Python's ``None``."""
    return "-" if value is None else format(value, spec)


@preprocessing_options
def evaluate(
    model: str = ModelArg,
    data: str = typer.Option(..., "--data", "-d", help="Labelled images: DATA/<class>/<image>, or see --labels; "
                             "with --coco, the images of the annotation file."),
    labels: str | None = typer.Option(None, "--labels", help="Lines '<image path> <class index>' relative to DATA."),
    coco: str | None = typer.Option(None, "--coco", help="COCO instances JSON: detection AP/AP50/AP75 instead of "
                                    "top-1 (the model outputs post-processed boxes in input pixels)."),
    detections: str | None = typer.Option(None, "--detections", help="With --coco: output names "
                                          "boxes,scores,classes[,count] or one [N,K,6|7] output."),
    class_ids: str = typer.Option("category", "--class-ids", help="With --coco: the class output is a COCO "
                                  "category id (category) or an index into the sorted category ids (index)."),
    box_format: str = typer.Option("xyxy", "--box-format", help="With --coco: box coordinates xyxy or yxyx, in "
                                   "input pixels or with -normalized in [0, 1] (TensorFlow exports: "
                                   "yxyx-normalized)."),
    calib_cache: str | None = typer.Option(None, "--calib-cache", help="Also evaluate DLA INT8 with this cache."),
    qdq: bool = typer.Option(False, "--qdq", help="MODEL is a Q/DQ model: evaluate it as DLA INT8."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    num_samples: int | None = NumSamplesOpt,
    preprocessing: Preprocessing = None,  # type: ignore[assignment]  # the option group (preprocessing_options)
    progress: bool = ProgressOpt,
    fmt: str = FormatOpt,
    workers: int | None = WorkersOpt,
    address: str | None = RayOpt,
) -> None:
    """Top-1/top-5 accuracy (or COCO detection AP with --coco), FP32 and emulated DLA INT8 side by side."""
    from dlakit.emulation import emulation_of
    from dlakit.quantize.calibrate import batch_size_for
    from dlakit.quantize.data import check_image_input
    from dlakit.quantize.evaluate import evaluate as run_eval
    from dlakit.quantize.evaluate import labelled_images
    from dlakit.quantize.runtime import input_specs, to_proto
    from dlakit.sources import open_model

    check_format(fmt, ("table", "json"))
    if calib_cache or qdq:
        loaded, emulation = emulation_of(model, shapes, calib_cache, qdq, resolve_target(platform, release))
        fp32, emulated = emulation.model, emulation.emulated.model
    else:
        loaded = open_model(model, shapes)
        fp32, emulated = to_proto(loaded), None
    sharded = workers is not None or address is not None
    if coco is not None and sharded:
        raise DlakitError("--workers/--ray shard classification eval only; run --coco without them")
    if coco is not None:
        _detection(loaded, fp32, emulated, data, coco, labels, detections, class_ids, box_format, num_samples,
                   preprocessing.preset(), progress, fmt)
        return
    if num_samples is not None and num_samples <= 0:
        raise DlakitError(f"--num-samples: must be positive, not {num_samples}")
    files, classes = labelled_images(data, labels)
    if num_samples:
        files, classes = files[:num_samples], classes[:num_samples]
    sample_shapes, _ = input_specs(loaded)
    if len(sample_shapes) != 1:
        raise DlakitError(f"{model}: eval feeds images to a single-input classifier; this model has "
                          f"{len(sample_shapes)} inputs")
    (name, shape), = sample_shapes.items()
    image_preset = preprocessing.preset()
    check_image_input(name, shape, image_preset)
    if sharded:
        from dlakit.scale.data import evaluate_sharded

        with pool(workers, address) as where:
            result = evaluate_sharded(fp32, emulated, files, classes, name, shape, image_preset,
                                      batch_size_for(loaded), where, progress)
    else:
        result = run_eval(fp32, emulated, files, classes, name, shape, image_preset, batch_size_for(loaded),
                          progress)
    result = {"model": loaded.source, **result}
    if fmt == "json":
        print_json(result)
        return
    table = Table(title=f"{loaded.source}: {result['samples']} labelled images")
    for column in ("", "top-1", "top-5"):
        table.add_column(column, overflow="fold")
    for key in ("fp32", "int8_emulated"):
        if key in result:
            acc = result[key]
            table.add_row(key, f"{acc['top1']:.2%}", f"{acc['top5']:.2%}")
    console = Console()
    console.print(table)
    if "top1_agreement" in result:
        console.print(f"top-1 agreement {result['top1_agreement']:.2%}, logit SQNR {result['logit_sqnr_db']} dB")


def _detection(loaded, fp32: onnx.ModelProto, emulated: onnx.ModelProto | None, data: str, coco: str,
               labels: str | None, detections: str | None, class_ids: str, box_format: str, num_samples: int | None,
               preset: Preset, progress: bool, fmt: str) -> None:
    from dlakit.quantize.calibrate import batch_size_for
    from dlakit.quantize.detection import evaluate_detection
    from dlakit.quantize.runtime import input_specs

    if labels is not None:
        raise DlakitError("--labels is for classification; with --coco the annotation file holds the ground truth")
    sample_shapes, _ = input_specs(loaded)
    if len(sample_shapes) != 1:
        raise DlakitError(f"{loaded.source}: eval feeds images to a single-input detector; this model has "
                          f"{len(sample_shapes)} inputs")
    (name, shape), = sample_shapes.items()
    result = evaluate_detection(fp32, emulated, data, coco, name, shape, preset, batch_size_for(loaded),
                                detections, class_ids, num_samples, progress, box_format)
    if fmt == "json":
        print_json({"model": loaded.source, "detection": result})
        return
    table = Table(title=f"{loaded.source}: {result['images']} images, {result['annotations']} boxes (COCO bbox AP)")
    for column in ("", "AP", "AP50", "AP75", "detections"):
        table.add_column(column, overflow="fold")
    for key in ("fp32", "int8_emulated"):
        if key in result:
            ap = result[key]
            table.add_row(key, *("n/a" if ap[k] is None else f"{ap[k]:.4f}" for k in ("ap", "ap50", "ap75")),
                          str(result["detections"][key]))  # type: ignore[index]
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)
    app.command("qdq-translate")(qdq_translate)
    app.command("emulate")(emulate)
    app.command("eval")(evaluate)


