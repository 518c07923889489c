"""``dlakit prepare``: recognise a reference network, apply its recipe, prove it with ONNX Runtime, write it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dlakit.choices import DEFAULT_TOLERANCE, NETWORK_CHOICES
from dlakit.cli.common import PlatformOpt, PrecisionOpt, ReleaseOpt, ShapesOpt, check_format, print_json
from dlakit.errors import DlakitError


def _ops_delta(before: dict[str, int], after: dict[str, int]) -> str:
    delta = Counter(after)
    delta.subtract(Counter(before))
    parts = [f"{op} {n:+d}" for op, n in sorted(delta.items(), key=lambda kv: kv[1]) if n]
    return ", ".join(parts) or "no op count changed"


def render(data: dict[str, Any], console: Console) -> None:
    console.print(f"model: {data['model']} → {data['output']} ({'written' if data['written'] else 'NOT written'})")
    rec = data["recognition"]
    console.print(f"recognised as: [bold]{rec['network']}[/] ({rec['reason']})")
    if rec["evidence"]:
        title = "evidence" if rec["network"] != "generic" else f"evidence (closest: {rec['closest']})"
        table = Table(title=title)
        for column in ("signal", "matches", "decides"):
            table.add_column(column, overflow="fold")
        for item in rec["evidence"]:
            table.add_row(item["signal"], "[green]yes[/]" if item["ok"] else "[red]no[/]",
                          "required" if item["required"] else "supporting")
        console.print(table)
    console.print(f"recipe: [bold]{data['recipe']['name']}[/]: {data['recipe']['summary']}")
    steps = Table(title="steps applied")
    for column in ("step", "count", "detail"):
        steps.add_column(column, overflow="fold")
    for step in data["steps"]:
        steps.add_row(step["step"], str(step["count"]), step["detail"])
    console.print(steps if data["steps"] else "no step changed the model")
    if data["refused"]:
        refused = Table(title="matched but refused (why not)")
        for column in ("rule", "node", "reason"):
            refused.add_column(column, overflow="fold")
        for item in data["refused"]:
            refused.add_row(item["rule"], item["node"], item["reason"])
        console.print(refused)
    nodes = data["nodes"]
    console.print(f"nodes: {nodes['before']} → {nodes['after']} "
                  f"({_ops_delta(data['ops']['before'], data['ops']['after'])})")
    ver = data["verification"]
    table = Table(title=f"outputs vs the original's tensors at the cut points (ONNX Runtime, inputs: {ver['inputs']}, "
                        f"tolerance {ver['tolerance']:g} × max(1, max|original|))")
    for column in ("output", "equals", "shape", "max abs err", "ok"):
        table.add_column(column, overflow="fold")
    equals = {o["name"]: o["equals"] for o in data["outputs"]}
    for o in ver["outputs"]:
        ok = "[green]yes[/]" if o["passed"] else f"[red]NO[/] {o['problem'] or ''}"
        table.add_row(o["name"], " ⧺ ".join(equals.get(o["name"], [o["name"]])), "x".join(map(str, o["shape"])),
                      f"{o['max_abs']:.3g}", ok)
    console.print(table)
    if data["check"]:
        before, after = data["check"]["before"], data["check"]["after"]
        summary = Table(title=f"dlakit check ({data['target']['platform']}, {data['target']['release']}), "
                              "before → after")
        for column in ("", "before", "after"):
            summary.add_column(column, overflow="fold")
        for key in ("dla_node_fraction", "dla_mac_fraction", "gpu_nodes", "fixable_nodes", "dla_subgraphs",
                    "fully_on_dla"):
            fmt = (lambda v: f"{v:.1%}") if key.endswith("fraction") else str
            summary.add_row(key, fmt(before.get(key)), fmt(after.get(key)))
        console.print(summary)


def prepare(
    model: str = typer.Argument(..., help="ONNX model file, or a zoo name (its published form; dlakit zoo list)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the prepared model."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    precision: str = PrecisionOpt,
    network: str = typer.Option("auto", "--network", "-n",
                                help=f"Recipe: {', '.join(NETWORK_CHOICES)} (auto: recognise by structure)."),
    inputs: Path | None = typer.Option(None, "--inputs", help=".npz with one array per model input."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, "--tolerance",
                                    help="Largest accepted error, relative to max(1, max|output|)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Take a reference network (or any CNN) to its DLA-ready form: cut post-processing, simplify the head, fold
    and fuse, verified against the original at the cut points."""
    from dlakit.prepare import failure, prepare_model, save_prepared

    check_format(fmt, ("table", "json"))
    if network not in NETWORK_CHOICES:
        raise DlakitError(f"--network: '{network}' is not one of {', '.join(NETWORK_CHOICES)}")
    result = prepare_model(model, None, network=network, shapes=shapes, platform=platform, release=release,
                           precision=precision, inputs=inputs, tolerance=tolerance)
    result.output = str(output)
    if result.verification.passed:
        save_prepared(result.proto, output)
        result.written = True
    data = result.as_dict()
    if fmt == "json":
        print_json(data)
    else:
        render(data, Console())
    if not result.verification.passed:
        raise DlakitError(f"verification failed: {failure(result.verification)}; {output} not written")


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare)
