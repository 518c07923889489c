"""``dlakit targets``: the platforms and releases dlakit knows."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from dlakit.cli.common import check_format, print_json
from dlakit.targets import load_catalog


def targets(fmt: str = typer.Option("table", "--format", "-f", help="table or json.")) -> None:
    """List platforms (DLA cores, power modes, releases) and software releases (TensorRT, DLA versions)."""
    check_format(fmt, ("table", "json"))
    catalog = load_catalog()
    if fmt == "json":
        print_json({
            "default_platform": catalog.default_platform,
            "platforms": [
                {"key": p.key, "name": p.name, "dla_cores": p.dla_cores, "dla_generation": p.dla_generation,
                 "releases": list(p.releases), "default_release": p.default_release,
                 "power_modes": [m.__dict__ for m in p.power_modes], "no_dla": p.no_dla,
                 "confidence": p.confidence, "source": p.source}
                for p in catalog.platforms.values()
            ],
            "releases": [
                {"key": r.key, "name": r.name, "tensorrt": r.tensorrt, "dla": r.dla, "aliases": list(r.aliases),
                 "max_loadables_per_core": r.max_loadables_per_core, "loadable_limit": r.loadable_limit,
                 "strongly_typed": r.strongly_typed, "features": list(r.features),
                 "confidence": r.confidence, "evidence": r.evidence, "source": r.source}
                for r in catalog.releases.values()
            ],
        })
        return
    console = Console()
    table = Table(title="Platforms", title_justify="left")
    for column in ("platform", "name", "DLA cores", "power modes (DLA MHz)", "releases (default first)"):
        table.add_column(column, overflow="fold")
    for p in catalog.platforms.values():
        default = " (default)" if p.key == catalog.default_platform else ""
        modes = ", ".join(f"{m.name} {m.dla_mhz:g}" for m in p.power_modes)
        releases = [p.default_release, *[r for r in p.releases if r != p.default_release]] if p.releases else []
        table.add_row(p.key + default, p.name, str(p.dla_cores) if p.dla_cores else "none (no DLA)", modes,
                      ", ".join(r for r in releases if r))
    console.print(table)
    table = Table(title="Releases", title_justify="left")
    for column in ("release", "name", "TensorRT", "DLA", "loadables/core", "aliases", "confidence", "evidence"):
        table.add_column(column, overflow="fold")
    for r in catalog.releases.values():
        loadables = str(r.max_loadables_per_core) + (" (note only)" if r.loadable_limit == "soft" else "")
        table.add_row(r.key, r.name, r.tensorrt, r.dla, loadables, ", ".join(r.aliases), r.confidence,
                      r.evidence)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("targets")(targets)
