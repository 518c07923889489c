"""``dlakit plan``: GPU + DLA0 + DLA1 assignment of several networks for one power mode."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dlakit.cli.common import PlatformOpt, PrecisionOpt, ReleaseOpt, check_format, print_json
from dlakit.errors import DlakitError
from dlakit.targets import resolve_target


def parse_targets(text: str | None, names: list[str]) -> dict[str, float]:
    """``5`` (every model) or ``resnet50=5,ssd-mobilenetv1=12``."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for item in text.split(","):
        name, eq, value = item.strip().rpartition("=")
        key = name.strip() if eq else "*"
        try:
            ms = float(value)
        except ValueError:
            raise DlakitError(f"--target-ms: '{item}' is not MS or MODEL=MS (e.g. 5 or resnet50=5)") from None
        if not ms > 0:
            raise DlakitError(f"--target-ms: {ms} must be a positive number of milliseconds")
        out[key] = ms
    return out


def plan(
    models: list[str] = typer.Argument(..., help="ONNX model files or zoo names (dlakit zoo list), one per network."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    power_mode: str | None = typer.Option(None, "--power-mode", "-m", help="nvpmodel power mode (default: the "
                                          "platform's)."),
    precision: str = PrecisionOpt,
    target_ms: str | None = typer.Option(None, "--target-ms", help="Latency targets: MS for every model, or "
                                         "MODEL=MS[,MODEL=MS...]."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Assign networks (whole, or backbone on a DLA and head on the GPU) to GPU, DLA0 and DLA1 for the highest frame
    rate, or meeting latency targets, with shared-DRAM contention modelled; prints trtexec commands per engine."""
    from dlakit.analysis import Analysis
    from dlakit.perf.plan import plan as make_plan
    from dlakit.perf.plan import trtexec_lines
    from dlakit.sources import open_model

    check_format(fmt, ("table", "json"))
    target = resolve_target(platform, release)
    mode = target.platform.power_mode(power_mode).name
    preps = []
    for model in models:
        prep = Analysis.of(open_model(model), target, precision).prepared
        prep.name = model
        preps.append(prep)
    targets = parse_targets(target_ms, models)
    result = make_plan(preps, mode, targets)
    paths = {m: m if Path(m).exists() else f"{m}.onnx" for m in models}
    commands = trtexec_lines(result, paths, precision)
    if fmt == "json":
        print_json({"platform": target.platform.key, "power_mode": mode, "frames_per_second":
                    round(result.frames_per_second, 2), "dram_contention": round(result.contention, 4),
                    "targets_ms": targets, "assignments": result.assignments(),
                    "engines": {e: {"ms_per_frame": round(result.loads[e] * 1e3, 4),
                                    "ms_per_frame_alone": round(result.loads_alone[e] * 1e3, 4),
                                    "utilisation": round(result.engine_utilisation()[e], 4)} for e in result.loads},
                    "trtexec": commands})
        return
    console = Console()
    console.print(f"[bold]Plan[/] on {target.platform.name}, power mode {mode}: [bold]"
                  f"{result.frames_per_second:,.1f} frames/s[/] (every network runs once per frame); DRAM "
                  f"contention stretches DRAM time x{result.contention:.2f} ({result.peak_gbps:g} GB/s peak)")
    table = Table(title="Assignment")
    for col in ("model", "segment", "engine", "frames", "ms per batch", "batch", "contention slowdown", "latency ms"):
        table.add_column(col, justify="left" if col in ("model", "segment", "engine") else "right", overflow="fold")
    for a in result.assignments():
        table.add_row(a["model"], a["segment"], a["engine"], f"{a['share_of_frames']:.0%}",
                      f"{a['segment_ms_per_batch']:.3f}", str(a["batch"]),
                      f"x{a['contention_slowdown']:.3f}", f"{a['latency_ms']:.3f}")
    console.print(table)
    load = Table(title="Engine load per frame")
    for col in ("engine", "ms per frame", "alone (no contention)", "slowdown", "utilisation"):
        load.add_column(col, justify="left" if col == "engine" else "right")
    util = result.engine_utilisation()
    for e in result.loads:
        alone = result.loads_alone[e]
        load.add_row(e, f"{result.loads[e] * 1e3:.3f}", f"{alone * 1e3:.3f}",
                     f"x{result.loads[e] / alone:.3f}" if alone else "-", f"{util[e]:.0%}")
    console.print(load)
    if targets:
        console.print("Latency targets: " + ", ".join(f"{n} {result.latency_ms[n]:.2f} ms <= "
                                                      f"{targets.get(n, targets.get('*'))} ms"
                                                      for n in models if targets.get(n, targets.get("*"))))
    console.print("[bold]trtexec per engine[/] (dlakit trtexec MODEL gives the full, explained command):")
    for c in commands:
        if c["setup"]:
            console.print(f"  # {c['setup']}", markup=False)
        console.print(f"  [{c['engine']}] {c['command']}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
