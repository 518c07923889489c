"""The report's figures, drawn with matplotlib and embedded as inline SVG (no network needed to view them)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from html import escape

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

from dlakit.check import DLA, FIXABLE, FOLDED, GPU, CheckReport
from dlakit.vocab import Device

COLOURS = {DLA: "#2e9d57", GPU: "#d64541", FIXABLE: "#e8a33d", FOLDED: "#bbbbbb"}
plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False})


def to_svg(fig, titles: dict[str, str] | None = None) -> str:
    """Serialise a figure to SVG and give the elements with a known gid a hover title."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    for gid, title in (titles or {}).items():
        svg = re.sub(rf'(<g id="{re.escape(gid)}"[^>]*>)', lambda m, t=title: f"{m.group(1)}<title>{escape(t)}</title>",
                     svg, count=1)
    return svg


def placement_graph(report: CheckReport, columns: int = 48) -> str:
    """Every computing node as a square, left to right by depth in the graph (wrapping into rows), coloured by
    placement; hover shows the node, its layer and why it is not on the DLA."""
    nodes = [n for n in report.nodes if n.placement != FOLDED]
    index = {id(n.node): i for i, n in enumerate(nodes)}
    depth: list[int] = []
    for n in nodes:
        preds = [index[id(v.producer())] for v in n.node.inputs
                 if v is not None and v.producer() is not None and id(v.producer()) in index]
        depth.append(1 + max((depth[p] for p in preds), default=-1))
    lanes: dict[int, int] = {}
    lane = []
    for d in depth:
        lane.append(lanes.get(d, 0))
        lanes[d] = lane[-1] + 1
    rows = max(depth, default=0) // columns + 1
    # each row is as tall as its own widest depth (a detector's head fan-out does not stretch the backbone's rows)
    heights = [0] * rows
    for d, count in lanes.items():
        heights[d // columns] = max(heights[d // columns], count)
    tops = [0.0] * rows
    for r in range(1, rows):
        tops[r] = tops[r - 1] + heights[r - 1] + 1.0
    total_height = tops[-1] + heights[-1] + 0.5 if rows else 1.0
    positions = [(d % columns, tops[d // columns] + ln) for d, ln in zip(depth, lane, strict=True)]
    fig, ax = plt.subplots(figsize=(min(12, 0.25 * columns + 1), max(1.5, 0.22 * total_height + 0.8)))
    for i, n in enumerate(nodes):
        x, y = positions[i]
        for v in n.node.inputs:
            p = index.get(id(v.producer())) if v is not None and v.producer() is not None else None
            if p is not None and depth[p] // columns == depth[i] // columns:
                ax.plot([positions[p][0] + 0.4, x + 0.4], [positions[p][1] + 0.4, y + 0.4], color="#999999",
                        linewidth=0.4, zorder=1)
    titles = {}
    for i, n in enumerate(nodes):
        x, y = positions[i]
        rect = Rectangle((x, y), 0.8, 0.8, facecolor=COLOURS[n.placement], edgecolor="white", linewidth=0.3,
                         zorder=2)
        rect.set_gid(f"node{i}")
        ax.add_patch(rect)
        why = f" — {n.reasons[0].rule}: {n.reasons[0].message}" if n.reasons else ""
        sub = f", DLA subgraph {n.subgraph}" if n.subgraph is not None else ""
        titles[f"node{i}"] = f"{n.name} ({n.op} → {n.layer}): {n.placement}{sub}{why}"
    ax.set_xlim(-0.5, columns + 0.5)
    ax.set_ylim(total_height, -0.5)
    ax.axis("off")
    ax.legend(handles=[Patch(color=COLOURS[p], label=p) for p in (DLA, GPU, FIXABLE)], loc="lower center",
              bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    return to_svg(fig, titles)


def layer_time_bars(layers: Sequence, top: int = 30) -> str:
    """The slowest layers of an estimate, bar length = time, colour = device, hatch = memory-bound."""
    chosen = sorted(layers, key=lambda layer: layer.time_us, reverse=True)[:top]
    fig, ax = plt.subplots(figsize=(9, 0.22 * len(chosen) + 1))
    colours = [COLOURS[DLA] if layer.device == Device.DLA else COLOURS[GPU] for layer in chosen]
    bars = ax.barh(range(len(chosen)), [layer.time_us for layer in chosen], color=colours)
    for bar, layer in zip(bars, chosen, strict=True):
        if layer.bound == "memory":
            bar.set_hatch("///")
    ax.set_yticks(range(len(chosen)), [layer.name[:40] for layer in chosen])
    ax.invert_yaxis()
    ax.set_xlabel("estimated time per batch (µs); hatched = memory-bound")
    return to_svg(fig)


MEMORY_COLOUR = "#c0392b"
COMPUTE_COLOUR = "#3b6fb6"


def roofline_side(intensity: float, ridge: float) -> str:
    """Which ceiling a point at ``intensity`` (MAC per DRAM byte) sits under: left of the ridge the bandwidth
    line is the lower one."""
    return "memory" if intensity < ridge else "compute"


def roofline(layers: Sequence, peak_macs_per_s: float, bandwidth_bytes_per_s: float) -> str:
    """Layers against the core's compute ceiling and the DRAM bandwidth ceiling (MAC per byte of DRAM traffic)."""
    points = [(layer.macs / layer.bytes, layer.macs / (layer.time_us * 1e-6), layer) for layer in layers
              if layer.device == Device.DLA and layer.macs > 0 and layer.bytes > 0 and layer.time_us > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if points:
        xs = [p[0] for p in points]
        lo, hi = min([*xs, 1.0]) / 2, max([*xs, peak_macs_per_s / bandwidth_bytes_per_s]) * 2
        ridge = peak_macs_per_s / bandwidth_bytes_per_s
        ax.plot([lo, ridge, hi], [lo * bandwidth_bytes_per_s, peak_macs_per_s, peak_macs_per_s], color="#333333",
                linewidth=1.2, label="ceiling (DRAM bandwidth, then MAC array)")
        # coloured by the side of the drawn ridge, so colour and picture agree; the estimate's own per-layer
        # "bound" also counts on-chip reuse and fixed overheads, and can differ (the per-layer table shows it)
        for side, colour, label in (("memory", MEMORY_COLOUR, "left of the ridge: DRAM-bound"),
                                    ("compute", COMPUTE_COLOUR, "right of the ridge: MAC-bound")):
            chosen = [p for p in points if roofline_side(p[0], ridge) == side]
            if chosen:
                ax.scatter([p[0] for p in chosen], [p[1] for p in chosen], s=12, c=colour, alpha=0.8, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MAC per DRAM byte)")
    ax.set_ylabel("achieved MAC/s")
    ax.legend(loc="lower right", frameon=False)
    return to_svg(fig)
