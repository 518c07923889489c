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
from dlakit.data.opdata import op_data
from dlakit.errors import DlakitError
from dlakit.model import static_dims

#: Layers and ops that run in FP16 on the DLA even in an INT8 build: trtexec must allow FP16 (--int8 alone does not).
#: From ``data/ops.toml`` (``[layers] fp16_in_int8`` and the ops whose ``int8`` is ``fp16_only``).
FP16_LAYERS = op_data().fp16_layers
FP16_OPS = op_data().having("int8", "fp16_only")


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
    #: "dla" (a DLA core, GPU fallback where check says so) or "gpu" (the whole model on the GPU)
    engine: str = "dla"
    #: ``--inputIOFormats`` entries chosen by the caller (e.g. a plan's head reading what its backbone writes)
    input_formats: list[str | None] | None = None
    #: engine file stem (default: the model file's)
    engine_stem: str | None = None


@dataclass
class TrtexecCommand:
    flags: list[Flag]
    warnings: list[str]
    header: str
    #: shell commands to run before trtexec (e.g. writing the zoo network the command reads)
    setup: list[str] = field(default_factory=list)

    @property
    def argv(self) -> list[str]:
        return ["trtexec", *(f.flag for f in self.flags)]

    def script(self) -> str:
        width = min(max(len(f.flag) for f in self.flags), 36)
        lines = [f"# {self.header}"]
        lines += [f"#   {f.flag.ljust(width)}  {f.why}" for f in self.flags]
        lines += [f"# warning: {w}" for w in self.warnings]
        if self.setup:
            lines.append("# first, write the model this command reads (a zoo network; skip if you have the file):")
        lines += self.setup
        lines.append(" \\\n    ".join(shlex.quote(a) if a != "trtexec" else a for a in self.argv))
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict:
        return {
            "command": shlex.join(self.argv),
            "argv": self.argv,
            "flags": [{"flag": f.flag, "why": f.why} for f in self.flags],
            "warnings": self.warnings,
            "setup": self.setup,
        }


# --- I/O formats: what TensorRT's TensorFormat enum documents for each format, checked before anything is printed ---

#: trtexec's ``--inputIOFormats/--outputIOFormats`` types (TensorRT 8.6 sampleOptions.cpp, facts/dla.md §5.1).
IO_TYPES = ("fp32", "fp16", "int32", "int8")
#: least rank of each trtexec format name (TensorRT NvInferRuntime(Base).h, TensorFormat: the vector-minor formats
#: "require at least three dimensions" (kCHW2, kHWC8, kCHW4, kCHW16, kCHW32, kHWC16, kHWC), kDHWC8/kCDHW32 at least
#: four; the DLA layouts are defined on [N][C][H][W]); kLINEAR (``chw``) takes any rank.
FORMAT_MIN_RANK = {"chw": 0, "chw2": 3, "chw4": 3, "hwc8": 3, "chw16": 3, "chw32": 3, "hwc16": 3, "hwc": 3,
                   "dhwc8": 4, "cdhw32": 4, "dla_linear": 3, "dla_hwc4": 4}
#: types each format is bound to (same header: kCHW16 "requires FP16", kCHW2/kHWC8 FP16, kCHW4 INT8 or FP16,
#: kCHW32 is DLA's INT8 format, kHWC FP32 or UINT8, kDLA_* FP16 or INT8); chw takes every type
FORMAT_TYPES = {"chw2": {"fp16"}, "hwc8": {"fp16"}, "hwc16": {"fp16"}, "chw4": {"int8", "fp16"},
                "chw16": {"fp16"}, "chw32": {"int8"}, "hwc": {"fp32"}, "dhwc8": {"fp16"},
                "cdhw32": {"int8", "fp16"}, "dla_linear": {"int8", "fp16"}, "dla_hwc4": {"int8", "fp16"}}
