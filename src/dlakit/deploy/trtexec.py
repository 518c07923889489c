"""Build the exact trtexec command that deploys a checked model on a DLA core, with a reason for every flag.

The choices follow what trtexec does with each flag (TensorRT 8.6 / 10.7 ``sampleOptions.cpp`` and
``sampleEngines.cpp``, summarised in shared/facts/dla.md §5) and NVIDIA's reference DLA commands
(``--memPoolSize=dlaSRAM:1 --inputIOFormats=int8:dla_hwc4 --outputIOFormats=int8:chw32``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import onnx_ir as ir

from dlakit.check import DLA, CheckReport
from dlakit.errors import DlakitError
from dlakit.model import static_dims

#: Layers that run in FP16 on the DLA even in an INT8 build: trtexec must allow FP16 (--int8 alone does not).
FP16_LAYERS = frozenset({"softmax", "slice", "lrn"})
FP16_OPS = frozenset({"Sigmoid", "Tanh", "LRN", "Softmax"})


@dataclass(frozen=True)
class Flag:
    flag: str
    why: str


@dataclass
class TrtexecOptions:
    core: int = 0
    precision: str = "int8"
    calib: str | None = None
    layer_precisions: list[str] = field(default_factory=list)  # layer names to keep in FP16
    sparse: str | None = None  # None, "enable" (weights already 2:4) or "force" (performance study)
    standalone: bool = False
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    profile: bool = False
    model_path: str = "model.onnx"


@dataclass
class TrtexecCommand:
    flags: list[Flag]
    warnings: list[str]
    header: str

    @property
    def argv(self) -> list[str]:
        return ["trtexec", *(f.flag for f in self.flags)]

    def script(self) -> str:
        width = min(max(len(f.flag) for f in self.flags), 36)
        lines = [f"# {self.header}"]
        lines += [f"#   {f.flag.ljust(width)}  {f.why}" for f in self.flags]
        lines += [f"# warning: {w}" for w in self.warnings]
        lines.append(" \\\n    ".join(shlex.quote(a) if a != "trtexec" else a for a in self.argv))
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict:
        return {
            "command": shlex.join(self.argv),
            "argv": self.argv,
            "flags": [{"flag": f.flag, "why": f.why} for f in self.flags],
            "warnings": self.warnings,
        }


def _format_for_input(value: ir.Value, report: CheckReport, precision: str) -> tuple[str, str]:
    """(format, reason) of one network input: HWC4 straight into a first convolution when C is 1, 3 or 4."""
    users = [user for user, _ in value.uses()]
    placements = {n.name: n for n in report.nodes}
    on_dla = [placements[u.name] for u in users if u.name in placements and placements[u.name].placement == DLA]
    if not users or len(on_dla) != len(users):
        return "fp32:chw", "read by a GPU layer: keep the default format"
    dims = static_dims(value)
    channels = dims[1] if dims and len(dims) == 4 else None
    if all(p.op == "Conv" for p in on_dla) and channels in (1, 3, 4):
        return f"{precision}:dla_hwc4", (f"{channels}-channel image straight into the first convolution: "
                                         "HWC4 needs no reformat")
    native = "int8:chw32" if precision == "int8" else "fp16:chw16"
    return native, "the DLA's native layout for this precision: no reformat"


def _format_for_output(value: ir.Value, report: CheckReport, precision: str) -> tuple[str, str]:
    producer = value.producer()
    placements = {n.name: n for n in report.nodes}
    placed = placements.get(producer.name) if producer is not None else None
    if placed is None or placed.placement != DLA:
        return "fp32:chw", "produced by a GPU layer: keep the default format"
    if placed.layer in FP16_LAYERS or placed.op in FP16_OPS:
        return "fp16:chw16", f"{placed.op} computes in FP16 on the DLA: its native FP16 layout"
    native = "int8:chw32" if precision == "int8" else "fp16:chw16"
    return native, "the DLA's native output layout (DLA has no HWC4 output)"


def build_command(report: CheckReport, graph: ir.Graph, options: TrtexecOptions) -> TrtexecCommand:
    """The trtexec command for ``report``'s target; refuses what the board cannot run."""
    target = report.target
    release = target.release
    cores = target.platform.dla_cores
    if not 0 <= options.core < cores:
        raise DlakitError(f"--core: {target.platform.name} has DLA cores 0..{cores - 1}, not {options.core}")
    if options.precision not in ("int8", "fp16"):
        raise DlakitError(f"--precision: '{options.precision}' is not int8 or fp16")
    fallback = not report.fully_on_dla
    if options.standalone and fallback:
        gpu = [n.name for n in report.nodes if n.placement in ("gpu", "fixable")]
        raise DlakitError(
            f"--standalone: {len(gpu)} node(s) cannot run on the DLA (first: '{gpu[0]}'); a cuDLA loadable has no "
            "GPU fallback. Run dlakit fix, or drop --standalone"
        )
    known = {n.name for n in report.nodes}
    unknown = [name for name in options.layer_precisions if name not in known]
    if unknown:
        raise DlakitError(f"--fp16-layers: no layer named '{unknown[0]}' in {report.source}; use node names as "
                          "dlakit check lists them")
    warnings: list[str] = []
    flags = [Flag(f"--onnx={options.model_path}", "the model (static shapes, as checked)")]
    flags.append(Flag(f"--useDLACore={options.core}",
                      f"run DLA layers on core {options.core} of {cores}; build one engine per core to use both"))
    fp16_needed = bool(options.layer_precisions) or any(
        n.placement == DLA and (n.layer in FP16_LAYERS or n.op in FP16_OPS) for n in report.nodes
    )
    if release.strongly_typed:
        flags.append(Flag("--stronglyTyped", f"TensorRT {release.tensorrt} builds DLA networks strongly typed: "
                                             "precisions come from the model's Q/DQ nodes, not builder flags"))
        if options.precision == "int8" and not any(n.op in ("QuantizeLinear", "DequantizeLinear")
                                                   for n in report.nodes):
            warnings.append("an INT8 strongly typed build needs a Q/DQ model: create one with dlakit quantize")
    elif options.precision == "int8":
        flags.append(Flag("--int8", "INT8 layers (scales from --calib)"))
        if fp16_needed:
            flags.append(Flag("--fp16", "allow FP16 for layers without INT8 (with --int8 alone trtexec does not "
                                        "enable FP16, and such layers would leave the DLA)"))
        if options.calib:
            flags.append(Flag(f"--calib={options.calib}", "per-tensor INT8 scales (TensorRT calibration cache)"))
        else:
            warnings.append("no --calib: trtexec assigns dummy INT8 ranges, good for timing, not for accuracy "
                            "(dlakit quantize writes a cache)")
    else:
        flags.append(Flag("--fp16", "FP16 build (DLA runs FP16 and INT8 only)"))
    if options.layer_precisions and not release.strongly_typed:
        flags.append(Flag("--precisionConstraints=prefer", "honour the per-layer precisions below"))
        spec = ",".join(f"{name}:fp16" for name in options.layer_precisions)
        flags.append(Flag(f"--layerPrecisions={spec}", f"{len(options.layer_precisions)} layer(s) kept in FP16"))
    if target.is_orin:
        flags.append(Flag("--memPoolSize=dlaSRAM:1", "1 MiB of the core's SRAM per loadable, as NVIDIA's reference "
                                                     "Orin builds"))
    inputs = [_format_for_input(v, report, options.precision) for v in graph.inputs]
    outputs = [_format_for_output(v, report, options.precision) for v in graph.outputs]
    if inputs:
        flags.append(Flag(f"--inputIOFormats={','.join(f for f, _ in inputs)}",
                          "; ".join(f"{v.name}: {why}" for v, (_, why) in zip(graph.inputs, inputs, strict=True))))
    if outputs:
        flags.append(Flag(f"--outputIOFormats={','.join(f for f, _ in outputs)}",
                          "; ".join(f"{v.name}: {why}" for v, (_, why) in zip(graph.outputs, outputs, strict=True))))
    if fallback:
        count = sum(1 for n in report.nodes if n.placement in ("gpu", "fixable"))
        flags.append(Flag("--allowGPUFallback", f"{count} node(s) cannot run on the DLA (see dlakit check)"))
    if options.sparse:
        if not target.is_orin:
            raise DlakitError("--sparse: structured sparsity needs Orin's DLA; Xavier has none")
        why = ("use sparse tactics where weights already hold the 2:4 pattern" if options.sparse == "enable"
               else "overwrite weights with a 2:4 pattern: for performance studies only, accuracy is lost")
        flags.append(Flag(f"--sparsity={options.sparse}", why))
        if options.precision == "fp16" or options.layer_precisions:
            warnings.append("--sparse: DLA uses 2:4 sparsity for INT8 convolutions only; FP16 layers stay dense")
    for name, dims in options.shapes.items():
        flags.append(Flag(f"--shapes={name}:{'x'.join(map(str, dims))}", "the static input shape checked"))
    stem = Path(options.model_path).stem
    if options.standalone:
        flags.append(Flag("--buildDLAStandalone", "emit a DLA loadable for cuDLA (no GPU, no inference run)"))
        flags.append(Flag(f"--saveEngine={stem}.dla", "the loadable"))
    else:
        flags.append(Flag(f"--saveEngine={stem}.engine", "keep the engine for deployment"))
    if options.profile and options.standalone:
        warnings.append("--profile ignored: a --buildDLAStandalone build runs no inference, so there is nothing to "
                        "profile; build a normal engine for dlakit compare --profile")
    if options.calib and options.precision != "int8":
        warnings.append(f"--calib {options.calib} ignored: an FP16 build uses no INT8 scales")
    if options.profile and not options.standalone:
        flags.append(Flag("--separateProfileRun", "time the network apart from the per-layer profile"))
        flags.append(Flag("--profilingVerbosity=detailed", "name every layer in the exported layer info"))
        flags.append(Flag(f"--exportProfile={stem}.profile.json", "per-layer times, for dlakit compare --profile"))
        flags.append(Flag(f"--exportLayerInfo={stem}.layers.json",
                          "layer placement (dlakit.deploy.tensorrt_logs.parse_layer_info reads it)"))
    header = (f"dlakit trtexec: {report.source} on {target.label}, {options.precision.upper()}, "
              f"DLA core {options.core}")
    return TrtexecCommand(flags=flags, warnings=warnings, header=header)
