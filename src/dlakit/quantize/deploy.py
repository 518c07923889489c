"""What ``dlakit quantize`` adds to a trtexec command: the FP16 layers of its plan and a check of a ``--calib`` cache.

Quantize sits above deploy (it writes trtexec commands next to its cache), so the composition of the two lives here
and deploy knows nothing of quantize.
"""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from dlakit.check import CheckReport
from dlakit.deploy.trtexec import TrtexecOptions
from dlakit.quantize.cache import read_cache
from dlakit.quantize.plan import build_plan, off_dla_of


def with_calibration(options: TrtexecOptions, report: CheckReport, graph: ir.Graph) -> list[str]:
    """Complete ``options`` for its ``--calib`` cache as ``dlakit quantize`` would have: add the layers quantize
    keeps in FP16 (its plan, from the same placement) to ``layer_precisions``, and return warnings naming the
    tensors that need an INT8 scale but have none in the cache (TensorRT would give them a dummy range or fail).

    The plan is :func:`dlakit.quantize.plan.build_plan`, the one quantize writes ``--layerPrecisions`` from, so the
    two commands cannot drift apart.
    """
    if not options.calib or options.precision != "int8" or report.target.release.strongly_typed:
        return []
    plan = build_plan(graph, set(options.layer_precisions), off_dla=off_dla_of(report))
    options.layer_precisions = [*plan.fp16_layers,
                                *(n for n in options.layer_precisions if n not in plan.fp16_layers)]
    path = Path(options.calib)
    if not path.is_file():
        return [f"--calib {options.calib}: not found here, so not checked against the model's tensors"]
    scales = read_cache(path).scales
    missing = [name for name in plan.tensors if name not in scales]
    if not missing:
        return []
    shown = ", ".join(f"'{name}'" for name in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                                               else "")
    return [f"--calib {options.calib}: {len(missing)} tensor(s) the DLA's INT8 layers read or write have no scale: "
            f"{shown}; TensorRT gives them no calibrated range (re-run dlakit quantize on this model)"]
