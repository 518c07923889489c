"""Write a recovery: the recovered FP32 model, the files ``dlakit quantize`` writes for it, and its report JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx

from dlakit.atomic import write_text, write_with
from dlakit.model import load_model
from dlakit.quantize.outputs import write_outputs
from dlakit.quantize.qdq import insert_qdq
from dlakit.recover.pipeline import Recovery
from dlakit.recover.ranges import make_unsigned
from dlakit.recover.report import recovery_summary
from dlakit.targets import Target


def write_recovery(output: str | Path, source_name: str, result: Recovery, target: Target) -> dict[str, Any]:
    """Write the recovered model, then the quantize package's artefacts for it (each file atomically)."""
    directory = Path(output)
    stem = Path(source_name).stem or "model"
    recovered = directory / f"{stem}_recovered.onnx"
    write_with(recovered, lambda tmp: onnx.save(result.model, str(tmp)))
    loaded = load_model(result.model)
    loaded.source = str(recovered)
    info = {"model": source_name, "recovered_model": str(recovered), "method": "recover",
            "samples": result.observation.samples if result.observation else 0,
            "calibration_seconds": round(result.seconds.get("calibration_total", 0.0), 2)}
    # the recovered model is another model than the input (equalized, biases corrected, ReLU6 maybe changed): the
    # trtexec command is made from its own placement
    written = write_outputs(directory, loaded, result.model, result.plan, result.raw_amax, result.amax,
                            result.costs, target, info, never_negative=result.never_negative)
    if result.unsigned and "qdq" in written.files:
        qdq = insert_qdq(result.model, result.plan, result.amax, weights="int8", fp16_casts=False)
        make_unsigned(qdq.model, qdq.compare_names, result.unsigned, result.amax)
        write_with(written.files["qdq"], lambda tmp: onnx.save(qdq.model, str(tmp)))
    summary = dict(written.summary)
    summary["files"] = {**summary.get("files", {}), "recovered_model": str(recovered),
                        "recovery_report": str(directory / f"{stem}_recovery.json")}
    return summary


def write_recovery_files(output: str | Path, source_name: str, result: Recovery, target: Target) -> dict[str, Any]:
    """Every file of a recovery, the last its JSON report; returns that report."""
    summary = write_recovery(output, source_name, result, target)
    summary.update(recovery_summary(result))
    write_text(Path(output) / f"{Path(source_name).stem}_recovery.json", json.dumps(summary, indent=2) + "\n")
    return summary
