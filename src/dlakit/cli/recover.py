"""``dlakit recover``: INT8 accuracy recovery for DLA (equalization, bias correction, range search, FP16 layers)."""

from __future__ import annotations

from pathlib import Path

import typer

from dlakit.cli.common import ModelArg, PlatformOpt, ProgressOpt, ReleaseOpt, ShapesOpt, check_format, print_json
from dlakit.errors import DlakitError
from dlakit.scale import RayOpt, WorkersOpt, pool
from dlakit.vocab import Precision

PresetOpt = typer.Option("imagenet", "--preset", help="Image preprocessing preset (see dlakit quantize --help).")


def recover_command(
    model: str = ModelArg,
    calib: str = typer.Option(..., "--calib", "-c", help="Calibration data: image folder, .npy/.npz file or folder."),
    output: str = typer.Option(..., "--output", "-o", help="Folder for the recovered model, cache, JSON, Q/DQ."),
    target_sqnr: float | None = typer.Option(None, "--target-sqnr", help="Keep the fewest MACs in FP16 to reach "
                                             "this output SQNR (dB) on the calibration data."),
    max_fp16_macs: float | None = typer.Option(None, "--max-fp16-macs", help="Best SQNR with at most this "
                                               "fraction of MACs in FP16 (0..1)."),
    allow_uint8: bool = typer.Option(False, "--allow-uint8", help="Unsigned INT8 for never-negative tensors "
                                     "(DLA ≥ 3.16 only, e.g. --release jetpack-7.2.2)."),
    relu6: str = typer.Option("keep", "--relu6", help="ReLU6 in equalized pairs: keep (never changed), bounded "
                              "(scale channels that provably stay below 6), relu (model change, measured)."),
    equalize: bool = typer.Option(False, "--equalize/--no-equalize", help="Cross-layer equalization (exact FP32 "
                                  "rewrite; off by default: it did not help on the networks measured)."),
    no_bias_correction: bool = typer.Option(False, "--no-bias-correction", help="Skip bias correction."),
    no_range_search: bool = typer.Option(False, "--no-range-search", help="Keep max ranges."),
    budget: bool = typer.Option(False, "--noise-budget", help="Measure each quantization point's share of the "
                                "output noise (weights, each activation scale) on the search subset: one emulator "
                                "run per scale group."),
    preset: str = PresetOpt,
    num_samples: int | None = typer.Option(None, "--num-samples", "-n", help="Use at most this many samples."),
    shapes: str | None = ShapesOpt,
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    progress: bool = ProgressOpt,
    workers: int | None = WorkersOpt,
    address: str | None = RayOpt,
) -> None:
    """Recover INT8 accuracy on DLA and write the recovered FP32 model with the files `dlakit quantize` writes."""
    from dlakit.analysis import Analysis  # onnx, onnx_ir, onnxruntime: imported when the command runs
    from dlakit.quantize.data import make_preset, open_source
    from dlakit.quantize.runtime import input_specs, upgrade_for_qdq
    from dlakit.recover.files import write_recovery_files
    from dlakit.recover.pipeline import RecoverOptions, recover
    from dlakit.recover.report import render_table
    from dlakit.scale.trials import sharder
    from dlakit.sources import open_model
    from dlakit.targets import resolve_target

    check_format(fmt, ("table", "json"))
    if target_sqnr is not None and not -100 < target_sqnr < 200:
        raise DlakitError(f"--target-sqnr: {target_sqnr} is not an SQNR in dB; e.g. 30")
    if Path(output).exists() and not Path(output).is_dir():
        raise DlakitError(f"-o {output}: exists and is not a folder; give a folder for the outputs")
    target = resolve_target(platform, release)
    loaded = upgrade_for_qdq(open_model(model, shapes))
    sample_shapes, _ = input_specs(loaded)
    source = open_source(calib, sample_shapes, make_preset(preset), num_samples)
    options = RecoverOptions(equalize=equalize, relu6=relu6, bias_correction=not no_bias_correction,
                             range_search=not no_range_search, target_sqnr_db=target_sqnr,
                             max_fp16_macs=max_fp16_macs, allow_uint8=allow_uint8, release=release,
                             platform=platform, noise_budget=budget, progress=progress)
    with pool(workers, address) as where:  # the sensitivity and noise-budget runs sharded over Ray
        options.trial_runner = sharder(where)
        result = recover(loaded, source, options, Analysis.of(loaded, target, Precision.INT8))
    summary = write_recovery_files(output, loaded.source, result, target)
    if fmt == "json":
        print_json(summary)
        return
    render_table(summary)


def register(app: typer.Typer) -> None:
    app.command("recover")(recover_command)
