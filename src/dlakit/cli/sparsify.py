"""``dlakit sparsify``: prune the convolutions the DLA can run 2:4 sparse, and say per layer whether it pays."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from dlakit.cli.common import ModelArg, PlatformOpt, PrecisionOpt, ReleaseOpt, ShapesOpt, check_format, print_json
from dlakit.errors import DlakitError
from dlakit.targets import resolve_target
from dlakit.vocab import Precision

if TYPE_CHECKING:
    from dlakit.check import CheckReport
    from dlakit.sparsity.apply import SparsifyResult


def _layers(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise DlakitError("--layers: give node names separated by commas, e.g. --layers conv5,conv7")
    return names


def sparsify(
    model: str = ModelArg,
    output: str = typer.Option(..., "--output", "-o", help="Where to write the pruned ONNX model."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    precision: str = PrecisionOpt,
    mode: str = typer.Option("magnitude", "--mode", help="magnitude (keep the 2 largest of every 4) or force "
                             "(TensorRT's --sparsity=force pattern, for performance studies)."),
    layers: str | None = typer.Option(None, "--layers", help="Prune only these convolutions (comma-separated "
                                      "node names); the others stay dense."),
    min_gain: float | None = typer.Option(None, "--min-gain", help="Prune only layers the performance model "
                                          "expects to get at least this much faster, e.g. 1.1."),
    power_mode: str | None = typer.Option(None, "--power-mode", "-m", help="Power mode for the speed-up "
                                          "estimate (default: the platform's)."),
    compare: str | None = typer.Option(None, "--compare", help="Measure the accuracy cost on DATA (image folder "
                                       "or .npy/.npz): dense vs pruned outputs in FP32 (ONNX Runtime)."),
    compare_int8: bool = typer.Option(False, "--compare-int8", help="With --compare: dense and pruned also "
                                      "through the DLA INT8 emulator (each calibrated on DATA)."),
    per_layer: bool = typer.Option(False, "--per-layer", help="With --compare: FP32 cost of pruning each layer "
                                   "alone, to choose --layers."),
    preset: str | None = typer.Option(None, "--preset", help="Image preprocessing for --compare (default: the zoo "
                                      "network's, else imagenet)."),
    num_samples: int = typer.Option(64, "--num-samples", help="At most this many samples from --compare DATA."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Prune the DLA-eligible convolutions to 2:4 structured sparsity and report, per layer, what it costs and gains.

    The input model is never modified. Pruning without fine-tuning costs accuracy: dlakit measures, it does not train.
    """
    from dlakit.analysis import Analysis
    from dlakit.model import parse_shapes
    from dlakit.sparsity.accuracy import accuracy_of
    from dlakit.sparsity.apply import sparsify_model
    from dlakit.sparsity.files import read_source, write_model
    from dlakit.sparsity.gain import perf_gains
    from dlakit.sparsity.pattern import MODES

    check_format(fmt, ("table", "json"))
    if mode not in MODES:
        raise DlakitError(f"--mode: '{mode}' is not one of {', '.join(MODES)}")
    selected = _layers(layers)
    if (compare_int8 or per_layer) and compare is None:
        raise DlakitError("--compare-int8 and --per-layer need --compare DATA (images or .npy/.npz to run)")
    target = resolve_target(platform, release)
    proto, loaded = read_source(model, shapes)
    data_source = None
    if compare is not None:  # open the data before any work, so a bad path fails fast
        from dlakit.sparsity.accuracy import open_batches

        data_source = open_batches(compare, loaded, preset or _zoo_preset(model), num_samples)
    report = Analysis.of(loaded, target, precision).placement
    gains = None
    if min_gain is not None or (target.is_orin and precision == Precision.INT8):
        gains = perf_gains(loaded, report, power_mode)
    elif power_mode is not None:
        target.platform.power_mode(power_mode)  # still validate the name
    result = sparsify_model(proto, report, mode, selected, min_gain, gains)
    write_model(result.model, output)
    data = as_dict(result, model, output, target_info(report))
    if data_source is not None:
        data["accuracy"] = accuracy_of(proto, report, result, data_source, compare_int8, per_layer,
                                       parse_shapes(shapes))
    if fmt == "json":
        print_json(data)
    else:
        render(result, data)


def _zoo_preset(model: str) -> str | None:
    from pathlib import Path

    from dlakit.quantize.data import PRESETS

    return model if model in PRESETS and not Path(model).exists() else None


def target_info(report: CheckReport) -> dict[str, Any]:
    t = report.target
    return {"platform": t.platform.key, "platform_name": t.platform.name, "release": t.release.key,
            "precision": report.precision, "defaulted": list(t.defaulted)}


def as_dict(result: SparsifyResult, model: str, output: str, target: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "output": output,
        "target": target,
        "mode": result.mode,
        "summary": result.summary(),
        "layers": [layer.as_dict() for layer in result.layers],
        "notes": result.notes,
    }


