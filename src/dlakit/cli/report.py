"""``dlakit report``: the HTML page."""

from __future__ import annotations

from pathlib import Path

import typer

from dlakit.atomic import write_text
from dlakit.cli.common import ModelArg, PlatformOpt, PrecisionOpt, ReleaseOpt, ShapesOpt
from dlakit.errors import DlakitError
from dlakit.targets import resolve_target


def report(
    model: str = ModelArg,
    output: str = typer.Option("report.html", "--output", "-o", help="HTML file to write."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    precision: str = PrecisionOpt,
    calib: str | None = typer.Option(
        None, "--calib", help="Calibration data (folder or .npz) or a calibration cache, for per-layer INT8 error."
    ),
) -> None:
    """Write one self-contained HTML report: placement, subgraphs, estimate per power mode, roofline, trtexec."""
    from dlakit.analysis import Analysis  # onnx, onnx_ir, matplotlib: imported when a report is made, not for --help
    from dlakit.report import gather
    from dlakit.report.html import render
    from dlakit.sources import open_model

    if calib is not None and not Path(calib).exists():
        raise DlakitError(f"--calib: {calib}: no such file or folder; pass a folder of images or a .npy/.npz file")
    target = resolve_target(platform, release)
    data = gather(Analysis.of(open_model(model, shapes), target, precision), calib=calib)
    folder = Path(output).parent
    created = not folder.exists()
    write_text(output, render(data))
    s = data.check.summary
    made = f" (created folder {folder})" if created else ""
    typer.echo(f"wrote {Path(output).resolve()}{made}: {s['dla_mac_fraction']:.1%} of MACs on the DLA, "
               f"{s['dla_subgraphs']} subgraph(s)")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
