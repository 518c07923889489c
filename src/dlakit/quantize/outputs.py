"""The files TensorRT needs for DLA INT8, written atomically into one folder, and their JSON summary.

- ``<stem>.cache``: calibration cache with the release's header, for ``trtexec --calib`` (TensorRT ≤ 10);
- ``<stem>_scales.json``: per-tensor amax and scale (plus why a scale was widened);
- ``<stem>_layer_precisions.txt``: the ``--layerPrecisions`` value for layers left in FP16;
- ``<stem>_qdq.onnx``: Q/DQ model (INT8 per-tensor activations, per-output-channel INT8 weights, zero point 0),
  the input of TensorRT 11.4's strongly typed DLA builds;
- ``<stem>_trtexec.sh``: the trtexec command that uses them, one reason per flag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from dlakit.atomic import write_text, write_with
from dlakit.errors import DlakitError, OptionError
from dlakit.model import LoadedModel
from dlakit.quantize.cache import DEFAULT_ALGORITHM, CalibrationCache, scale_to_hex, write_cache
from dlakit.quantize.fp16 import to_fp16
from dlakit.quantize.plan import EqualScaleCost, QuantPlan
from dlakit.quantize.qdq import insert_qdq
from dlakit.targets import Target
from dlakit.vocab import Precision

if TYPE_CHECKING:
    from dlakit.check import CheckReport


def layer_precisions(layers: list[str]) -> str:
    return ",".join(f"{name}:fp16" for name in layers)


@dataclass
class QuantizeOutputs:
    directory: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def trtexec_commands(loaded: LoadedModel, target: Target, files: dict[str, Path], fp16_layers: list[str],
                     placement: CheckReport | None = None) -> dict[str, Any]:
    """trtexec command lines for the target's release (calibration cache, or Q/DQ model when strongly typed).

    ``placement``: ``loaded``'s INT8 placement on ``target`` when the caller has it (else it is placed here)."""
    from dlakit.check import check_model
    from dlakit.deploy.trtexec import TrtexecOptions, build_command

    report = placement if placement is not None else check_model(loaded, target, Precision.INT8)
    strongly = target.release.strongly_typed
    options = TrtexecOptions(
        precision=Precision.INT8,
        calib=None if strongly else files["cache"].name,
        layer_precisions=[] if strongly else fp16_layers,
        model_path=files["qdq"].name if strongly else Path(loaded.source).name,
    )
    command = build_command(report, loaded.graph, options)
    command.warnings = [w for w in command.warnings if "needs a Q/DQ model" not in w]
    return {"script": command.script(), **command.as_dict()}


def write_outputs(
    directory: str | Path,
    loaded: LoadedModel,
    model: onnx.ModelProto,
    plan: QuantPlan,
    raw: dict[str, float],
    tied: dict[str, float],
    costs: list[EqualScaleCost],
    target: Target,
    info: dict[str, Any],
    never_negative: set[str] | None = None,
    write_qdq: bool = True,
    qdq_precision: str = "auto",
    placement: CheckReport | None = None,
) -> QuantizeOutputs:
    """Write every output for ``tied`` scales (DLA constraints applied) and return their paths and summary.

    ``placement``: ``loaded``'s INT8 placement (``Analysis.placement``), reused for the trtexec command.
    ``qdq_precision``: ``fp16`` (the strongly typed DLA form: no FP32 tensor is left, since DLA cannot run FP32),
    ``fp32`` (explicit quantization for TensorRT 8.6-10, other tools), or ``auto`` (fp16 for strongly typed releases).
    """
    if qdq_precision not in ("auto", "fp16", "fp32"):
        raise OptionError(f"{{qdq_precision}}: '{qdq_precision}' is not auto, fp16 or fp32", "qdq_precision")
    if qdq_precision == "auto":
        qdq_precision = "fp16" if target.release.strongly_typed else "fp32"
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise DlakitError(f"-o {directory}: exists and is not a folder; give a folder for the outputs")
    stem = Path(loaded.source).stem or "model"
    out = QuantizeOutputs(directory)
    files = {"cache": directory / f"{stem}.cache", "scales": directory / f"{stem}_scales.json",
             "layer_precisions": directory / f"{stem}_layer_precisions.txt"}
    if write_qdq:
        files["qdq"] = directory / f"{stem}_qdq.onnx"
    files["trtexec"] = directory / f"{stem}_trtexec.sh"
    version = target.release.trt_version_int
    # fused intermediates keep their own range: the DLA never writes them, but TensorRT finds a scale if it does not
    # fuse (their emulation runs them unquantized)
    listed = {n: tied.get(n, raw.get(n)) for n in plan.observed}
    cache = CalibrationCache.from_amax({n: a for n, a in listed.items() if a is not None}, version, DEFAULT_ALGORITHM)
    fp16 = list(plan.fp16_layers)
    subnormal: list[str] = []
    qdq_model = None
    if write_qdq:  # built before anything is written: a failure here must not leave half a set of files
        qdq_model = insert_qdq(model, plan, tied, weights="int8", fp16_casts=False).model
        if qdq_precision == "fp16":
            qdq_model, subnormal = to_fp16(qdq_model)
    write_cache(files["cache"], cache)
    write_text(files["layer_precisions"], layer_precisions(fp16) + "\n")
    if qdq_model is not None:
        write_with(files["qdq"], lambda tmp: onnx.save(qdq_model, str(tmp)))
    try:
        trtexec = trtexec_commands(loaded, target, files, fp16, placement)
    except DlakitError as exc:
        trtexec = {"script": f"# trtexec command unavailable: {exc}\n", "command": None, "warnings": [str(exc)]}
    write_text(files["trtexec"], trtexec["script"])
    negative = never_negative or set()
    tensors = []
    for name in plan.observed:
        if name not in cache.scales:
            continue
        scale = cache.scales[name]
        group = plan.group_of(name)
        tensors.append({"name": name, "amax": listed[name], "calibrated_amax": raw.get(name), "scale": scale,
                        "hex": scale_to_hex(scale), "never_negative": name in negative,
                        "shares_scale_with": group if group != name else None,
                        "fused_into": plan.fused.get(name)})
    summary = {
        **info,
        "target": target.label,
        "tensorrt": target.release.tensorrt,
        "cache_header": cache.header,
        "tensors": tensors,
        "int8_layers": len(plan.int8_layers),
        "fp16_layers": fp16,
        "gpu_layers": plan.gpu_layers,
        "fused_tensors": sorted(plan.fused),
        "equal_scale_costs": [{"tensor": c.tensor, "own_amax": c.own_amax, "amax": c.group_amax,
                               "bits_lost": round(c.bits_lost, 2), "reason": c.reason} for c in costs],
        "layer_precisions": layer_precisions(fp16),
        "qdq_precision": qdq_precision if write_qdq else None,
        "qdq_subnormal_fp16_scales": subnormal,
        "trtexec": trtexec.get("command"),
        "trtexec_warnings": trtexec.get("warnings", []),
        "files": {key: str(path) for key, path in files.items()},
    }
    write_text(files["scales"], json.dumps(summary, indent=2) + "\n")
    out.files, out.summary = files, summary
    return out
