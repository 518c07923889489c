"""Text output of ``dlakit estimate --vs-gpu`` (kept apart from cli/estimate.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from dlakit.perf import Estimate


def render_vs_gpu(e: Estimate) -> None:
    v = e.assumptions["vs_gpu"]
    measured = f" (NVIDIA measured {v.measured_ratio:g}x)" if v.measured_ratio else ""
    Console().print(
        f"[bold]DLA vs GPU[/] ({e.power_mode}): DLA {v.dla_images_per_second:,.1f} img/s at {v.dla_watts:.2f} W = "
        f"{v.dla_images_per_second / v.dla_watts:,.1f} img/s/W; GPU ({v.gpu_sms} SMs, {v.gpu_mhz:g} MHz, batch "
        f"{v.gpu_batch}) {v.gpu_images_per_second:,.1f} img/s at {v.gpu_watts:.2f} W = "
        f"{v.gpu_images_per_second / v.gpu_watts:,.1f} img/s/W; perf/W ratio [bold]{v.perf_per_watt_ratio:.1f}x[/]"
        f"{measured}. Watts: accelerator power from a model fitted to NVIDIA's ratios (absolute scale assumed)")


def render_vs_gpu_modes(rows: list[Estimate]) -> None:
    """NVIDIA's perf/W table layout: dense and sparse rows, one column per power mode."""
    modes = list(dict.fromkeys(e.power_mode for e in rows))
    first = rows[0].assumptions["vs_gpu"]
    table = Table(title=f"{rows[0].network}: DLA perf/W relative to the GPU (DLA batch {rows[0].batch}, GPU batch "
                        f"{first.gpu_batch}, {rows[0].cores} DLA core(s))")
    table.add_column("weights", overflow="fold")
    for mode in modes:
        table.add_column(mode, justify="right", overflow="fold")
    by_key = {(e.power_mode, e.sparse): e.assumptions["vs_gpu"] for e in rows}
    for is_sparse in dict.fromkeys(e.sparse for e in rows):
        label = "Sparse" if is_sparse else "Dense"
        table.add_row(label, *[f"{by_key[(m, is_sparse)].perf_per_watt_ratio:.1f}x" for m in modes])
        measured = [by_key[(m, is_sparse)].measured_ratio for m in modes]
        if any(measured):
            table.add_row(f"{label}: NVIDIA measured", *[f"{x:g}x" if x else "-" for x in measured])
    for is_sparse in dict.fromkeys(e.sparse for e in rows):
        tag = "sparse" if is_sparse else "dense"
        table.add_row(f"GPU img/s ({tag})", *[f"{by_key[(m, is_sparse)].gpu_images_per_second:,.0f}" for m in modes])
    table.add_row("DLA / GPU watts", *[f"{by_key[(m, False)].dla_watts:.1f} / {by_key[(m, False)].gpu_watts:.1f}"
                                       for m in modes])
    Console().print(table)