def render(result: SparsifyResult, data: dict[str, Any]) -> None:
    """Eligible layers one per row (what was done, energy kept, speed-up); ineligible ones grouped by reason."""
    from dlakit.sparsity.apply import PRUNED, LayerResult

    console = Console()
    t, s = data["target"], data["summary"]
    assumed = f" (assumed: {', '.join(t['defaulted'])})" if t["defaulted"] else ""
    console.print(f"[bold]{data['model']}[/] → {data['output']}: {t['platform_name']}, {t['release']}, "
                  f"{t['precision'].upper()}{assumed}; mode {result.mode}")
    eligible = [x for x in result.layers if x.info.eligible]
    if eligible:
        table = Table(title="Eligible convolutions (DLA can run them 2:4 sparse)", title_justify="left")
        for col in ("layer", "C→K kernel", "result", "energy kept", "speed-up", "bound", "note"):
            table.add_column(col, justify="right" if col in ("energy kept", "speed-up") else "left",
                             overflow="fold")
        for layer in eligible:
            i = layer.info
            style = "green" if layer.action == PRUNED else ("cyan" if layer.action == "already 2:4" else "dim")
            table.add_row(layer.name, f"{i.in_channels}→{i.out_channels} {'x'.join(map(str, i.kernel))}",
                          f"[{style}]{layer.action}[/]",
                          "-" if layer.energy_kept is None else f"{100 * layer.energy_kept:.1f}%",
                          "-" if layer.speedup is None else f"{layer.speedup:.2f}x", layer.bound or "-",
                          layer.reason or "")
        console.print(table)
    groups: dict[str, list[LayerResult]] = {}
    for layer in result.layers:
        if not layer.info.eligible:
            groups.setdefault(", ".join(layer.info.rules), []).append(layer)
    if groups:
        table = Table(title="Not eligible (left dense), by rule", title_justify="left")
        for col in ("rule", "layers", "why (first layer)", "layers"):
            table.add_column(col, overflow="fold")
        for rule, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            names = [m.name for m in members]
            table.add_row(rule, str(len(names)), f"{names[0]}: {members[0].reason}",
                          ", ".join(names[:4]) + (" ..." if len(names) > 4 else ""))
        console.print(table)
    line = (f"{s['pruned']} pruned, {s['already_2to4']} already 2:4, {s['skipped']} left dense of "
            f"{s['conv_layers']} convolutions ({s['eligible']} eligible); {s['weights_zeroed']:,} weights zeroed")
    if s["energy_kept"] is not None:
        line += f"; pruned layers keep {100 * s['energy_kept']:.1f}% of their weight energy (Σw²)"
    console.print(line)
    if s["dense_latency_ms"] is not None:
        speedup = s["estimated_speedup"]
        console.print(f"Estimated DLA latency at {s['power_mode']}: {s['dense_latency_ms']:.3f} ms dense → "
                      f"{s['sparse_latency_ms']:.3f} ms with these layers sparse"
                      + (f" ({speedup:.2f}x)" if speedup else "") + "; a model estimate, not a measurement")
    if "accuracy" in data:
        render_accuracy(console, data["accuracy"])
    for note in data["notes"]:
        console.print(f"[yellow]Note:[/] {note}")


def render_accuracy(console: Console, acc: dict[str, Any]) -> None:
    def fmt(row: dict[str, Any]) -> tuple[str, str, str]:
        sqnr = "exact" if row["sqnr_db"] is None else f"{row['sqnr_db']:.1f}"
        top1 = "-" if row["top1_agreement"] is None else f"{100 * row['top1_agreement']:.1f}%"
        return sqnr, top1, f"{row['max_abs_diff']:.4g}"

    table = Table(title=f"Accuracy cost before fine-tuning: output '{acc['output']}' vs dense FP32, "
                        f"{acc['samples']} samples", title_justify="left")
    for col in ("variant", "SQNR dB", "top-1 agreement", "max |diff|"):
        table.add_column(col, justify="left" if col == "variant" else "right", overflow="fold")
    for row in acc["variants"]:
        table.add_row(row["variant"], *fmt(row))
    console.print(table)
    if acc.get("per_layer"):
        table = Table(title="Each pruned layer alone (FP32), most damaging first", title_justify="left")
        for col in ("layer", "SQNR dB", "top-1 agreement", "max |diff|"):
            table.add_column(col, justify="left" if col == "layer" else "right", overflow="fold")
        rows = sorted(acc["per_layer"], key=lambda r: r["sqnr_db"] if r["sqnr_db"] is not None else 1e9)
        for row in rows:
            table.add_row(row["layer"], *fmt(row))
        console.print(table)
    for note in acc["notes"]:
        console.print(f"[dim]{note}[/]")


def register(app: typer.Typer) -> None:
    app.command("sparsify")(sparsify)
