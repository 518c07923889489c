"""A plan (:mod:`dlakit.perf.plan`) made deployable: each network's segment models and one trtexec command per engine.

A split network is cut at its boundary tensors with ``onnx.utils.Extractor``: the backbone runs from the graph
inputs to the boundary (and to the graph outputs the backbone's layers compute, e.g. a detector's early heads), the
head from the boundary (and any graph input it reads itself) to the other graph outputs.
Every command comes from :func:`dlakit.deploy.trtexec.build_command` on the segment model it reads, so its I/O
formats are checked against that model's own tensors (``format_problems``); the head's inputs take the formats the
backbone's boundary outputs are written in, so nothing is reformatted between the two engines.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import onnx
import onnx.utils

from dlakit.check import check_model
from dlakit.deploy.trtexec import TrtexecOptions, build_command
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.perf.plan import PlanResult
from dlakit.targets import Target

if TYPE_CHECKING:
    import onnx_ir as ir

    from dlakit.check import CheckReport


def split_model(proto: onnx.ModelProto, boundary: list[str], label: str,
                backbone_tensors: frozenset[str] = frozenset()) -> tuple[onnx.ModelProto, onnx.ModelProto, list[str]]:
    """(backbone: graph inputs -> ``boundary`` and the graph outputs among ``backbone_tensors``, head: ``boundary``
    -> the other graph outputs, the nodes both would compute) of ``proto``."""
    weights = {i.name for i in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in weights]
    outputs = [o.name for o in proto.graph.output]
    produced = {o for n in proto.graph.node for o in n.output}
    missing = [b for b in boundary if b not in produced]
    if missing:
        raise DlakitError(f"{label}: boundary tensor '{missing[0]}' is not computed by the model; cannot cut it")
    early = [o for o in outputs if o in backbone_tensors and o not in boundary]
    late = [o for o in outputs if o not in backbone_tensors]
    if not late:
        raise DlakitError(f"{label}: every output is computed before the boundary {', '.join(boundary)}; no head")
    try:
        extractor = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(proto))
        backbone = extractor.extract_model(inputs, [*boundary, *early])
        head = extractor.extract_model([*boundary, *inputs], late)
    except (ValueError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise DlakitError(f"{label}: cannot cut at {', '.join(boundary)} ({str(exc).splitlines()[0]})") from None
    read = {i for n in head.graph.node for i in n.input} | set(late)
    kept = [v for v in head.graph.input if v.name in read]  # graph inputs only the backbone reads
    del head.graph.input[:]
    head.graph.input.extend(kept)
    for part, model in (("backbone", backbone), ("head", head)):
        model.graph.name = f"{proto.graph.name or 'model'}_{part}"
    first = {o for n in backbone.graph.node for o in n.output}
    shared = [n.name or n.output[0] for n in head.graph.node if first & set(n.output)]
    return backbone, head, shared


@dataclass
class Deployment:
    """Files a plan's commands read (name -> model; zoo networks and segments) and the commands themselves."""

    files: dict[str, onnx.ModelProto] = field(default_factory=dict)
    commands: list[dict] = field(default_factory=list)


def deploy_plan(result: PlanResult, sources: dict[str, tuple[onnx.ModelProto, str, bool]], target: Target,
                precision: str, calib: str | None = None,
                placements: dict[str, tuple[CheckReport, ir.Graph]] | None = None) -> Deployment:
    """Commands for ``result``; ``sources``: network -> (its model, the file name its commands read, whether that
    file must be written: a zoo network, or a split network's segments). ``placements``: network -> the placement
    and graph the caller already has for the whole network (reused for networks that are not split; the segments
    of a split network are new models and are placed here)."""
    out = Deployment()
    segments: dict[tuple[str, str], tuple[str, onnx.ModelProto]] = {}
    recomputed: dict[str, str] = {}
    for name, option in result.options.items():
        proto, path, _ = sources[name]
        stem = path[:-5] if path.endswith(".onnx") else path
        if option.boundary:
            backbone, head, shared = split_model(proto, option.boundary, name, option.backbone_tensors)
            if shared:
                recomputed[name] = (f"the head recomputes {len(shared)} node(s) of the backbone (first: "
                                    f"'{shared[0]}'): a graph output inside a fused layer of the backbone")
            segments[(name, "dla")] = (f"{stem}.backbone.onnx", backbone)
            segments[(name, "gpu")] = (f"{stem}.head.onnx", head)
            out.files[f"{stem}.backbone.onnx"] = backbone
            out.files[f"{stem}.head.onnx"] = head
        else:
            segments[(name, "dla")] = segments[(name, "gpu")] = (path, proto)
            if sources[name][2]:
                out.files[path] = proto
    checked: dict[str, tuple] = {}
    for name, placed in (placements or {}).items():
        if not result.options[name].boundary:
            checked[segments[(name, "dla")][0]] = placed

    def report_of(file: str, model: onnx.ModelProto):
        if file not in checked:
            loaded = load_model(model)
            loaded.source = file
            checked[file] = (check_model(loaded, target, precision), loaded.graph)
        return checked[file]

    boundary_formats: dict[str, dict[str, str]] = {}  # network -> boundary tensor -> the backbone's output format
    placed = sorted(result.placed, key=lambda p: p.segment.kind != "dla")  # backbones first: heads read their formats
    for p in placed:
        s = p.segment
        if s.part == "fallback layers":
            continue  # TensorRT runs them itself: --allowGPUFallback on the DLA engine's command
        file, model = segments[(s.network, s.kind)]
        report, graph = report_of(file, model)
        stem = file[:-5] if file.endswith(".onnx") else file
        options = TrtexecOptions(precision=precision, calib=calib, model_path=file)
        if p.engine == "GPU":
            options.engine, options.engine_stem = "gpu", f"{stem}.gpu"
            written = boundary_formats.get(s.network, {})
            options.input_formats = [written.get(v.name or "") for v in graph.inputs]
        else:
            options.core, options.engine_stem = int(p.engine[-1]), f"{stem}.dla{p.engine[-1]}"
        command = build_command(report, graph, options)
        if p.engine != "GPU" and result.options[s.network].boundary:
            spec = next((f.flag.split("=", 1)[1] for f in command.flags if f.flag.startswith("--outputIOFormats=")),
                        None)
            if spec:
                boundary_formats[s.network] = dict(zip((v.name or "" for v in graph.outputs), spec.split(","),
                                                       strict=True))
        if p.engine == "GPU" and s.network in recomputed:
            command.warnings.append(recomputed[s.network])
        out.commands.append({"engine": p.engine, "model": s.network, "segment": s.part, "file": file,
                             "command": shlex.join(command.argv), "argv": command.argv,
                             "warnings": command.warnings})
    rank = {(p.engine, p.segment.network, p.segment.part): i for i, p in enumerate(result.placed)}
    out.commands.sort(key=lambda c: rank[(c["engine"], c["model"], c["segment"])])
    return out
