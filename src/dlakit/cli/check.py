"""``dlakit check``: placement with reasons."""

from __future__ import annotations

import typer

from dlakit.cli.common import ModelArg, PlatformOpt, PrecisionOpt, ReleaseOpt, ShapesOpt, check_format, print_json
from dlakit.errors import EXIT_NOT_FULL_DLA
from dlakit.targets import resolve_target


def check(
    model: str = ModelArg,
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    precision: str = PrecisionOpt,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or markdown."),
    all_nodes: bool = typer.Option(False, "--all", help="List every node, not only the ones off the DLA."),
    require_full_dla: bool = typer.Option(
        False, "--require-full-dla", help="Exit 3 when any node stays on the GPU (for CI gates)."
    ),
) -> None:
    """Which nodes run on the DLA, which fall back to the GPU and why; DLA subgraphs and transitions."""
    from dlakit.analysis import Analysis  # onnx and onnx_ir load with the model, not with --help
    from dlakit.check.render import render_markdown, render_table
    from dlakit.sources import open_model

    check_format(fmt)
    target = resolve_target(platform, release)
    analysis = Analysis.of(open_model(model, shapes, allow_dynamic=True), target, precision)
    report = analysis.placement
    if fmt == "json":
        print_json(analysis.check_json())
    elif fmt == "markdown":
        typer.echo(render_markdown(report, all_nodes, analysis.check_notes()), nl=False)
    else:
        render_table(report, all_nodes, extra_notes=analysis.check_notes())
    if require_full_dla and not report.fully_on_dla:
        raise typer.Exit(EXIT_NOT_FULL_DLA)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
