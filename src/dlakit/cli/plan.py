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
    write: Path | None = typer.Option(None, "--write", "-o", help="Folder to write every model the commands read "
                                      "(split networks' NAME.backbone.onnx / NAME.head.onnx, zoo networks' "
                                      "NAME.onnx), plan.json and plan.sh."),
) -> None:
    """Assign networks (whole, or backbone on a DLA and head on the GPU) to GPU, DLA0 and DLA1 for the highest frame
    rate, or meeting latency targets, with shared-DRAM contention modelled; prints trtexec commands per engine."""
    from dlakit.analysis import Analysis
    from dlakit.deploy.plan import deploy_plan
    from dlakit.model.loader import read_model_proto
    from dlakit.perf.plan import plan as make_plan
    from dlakit.sources import open_model, zoo_proto

    check_format(fmt, ("table", "json"))
    if write is not None and write.exists() and not write.is_dir():
        raise DlakitError(f"--write {write}: is a file; give a folder (created if missing)")
    target = resolve_target(platform, release)
    mode = target.platform.power_mode(power_mode).name
    preps, sources, placements = [], {}, {}
    for model in models:
        loaded = open_model(model)  # errors name the file
        proto = zoo_proto(model) or read_model_proto(model)  # the model as given: what the segments are cut from
        analysis = Analysis.of(loaded, target, precision)
        prep = analysis.prepared
        prep.name = model
        preps.append(prep)
        sources[model] = (proto, *_file_for(model, write))
        placements[model] = (analysis.placement, loaded.graph)  # a whole network's commands need no new placement
    names = [path for _, path, _ in sources.values()]
    if len(set(names)) != len(names):
        raise DlakitError(f"--write: two models would be written under one name ({', '.join(names)}); rename one")
    targets = parse_targets(target_ms, models)
    result = make_plan(preps, mode, targets)
    deployment = deploy_plan(result, sources, target, precision, placements=placements)
    commands = deployment.commands
    for c in commands:
        c["setup"] = _setup(c, result, sources, write)
    record = {"platform": target.platform.key, "power_mode": mode, "frames_per_second":
              round(result.frames_per_second, 2), "dram_contention": round(result.contention, 4),
              "targets_ms": targets, "assignments": result.assignments(),
              "engines": {e: {"ms_per_frame": round(result.loads[e] * 1e3, 4),
                              "ms_per_frame_alone": round(result.loads_alone[e] * 1e3, 4),
                              "utilisation": round(result.engine_utilisation()[e], 4)} for e in result.loads},
              "trtexec": commands}
    if write is not None:
        _write(write, deployment, record, [m for m in models if Path(m).exists()])
        record["written"] = {"directory": str(write), "files": [*sorted(deployment.files), "plan.json", "plan.sh"]}
    if fmt == "json":
        print_json(record)
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
    where = f", run in {write}" if write is not None else ""
    console.print(f"[bold]trtexec per engine[/]{where} (dlakit trtexec MODEL explains every flag):")
    shown: set[str] = set()
    for c in commands:
        for line in c["setup"]:
            if line not in shown:
                console.print(f"  # {line}", markup=False)
                shown.add(line)
        console.print(f"  [{c['engine']}] {c['command']}", markup=False)
    if write is not None:
        console.print(f"wrote {len(deployment.files) + 2} files to {write}: {', '.join(sorted(deployment.files))}, "
                      "plan.json, plan.sh (sh plan.sh builds every engine)", markup=False)


def _file_for(model: str, write: Path | None) -> tuple[str, bool]:
    """(the file name a network's commands read, whether --write writes it)."""
    from dlakit.deploy.trtexec import zoo_setup

    path = zoo_setup(model)[0]
    if write is None:
        return path, False
    name = Path(path).name
    same = Path(model).is_file() and (write / name).exists() and (write / name).samefile(model)
    return name, not same


def _setup(command: dict, result, sources: dict, write: Path | None) -> list[str]:
    """Shell lines (or instructions) that create the file a command reads, when --write did not."""
    if write is not None:
        return []
    model = command["model"]
    _, path, _ = sources[model]
    lines = []
    if not Path(model).exists():
        from dlakit.deploy.trtexec import zoo_setup

        lines += zoo_setup(model)[1]
    boundary = result.options[model].boundary
    if boundary:
        lines.append(f"{command['file']}: cut {path} at {','.join(boundary)}; dlakit plan ... --write DIR writes "
                     "the backbone (inputs -> boundary) and the head (boundary -> outputs)")
    return lines


def _write(folder: Path, deployment, record: dict, inputs: list[str]) -> None:
    """Every file at once (a failure leaves nothing); no input is replaced."""
    import json
    import shlex

    from dlakit.atomic import transaction, write_text
    from dlakit.sources import save_model

    script = ["#!/bin/sh", "# dlakit plan: one TensorRT engine per engine and segment", "set -e",
              'cd "$(dirname "$0")"']
    for c in record["trtexec"]:
        comment = " ".join(f"{c['engine']}: {c['model']}, {c['segment']}".split())  # one line, whatever the name
        script += [f"# {comment}", shlex.join(c["argv"])]
    with transaction(inputs):
        for name, proto in deployment.files.items():
            save_model(proto, folder / name)
        write_text(folder / "plan.json", json.dumps(record, indent=2) + "\n")
        write_text(folder / "plan.sh", "\n".join(script) + "\n")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
