"""``dlakit sweep``: check + estimate (+ calibration) of many models × platforms × releases × power modes."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dlakit.atomic import write_text
from dlakit.cli.common import check_format, print_json
from dlakit.errors import DlakitError
from dlakit.scale import RayOpt, WorkersOpt, pool
from dlakit.scale.sweep import Settings, plan_sweep, run_sweep, sweep_csv, sweep_html, sweep_json


def sweep(
    models: list[str] = typer.Argument(..., help="ONNX model files and/or zoo names (dlakit zoo list)."),
    platforms: list[str] | None = typer.Option(None, "--platform", "-p", help="Target platform; repeat for "
                                               "several (default agx-orin-64gb; dlakit targets)."),
    releases: list[str] | None = typer.Option(None, "--release", "-r", help="Software release; repeat for "
                                              "several (default: each platform's)."),
    power_modes: list[str] | None = typer.Option(None, "--power-mode", "-m", help="nvpmodel power mode; repeat "
                                                 "for several (default: each platform's)."),
    precision: str = typer.Option("int8", "--precision", help="int8 or fp16."),
    quantize: str | None = typer.Option(None, "--quantize", help="Also calibrate (entropy) each model for each "
                                        "target on this data (image folder, .npy/.npz): INT8 tensors, FP16 "
                                        "layers."),
    num_samples: int | None = typer.Option(None, "--num-samples", "-n", help="With --quantize: at most this many "
                                           "samples."),
    preset: str = typer.Option("imagenet", "--preset", help="With --quantize: image preprocessing."),
    output: str | None = typer.Option(None, "--output", "-o", help="Folder for sweep.json, sweep.csv and "
                                      "sweep.html."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    workers: int | None = WorkersOpt,
    address: str | None = RayOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Check + estimate (+ --quantize) of every model × platform × release × power mode, into one table."""
    check_format(fmt, ("table", "json", "csv"))
    if precision not in ("int8", "fp16"):
        raise DlakitError(f"--precision: '{precision}' is not one of int8, fp16")
    if quantize is not None and not Path(quantize).exists():
        raise DlakitError(f"--quantize {quantize}: calibration data not found; pass a folder of images or a "
                          ".npy/.npz file")
    combos, skipped = plan_sweep(models, platforms, releases, power_modes)
    settings = Settings(precision, quantize, num_samples, preset)
    start = time.perf_counter()
    with pool(workers, address) as where:
        rows = run_sweep(combos, settings, where, progress)
    wall = time.perf_counter() - start
    data = sweep_json(rows, skipped, wall)
    if output is not None:
        folder = Path(output)
        write_text(folder / "sweep.json", _json_text(data))
        write_text(folder / "sweep.csv", sweep_csv(rows))
        write_text(folder / "sweep.html", sweep_html(rows, skipped, wall))
    if fmt == "json":
        print_json(data)
    elif fmt == "csv":
        typer.echo(sweep_csv(rows), nl=False)
    else:
        _render(data)


def _json_text(data: dict) -> str:
    import json

    return json.dumps(data, indent=2, default=str) + "\n"


def _render(data: dict) -> None:
    rows = data["rows"]
    quant = any("int8_tensors" in r for r in rows)
    table = Table(title=f"dlakit sweep: {len(rows)} combinations ({data['wall_seconds']:.1f} s)")
    headers = ["model", "platform", "release", "power mode", "DLA/GPU nodes", "subgraphs", "images/s", "latency ms"]
    headers += ["INT8 tensors", "FP16 layers"] if quant else []
    for header in headers:
        table.add_column(header, justify="left" if header in headers[:4] else "right", overflow="fold")
    for r in rows:
        cells = [r["model"], r["platform"], r["release"], r["power_mode"], f"{r['dla_nodes']}/{r['gpu_nodes']}",
                 str(r["dla_subgraphs"]), f"{r['images_per_second']:,.1f} ±{r['error_band_pct']:.0f}%"
                 + (" (extrapolated)" if r["extrapolated"] else ""), f"{r['latency_ms']:.3f}"]
        cells += [str(r["int8_tensors"]), str(r["fp16_layers"])] if quant else []
        table.add_row(*cells)
    console = Console()
    console.print(table)
    for s in data["skipped"]:
        console.print(f"skipped {s['platform']} {s['release']} {s['power_mode']}: {s['reason']}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
