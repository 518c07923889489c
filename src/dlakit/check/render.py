"""Human-readable views of a :class:`~dlakit.check.CheckReport`: a rich table and Markdown."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from dlakit.check import DLA, FIXABLE, FOLDED, GPU, CheckReport
from dlakit.errors import printable

STYLE = {DLA: "green", GPU: "red", FIXABLE: "yellow", FOLDED: "dim"}


@dataclass
class ReasonGroup:
    placement: str
    rule: str
    op: str
    nodes: list[str]
    macs: int
    message: str
    fix: str | None
    confidence: str


def reason_groups(report: CheckReport) -> list[ReasonGroup]:
    """Off-DLA nodes grouped by verdict, first blocking rule and op; most MACs first."""
    groups: dict[tuple[str, str, str], ReasonGroup] = {}
    for node in report.nodes:
        if node.placement not in (GPU, FIXABLE):
            continue
        reason = node.reasons[0]
        key = (node.placement, reason.rule, node.op)
        if key not in groups:
            groups[key] = ReasonGroup(node.placement, reason.rule, node.op, [], 0, reason.message, node.fix,
                                      reason.confidence)
        groups[key].nodes.append(node.name)
        groups[key].macs += node.macs
    return sorted(groups.values(), key=lambda g: (-g.macs, -len(g.nodes), g.rule))


def _header(report: CheckReport) -> list[str]:
    target = report.target
    defaulted = f" (default {' and '.join(target.defaulted)}; set --platform/--release)" if target.defaulted else ""
    s = report.summary
    lines = [
        f"model:  {report.source}",
        f"target: {target.label}, {report.precision.upper()}{defaulted}",
        f"DLA: {s['dla_nodes']} nodes, {s['dla_mac_fraction']:.1%} of {s['total_macs'] / 1e9:.3f} GMAC | "
        f"GPU: {s['gpu_nodes']} | fixable: {s['fixable_nodes']} | folded: {s['folded_nodes']} | "
        f"DLA subgraphs: {s['dla_subgraphs']}/{s['max_loadables_per_core']} per core | "
        f"GPU<->DLA transitions: {s['transitions']}",
    ]
    return lines


def _text(value: str, **style: str) -> Text:
    """A cell for text that comes from the model (names, reasons that quote them): control characters escaped."""
    return Text(printable(value), **style)


def render_table(report: CheckReport, all_nodes: bool = False, console: Console | None = None,
                 extra_notes: list[str] | None = None) -> None:
    console = console or Console()
    parts: list = [_text(line) for line in _header(report)]
    groups = reason_groups(report)
    if groups:
        table = Table(title="Not on the DLA, by reason (most MACs first)", title_justify="left", expand=False)
        for column in ("verdict", "op", "rule", "nodes", "MMAC", "why (first node)", "fix"):
            table.add_column(column, overflow="fold")
        for g in groups:
            rule = g.rule + (" (low confidence)" if g.confidence == "low" else "")
            example = f"{g.nodes[0]}: {g.message}"
            table.add_row(Text(g.placement, style=STYLE[g.placement]), _text(g.op), _text(rule), str(len(g.nodes)),
                          f"{g.macs / 1e6:.1f}", _text(example), _text(g.fix or ""))
        parts.append(table)
    else:
        parts.append(Text("Every computing node runs on the DLA.", style="green"))
    if report.subgraphs:
        table = Table(title="DLA subgraphs (one loadable each)", title_justify="left")
        for column in ("#", "nodes", "first ... last", "MAC share", "inputs", "outputs"):
            table.add_column(column, overflow="fold")
        total = report.total_macs or 1
        for sg in report.subgraphs:
            table.add_row(str(sg.index), str(len(sg.nodes)), _text(f"{sg.nodes[0].name} ... {sg.nodes[-1].name}"),
                          f"{sg.macs / total:.1%}",
                          _text(", ".join(sg.inputs[:3]) + (" ..." if len(sg.inputs) > 3 else "")),
                          _text(", ".join(sg.outputs[:3]) + (" ..." if len(sg.outputs) > 3 else "")))
        parts.append(table)
    if all_nodes:
        table = Table(title="Every node", title_justify="left")
        for column in ("node", "op", "layer", "verdict", "subgraph", "MMAC", "reasons / notes"):
            table.add_column(column, overflow="fold")
        for n in report.nodes:
            text = "; ".join(f"[{r.rule}] {r.message}" for r in (*n.reasons, *n.notes))
            table.add_row(_text(n.name), _text(n.op), n.layer, Text(n.placement, style=STYLE[n.placement]),
                          "" if n.subgraph is None else str(n.subgraph), f"{n.macs / 1e6:.1f}", _text(text))
        parts.append(table)
    notes = _notes(report, extra_notes or [])
    if notes:
        parts.append(Text("\n".join(printable(note) for note in notes), style="dim"))
    console.print(Group(*parts))


def _notes(report: CheckReport, extra: list[str]) -> list[str]:
    notes = [*report.notes, *extra]
    counts: dict[str, int] = defaultdict(int)
    messages: dict[str, str] = {}
    for n in report.nodes:
        if n.placement == DLA:
            for note in n.notes:
                counts[note.rule] += 1
                messages[note.rule] = note.message
    for rule, count in sorted(counts.items()):
        notes.append(f"note [{rule}] on {count} DLA node(s): {messages[rule]}")
    if not report.summary["within_loadable_limit"]:
        if report.target.release.loadable_limit == "hard":
            notes.append("more DLA subgraphs than loadables per core: the excess runs on the GPU")
        else:
            notes.append(f"more DLA subgraphs than the {report.target.release.max_loadables_per_core} loadables per "
                         f"core the TensorRT {report.target.release.tensorrt} guide names; that number is not a "
                         "build-time cap (NVIDIA's 8.4 log builds 5), so they stay on the DLA: verify on the device")
    return notes


def render_markdown(report: CheckReport, all_nodes: bool = False, extra_notes: list[str] | None = None) -> str:
    lines = [f"# dlakit check: {report.source}", ""]
    lines += [f"- {line}" for line in _header(report)]
    lines.append("")
    groups = reason_groups(report)
    if groups:
        lines += ["## Not on the DLA", "", "| verdict | op | rule | nodes | MMAC | why (first node) | fix |",
                  "|---|---|---|---|---|---|---|"]
        for g in groups:
            message = f"`{g.nodes[0]}`: {g.message}".replace("|", "\\|")
            lines.append(f"| {g.placement} | {g.op} | {g.rule} | {len(g.nodes)} | {g.macs / 1e6:.1f} | {message} "
                         f"| {g.fix or ''} |")
        lines.append("")
    if report.subgraphs:
        lines += ["## DLA subgraphs", "", "| # | nodes | first ... last | MACs |", "|---|---|---|---|"]
        for sg in report.subgraphs:
            lines.append(f"| {sg.index} | {len(sg.nodes)} | `{sg.nodes[0].name}` ... `{sg.nodes[-1].name}` | "
                         f"{sg.macs} |")
        lines.append("")
    if all_nodes:
        lines += ["## Nodes", "", "| node | op | layer | verdict | reasons |", "|---|---|---|---|---|"]
        for n in report.nodes:
            text = "; ".join(f"{r.rule}: {r.message}" for r in n.reasons).replace("|", "\\|")
            lines.append(f"| `{n.name}` | {n.op} | {n.layer} | {n.placement} | {text} |")
        lines.append("")
    lines += [f"> {note}" for note in _notes(report, extra_notes or [])]
    return "\n".join(printable(line) for line in lines) + "\n"