#: ONNX element types and the trtexec I/O types that can carry them (TensorRT 8.x narrows INT64 to INT32 in its
#: ONNX parser; TensorRT 10 keeps INT64, and BOOL, which the documented type list cannot name)
_FLOAT_TYPES = frozenset({"FLOAT", "FLOAT16", "BFLOAT16", "DOUBLE"})


def io_type_for(value: ir.Value, release_major: int) -> str | None:
    """The trtexec I/O type class for ``value``: ``"float"`` (fp32/fp16/int8 allowed), ``"int32"``, or None when
    no documented trtexec type carries it."""
    dtype = value.dtype.name if value.dtype is not None else "FLOAT"
    if dtype in _FLOAT_TYPES:
        return "float"
    if dtype == "INT32" or (dtype == "INT64" and release_major < 10):
        return "int32"
    return None


def format_problems(spec: str, values: list[ir.Value], role: str, release_major: int = 8) -> list[str]:
    """What TensorRT's documented format rules say is wrong with ``spec`` (a ``--inputIOFormats`` /
    ``--outputIOFormats`` value) for ``values``; empty when trtexec and TensorRT accept it."""
    entries = spec.split(",")
    problems: list[str] = []
    if len(entries) != len(values) and len(entries) != 1:
        return [f"{len(entries)} formats for {len(values)} {role}s (trtexec needs one per tensor, or one for all)"]
    for value, entry in zip(values, entries * len(values) if len(entries) == 1 else entries, strict=False):
        io_type, _, fmts = entry.partition(":")
        dims = static_dims(value)
        rank = len(dims) if dims is not None else len(value.shape or ())
        kind = io_type_for(value, release_major)
        if io_type not in IO_TYPES:
            problems.append(f"{value.name}: type '{io_type}' is not one of {'|'.join(IO_TYPES)}")
        elif kind is None:
            problems.append(f"{value.name}: {value.dtype} has no trtexec I/O type; leave the list out")
        elif (kind == "int32") != (io_type == "int32"):
            problems.append(f"{value.name}: {value.dtype} tensor given type {io_type}")
        for fmt in fmts.split("+"):
            if fmt not in FORMAT_MIN_RANK:
                problems.append(f"{value.name}: unknown format '{fmt}'")
                continue
            if rank < FORMAT_MIN_RANK[fmt]:
                problems.append(f"{value.name}: {fmt} needs at least {FORMAT_MIN_RANK[fmt]} dimensions, "
                                f"the tensor has {rank}")
            if fmt in FORMAT_TYPES and io_type not in FORMAT_TYPES[fmt]:
                problems.append(f"{value.name}: {fmt} is not a {io_type} format")
            if fmt == "dla_hwc4" and (role != "input" or dims is None or len(dims) != 4 or dims[1] not in (1, 3, 4)):
                problems.append(f"{value.name}: dla_hwc4 is an input format for 1, 3 or 4 channels")
            if fmt in ("chw16", "chw32", "dla_linear", "dla_hwc4") and dims and any(d > 8192 for d in dims[-3:]):
                problems.append(f"{value.name}: DLA formats limit C, H and W to 8192")
    return problems


def _native(precision: str, dims: tuple[int, ...] | None) -> str:
    """The DLA's native layout for ``precision`` where the rank allows a vectorised format, else linear."""
    if dims is not None and len(dims) < 3:
        return f"{precision}:chw"
    return "int8:chw32" if precision == "int8" else "fp16:chw16"


def _rank_note(dims: tuple[int, ...] | None) -> str:
    return f" ({len(dims)}-D: vectorised formats need 3 dimensions, so linear)" if dims is not None and len(dims) < 3 \
        else ""


#: formats only the DLA reads or writes (TensorRT headers: kDLA_LINEAR, kDLA_HWC4; kCHW16 "only supported by DLA"
#: from 10.12, shared/facts/trt_headers_dla.md): a GPU engine is not given them
DLA_ONLY_FORMATS = frozenset({"dla_linear", "dla_hwc4", "chw16"})


