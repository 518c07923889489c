"""``dlakit fix``: rewrite a model for DLA, prove it equal with ONNX Runtime, write it (never over the input)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from dlakit.choices import DEFAULT_TOLERANCE, FIX_RULE_IDS
from dlakit.cli.common import ModelArg, PlatformOpt, PrecisionOpt, ReleaseOpt, ShapesOpt, check_format
from dlakit.errors import DlakitError
from dlakit.targets import Target, resolve_target

if TYPE_CHECKING:
    from dlakit.check import CheckReport
    from dlakit.model import LoadedModel
    from dlakit.rewrite import FixResult, Verification


def _ids(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def check_summary(loaded: LoadedModel, target: Target, precision: str,
                  placement: CheckReport | None = None) -> dict[str, Any]:
    """check's summary of ``loaded`` (``placement`` where the fix's guard already placed it)."""
    from dlakit.analysis import Analysis

    return dict(Analysis.of(loaded, target, precision, placement).placement.summary)


def postprocess_path(output: Path) -> Path:
    """Where the cut-off post-processing goes: next to the output, ``OUT_postprocess.onnx``."""
    return output.with_name(f"{output.stem}_postprocess{output.suffix or '.onnx'}")


def estimate_dict(loaded: LoadedModel, result: FixResult, target: Target, precision: str) -> dict[str, Any]:
    """Estimated images/s of the original and the fixed model, and what the guard measured for each rule."""
    from dlakit.analysis import images_per_second

    return {"objective": result.objective, "power_mode": target.platform.power_mode(None).name,
            "images_per_second_before": images_per_second(loaded, target, precision),
            "images_per_second_after": images_per_second(result.model, target, precision, result.placement),
            "rules": [{"rule": e.rule, "kept": e.kept, "without": e.without, "with": e.with_rule, "reason": e.reason}
                      for e in result.effects]}


def report_dict(model: str, out: Path, written: bool, target: Target, result: FixResult,
                verification: Verification, before: dict | None, after: dict | None) -> dict[str, Any]:
    cut = result.cut
    return {
        "model": model,
        "output": str(out),
        "written": written,
        "target": {"platform": target.platform.key, "release": target.release.key},
        "cut": None if cut is None else {
            "reason": cut.reason,
            "outputs": cut.outputs,
            "dropped_outputs": cut.dropped_outputs,
            "removed": [{"node": n, "op": op} for n, op in cut.removed],
        },
        "folded_nodes": result.folded_nodes,
        "rules_applied": dict(Counter(a.rule for a in result.applied)),
        "applied": [{"rule": a.rule, "node": a.node, "op": a.op, "new_nodes": a.new_nodes, "note": a.note}
                    for a in result.applied],
        "refused": [{"rule": r.rule, "node": r.node, "op": r.op, "reason": r.reason} for r in result.refused],
        "guarded": result.guarded,
        "verification": {
            "passed": verification.passed,
            "tolerance": verification.tolerance,
            "inputs": verification.inputs,
            "outputs": [{"name": o.name, "shape": o.shape, "max_abs": o.max_abs, "max_rel": o.max_rel,
                         "passed": o.passed, "problem": o.problem} for o in verification.outputs],
        },
        "check": None if before is None else {"before": before, "after": after},
    }


def render(data: dict[str, Any], console: Console) -> None:
    console.print(f"model: {data['model']} → {data['output']} "
                  f"({'written' if data['written'] else 'NOT written'})")
    if data["cut"]:
        cut = data["cut"]
        ops = Counter(r["op"] for r in cut["removed"])
        console.print(f"cut ({cut['reason']}): removed {len(cut['removed'])} nodes "
                      f"({', '.join(f'{n}×{op}' for op, n in ops.most_common())}); "
                      f"new outputs: {', '.join(cut['outputs'])}")
        if cut["dropped_outputs"]:
            console.print(f"  dropped outputs (stay on the GPU/CPU): {', '.join(cut['dropped_outputs'])}")
        if cut.get("postprocess_model"):
            console.print(f"  post-processing written to {cut['postprocess_model']} (inputs: the new outputs; "
                          "run it on the GPU/CPU after the DLA model)")
    if data["folded_nodes"]:
        console.print(f"constant-folding: {data['folded_nodes']} nodes became weights")
    applied = Table(title="rules applied", show_lines=False)
    for column in ("rule", "count", "nodes", "note"):
        applied.add_column(column, overflow="fold")
    by_rule: dict[str, list[dict]] = {}
    for item in data["applied"]:
        by_rule.setdefault(item["rule"], []).append(item)
    for rule, items in by_rule.items():
        names = ", ".join(i["node"] for i in items[:3]) + (f", … (+{len(items) - 3})" if len(items) > 3 else "")
        applied.add_row(rule, str(len(items)), names, items[0]["note"] or "")
    console.print(applied if by_rule else "no rule applied")
    render_estimate(data.get("estimate"), console)
    if data["refused"]:
        refused = Table(title="matched but refused (why not)")
        for column in ("rule", "op", "nodes", "reason"):
            refused.add_column(column, overflow="fold")
        groups: dict[tuple[str, str, str], list[str]] = {}
        for item in data["refused"]:
            groups.setdefault((item["rule"], item["op"], item["reason"]), []).append(item["node"])
        for (rule, op, reason), nodes in groups.items():
            names = ", ".join(nodes[:3]) + (f", … (+{len(nodes) - 3})" if len(nodes) > 3 else "")
            refused.add_row(rule, op, names, reason)
        console.print(refused)
    ver = data["verification"]
    table = Table(title=f"verification with ONNX Runtime (inputs: {ver['inputs']}, tolerance {ver['tolerance']:g} "
                        "× max(1, max|original|))")
    for column in ("output", "shape", "max abs err", "max rel err", "ok"):
        table.add_column(column, overflow="fold")
    for o in ver["outputs"]:
        ok = "[green]yes[/]" if o["passed"] else f"[red]NO[/] {o['problem'] or ''}"
        table.add_row(o["name"], "x".join(map(str, o["shape"])), f"{o['max_abs']:.3g}", f"{o['max_rel']:.3g}", ok)
    console.print(table)
    if data["check"]:
        before, after = data["check"]["before"], data["check"]["after"]
        summary = Table(title="dlakit check, before → after")
        for column in ("", "before", "after"):
            summary.add_column(column, overflow="fold")
        for key in ("dla_mac_fraction", "dla_nodes", "gpu_nodes", "fixable_nodes", "dla_subgraphs", "transitions"):
            fmt = (lambda v: f"{v:.1%}") if key == "dla_mac_fraction" else str
            summary.add_row(key, fmt(before.get(key)), fmt(after.get(key)))
        console.print(summary)


def _ips(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def render_estimate(est: dict[str, Any] | None, console: Console) -> None:
    if not est:
        return
    console.print(f"estimated images/s ({est['power_mode']}): {_ips(est['images_per_second_before'])} → "
                  f"{_ips(est['images_per_second_after'])}")
    what = "the estimated images/s" if est["objective"] == "latency" else "check's placement"
    if est["rules"]:
        console.print(f"each rule, without → with it (objective {est['objective']}):")
    for item in est["rules"]:
        if item["kept"]:
            console.print(f"  kept {item['rule']}: {item['reason']}")
        else:
            console.print(f"  [yellow]left out[/] {item['rule']}: it makes {what} worse ({item['reason']}); "
                          "--no-guard keeps it")


def fix(
    model: str = ModelArg,
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the rewritten model."),
    platform: str | None = PlatformOpt,
    release: str | None = ReleaseOpt,
    shapes: str | None = ShapesOpt,
    precision: str = PrecisionOpt,
    cut_postprocess: bool = typer.Option(False, "--cut-postprocess",
                                         help="Cut before TopK/ArgMax/NMS and the decoding that feeds them."),
    outputs: str | None = typer.Option(None, "--outputs", help="Cut the graph at these tensors: a,b,..."),
    rules: str | None = typer.Option(None, "--rules", help="Apply only these rules: a,b,... (default: all). Rules: "
                                     + ", ".join(FIX_RULE_IDS) + "."),
    skip_rules: str | None = typer.Option(None, "--skip-rules", help="Do not apply these rules: a,b,..."),
    inputs: Path | None = typer.Option(None, "--inputs", help=".npz with one array per model input."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE, "--tolerance",
                                    help="Largest accepted error, relative to max(1, max|output|)."),
    force: bool = typer.Option(False, "--force", help="Write even when verification fails (with a warning)."),
    no_guard: bool = typer.Option(False, "--no-guard",
                                  help="Keep every applicable rule even where the objective gets worse."),
    objective: str = typer.Option("latency", "--objective", help="What the guard keeps a rule for: latency "
                                  "(estimated images/s do not drop) or dla-share (check's DLA MAC share)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Rewrite unsupported patterns into DLA-supported ones and prove the result equal with ONNX Runtime."""
    from dlakit.analysis import fix_model
    from dlakit.rewrite import OBJECTIVES, FixOptions, blame, load_inputs, random_inputs, verify
    from dlakit.sources import open_model, save_model

    check_format(fmt, ("table", "json"))
    if objective not in OBJECTIVES:
        raise DlakitError(f"--objective: '{objective}' is not one of {', '.join(OBJECTIVES)}")
    if rules is not None and skip_rules is not None:
        raise DlakitError("give either --rules or --skip-rules, not both")
    if outputs is not None and cut_postprocess:
        raise DlakitError("give either --outputs or --cut-postprocess, not both")
    if not 0 < tolerance < float("inf"):
        raise DlakitError(f"--tolerance must be a positive number, not {tolerance}")
    target = resolve_target(platform, release)
    if outputs is not None and not _ids(outputs):
        raise DlakitError(f"--outputs: '{outputs}' names no tensor; give tensor names a,b,... "
                          "(dlakit check lists them)")
    loaded = open_model(model, shapes, outputs=_ids(outputs))
    options = FixOptions(outputs=_ids(outputs), cut_postprocess=cut_postprocess, rules=_ids(rules),
                         skip_rules=_ids(skip_rules) or [], target=target, guard=not no_guard, precision=precision,
                         objective=objective)
    result = fix_model(loaded, options)
    feeds = load_inputs(inputs, loaded) if inputs else random_inputs(loaded)
    label = str(inputs) if inputs else "random, seed 0"
    proto = result.proto()
    verification = verify(loaded, proto, feeds, tolerance, label)
    suspects = [] if verification.passed else blame(loaded, options, result, feeds, tolerance)
    write = verification.passed or force
    tail_path = postprocess_path(output) if result.cut is not None and result.cut.tail is not None else None
    if write:
        save_model(proto, output)
        if tail_path is not None:
            save_model(result.cut.tail, tail_path)  # type: ignore[union-attr]
    before = check_summary(loaded, target, precision)
    after = check_summary(result.model, target, precision, result.placement)
    data = report_dict(model, output, write, target, result, verification, before, after)
    data["verification"]["suspects"] = suspects
    data["estimate"] = estimate_dict(loaded, result, target, precision)
    if data["cut"] is not None:
        data["cut"]["postprocess_model"] = str(tail_path) if tail_path is not None and write else None
    if fmt == "json":
        import json

        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data, Console())
    if not verification.passed:
        worst = verification.worst
        detail = f"output '{worst.name}' differs by {worst.max_abs:.3g} (relative {worst.max_rel:.3g})" if worst \
            else "outputs differ"
        if suspects:
            detail += f" because of rule {' or '.join(suspects)} (--skip-rules {','.join(suspects)})"
        if force:
            typer.echo(f"warning: {detail}, beyond --tolerance {tolerance:g}; written anyway (--force)", err=True)
        else:
            raise DlakitError(f"verification failed: {detail}, beyond --tolerance {tolerance:g}; {output} not "
                              "written (skip the rule, raise --tolerance, or --force to write anyway)")


def register(app: typer.Typer) -> None:
    app.command("fix")(fix)