def zoo_setup(model: str) -> tuple[str, list[str]]:
    """(the path a command reads, the shell lines that write it): a zoo name is built to ``NAME.onnx`` first."""
    if Path(model).exists():
        return model, []
    from dlakit.zoo.registry import canonical

    path = f"{canonical(model)}.onnx"
    return path, [f"dlakit zoo build {canonical(model)} -o {path}"]


def _format_for_input(value: ir.Value, report: CheckReport, precision: str, major: int) -> tuple[str | None, str]:
    """(format, reason) of one network input: HWC4 straight into a first convolution when C is 1, 3 or 4."""
    kind = io_type_for(value, major)
    if kind != "float":
        return ("int32:chw", f"{value.dtype} input: linear int32") if kind else (None, f"{value.dtype} input")
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
    return _native(precision, dims), "the DLA's native layout for this precision: no reformat" + _rank_note(dims)


def _format_for_output(value: ir.Value, report: CheckReport, precision: str, major: int) -> tuple[str | None, str]:
    kind = io_type_for(value, major)
    if kind != "float":
        return ("int32:chw", f"{value.dtype} output: linear int32") if kind else (None, f"{value.dtype} output")
    producer = value.producer()
    placements = {n.name: n for n in report.nodes}
    placed = placements.get(producer.name) if producer is not None else None
    if placed is None or placed.placement != DLA:
        return "fp32:chw", "produced by a GPU layer: keep the default format"
    dims = static_dims(value)
    if placed.layer in FP16_LAYERS or placed.op in FP16_OPS:
        return _native("fp16", dims), f"{placed.op} computes in FP16 on the DLA: its native FP16 layout" + \
            _rank_note(dims)
    return _native(precision, dims), "the DLA's native output layout (DLA has no HWC4 output)" + _rank_note(dims)


def _io_flag(option: str, values: list[ir.Value], chosen: list[tuple[str | None, str]], role: str,
             warnings: list[str]) -> Flag | None:
    """One ``--inputIOFormats``/``--outputIOFormats`` flag, or None (with a warning) when a tensor's type has no
    trtexec name: trtexec wants every tensor listed, so the list is left out and TensorRT picks the formats."""
    if not values:
        return None
    missing = [f"'{v.name}' ({why})" for v, (spec, why) in zip(values, chosen, strict=True) if spec is None]
    if missing:
        warnings.append(f"{option} left out: {', '.join(missing)} has no type in trtexec's list "
                        f"({'|'.join(IO_TYPES)}) and trtexec needs every {role} listed; TensorRT picks the formats")
        return None
    return Flag(f"{option}={','.join(spec for spec, _ in chosen)}",  # type: ignore[misc]
                "; ".join(f"{v.name}: {why}" for v, (_, why) in zip(values, chosen, strict=True)))


def build_command(report: CheckReport, graph: ir.Graph, options: TrtexecOptions) -> TrtexecCommand:
    """The trtexec command for ``report``'s target; refuses what the board cannot run."""
    target = report.target
    release = target.release
    cores = target.platform.dla_cores
    gpu = options.engine == "gpu"
    if options.engine not in ("dla", "gpu"):
        raise DlakitError(f"engine: '{options.engine}' is not dla or gpu")
    if not 0 <= options.core < cores:
        raise DlakitError(f"core (--core): {target.platform.name} has DLA cores 0..{cores - 1}, not {options.core}")
    if options.precision not in ("int8", "fp16"):
        raise DlakitError(f"precision (--precision): '{options.precision}' is not int8 or fp16")
    fallback = not report.fully_on_dla and not gpu
    if gpu and (options.standalone or options.sparse):
        raise DlakitError("a GPU engine has no --standalone (cuDLA) build and no DLA sparsity")
    if options.standalone and fallback:
        gpu = [n.name for n in report.nodes if n.placement in ("gpu", "fixable")]
        raise DlakitError(
            f"--standalone: {len(gpu)} node(s) cannot run on the DLA (first: '{gpu[0]}'); a cuDLA loadable has no "
            "GPU fallback. Run dlakit fix, or drop --standalone"
        )
    known = {n.name for n in report.nodes}
    unknown = [name for name in options.layer_precisions if name not in known]
    if unknown:
        raise DlakitError(f"layer_precisions (--fp16-layers): no layer named '{unknown[0]}' in {report.source}; "
                          "use node names as dlakit check lists them")
    warnings: list[str] = []
    flags = [Flag(f"--onnx={options.model_path}", "the model (static shapes, as checked)")]
    if not gpu:
        flags.append(Flag(f"--useDLACore={options.core}",
                          f"run DLA layers on core {options.core} of {cores}; build one engine per core to use both"))
    fp16_needed = bool(options.layer_precisions) or (not gpu and any(
        n.placement == DLA and (n.layer in FP16_LAYERS or n.op in FP16_OPS) for n in report.nodes
    ))
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
    if target.is_orin and not gpu:
        flags.append(Flag("--memPoolSize=dlaSRAM:1", "1 MiB of the core's SRAM per loadable, as NVIDIA's reference "
                                                     "Orin builds"))
    major = release.trt_version[0]
    inputs = [_format_for_input(v, report, options.precision, major) for v in graph.inputs]
    outputs = [_format_for_output(v, report, options.precision, major) for v in graph.outputs]
    given = options.input_formats if options.input_formats is not None else [None] * len(graph.inputs)
    if len(given) != len(graph.inputs):
        raise DlakitError(f"input formats: {len(given)} given for {len(graph.inputs)} inputs")
    inputs = [(spec, "what the engine before this one writes: no reformat between them") if spec else chosen
              for spec, chosen in zip(given, inputs, strict=True)]
    if gpu:  # TensorRT's defaults (fp32:chw) unless the caller chose formats; never a DLA-only one
        default = ("fp32:chw", "GPU engine: the default format")
        inputs = [(spec, why) if spec and given[i] and spec.partition(":")[2] not in DLA_ONLY_FORMATS else
                  (default if io_type_for(v, major) == "float" else (spec, why))
                  for i, (v, (spec, why)) in enumerate(zip(graph.inputs, inputs, strict=True))]
        outputs = [default if io_type_for(v, major) == "float" else (spec, why)
                   for v, (spec, why) in zip(graph.outputs, outputs, strict=True)]
    for option, values, chosen, role in (("--inputIOFormats", list(graph.inputs), inputs, "input"),
                                         ("--outputIOFormats", list(graph.outputs), outputs, "output")):
        io_flag = _io_flag(option, values, chosen, role, warnings)
        if io_flag is not None:
            problems = format_problems(io_flag.flag.split("=", 1)[1], values, role, major)
            if problems:  # never print a format TensorRT refuses: leave the list out, TensorRT picks
                warnings.append(f"{option} left out: {'; '.join(problems)}")
                continue
            flags.append(io_flag)
    if fallback:
        count = sum(1 for n in report.nodes if n.placement in ("gpu", "fixable"))
        flags.append(Flag("--allowGPUFallback", f"{count} node(s) cannot run on the DLA (see dlakit check)"))
    if options.sparse:
        if not target.is_orin:
            raise DlakitError("sparse (--sparse): structured sparsity needs Orin's DLA; Xavier has none")
        why = ("use sparse tactics where weights already hold the 2:4 pattern" if options.sparse == "enable"
               else "overwrite weights with a 2:4 pattern: for performance studies only, accuracy is lost")
        flags.append(Flag(f"--sparsity={options.sparse}", why))
        if options.precision == "fp16" or options.layer_precisions:
            warnings.append("--sparse: DLA uses 2:4 sparsity for INT8 convolutions only; FP16 layers stay dense")
    for name, dims in options.shapes.items():
        flags.append(Flag(f"--shapes={name}:{'x'.join(map(str, dims))}", "the static input shape checked"))
    stem = options.engine_stem or Path(options.model_path).stem
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
              + ("GPU" if gpu else f"DLA core {options.core}"))
    return TrtexecCommand(flags=flags, warnings=warnings, header=header)
