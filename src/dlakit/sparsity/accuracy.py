"""The accuracy cost of 2:4 pruning before any fine-tuning: dense vs sparse outputs on real inputs.

Sparsity trades accuracy for speed, and the trade is only acceptable after fine-tuning (NVIDIA's case study
retrains for 26 epochs); dlakit does not train, so what it can give a user is the size of the gap *before*
fine-tuning, per model and per layer choice, to decide whether retraining is worth it and which layers to leave
dense. Everything is compared with the dense FP32 model's output on the same inputs:

- ``sparse FP32``: the pruning alone (ONNX Runtime);
- ``dense INT8`` / ``sparse INT8``: through dlakit's DLA INT8 emulator, each model calibrated on its own
  activations (as TensorRT would calibrate each engine), so the INT8 gap of the sparse model can be read against
  the INT8 gap the dense model already has.

Metrics: SQNR (dB) of the first output against the reference, and, for classifier-shaped outputs (N, classes),
top-1 agreement with the dense FP32 model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort

from dlakit.errors import DlakitError, OptionError

if TYPE_CHECKING:
    from dlakit.check import CheckReport
    from dlakit.sparsity.apply import SparsifyResult

Batch = dict[str, np.ndarray]


@dataclass
class OutputDelta:
    """One model variant against the dense FP32 reference."""

    variant: str
    sqnr_db: float
    top1_agreement: float | None
    max_abs_diff: float

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant,
                "sqnr_db": None if math.isinf(self.sqnr_db) else round(self.sqnr_db, 3),
                "top1_agreement": None if self.top1_agreement is None else round(self.top1_agreement, 4),
                "max_abs_diff": round(self.max_abs_diff, 6)}


@dataclass
class AccuracyEffect:
    samples: int
    output: str
    rows: list[OutputDelta] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "output": self.output, "reference": "dense FP32",
                "variants": [r.as_dict() for r in self.rows], "notes": self.notes}


def run_first_output(model: onnx.ModelProto, batches: Iterable[tuple[Batch, int]]) -> np.ndarray:
    """The first graph output over all batches (``(inputs, valid)`` pairs; padding rows dropped)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for models it cannot run
        raise DlakitError(f"ONNX Runtime cannot run the model: {str(exc).splitlines()[0][:200]}") from exc
    names = {i.name for i in sess.get_inputs()}
    first = sess.get_outputs()[0].name
    parts = []
    for batch, valid in batches:
        parts.append(sess.run([first], {k: v for k, v in batch.items() if k in names})[0][:valid])
    if not parts:
        raise DlakitError("no samples to compare the dense and sparse models on")
    return np.concatenate(parts)


def compare(reference: np.ndarray, test: np.ndarray, variant: str) -> OutputDelta:
    """SQNR, top-1 agreement (2-D outputs with more than one class) and the largest absolute difference."""
    ref = reference.astype(np.float64)
    diff = ref - test.astype(np.float64)
    noise, signal = float(np.sum(diff**2)), float(np.sum(ref**2))
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    top1 = None
    if reference.ndim == 2 and reference.shape[1] > 1:
        top1 = float(np.mean(reference.argmax(axis=1) == test.argmax(axis=1)))
    return OutputDelta(variant, sqnr, top1, float(np.max(np.abs(diff))) if diff.size else 0.0)


def fp32_effect(dense: onnx.ModelProto, sparse: onnx.ModelProto, batches: list[tuple[Batch, int]]) -> AccuracyEffect:
    """Dense vs sparse FP32 on ``batches``: the cost of the pruning alone."""
    reference = run_first_output(dense, batches)
    test = run_first_output(sparse, batches)
    effect = AccuracyEffect(int(reference.shape[0]), dense.graph.output[0].name)
    effect.rows.append(compare(reference, test, "sparse FP32"))
    return effect


def add_int8_effect(effect: AccuracyEffect, dense: onnx.ModelProto, sparse: onnx.ModelProto, source: Any,
                    batches: list[tuple[Batch, int]], method: str = "entropy", shapes: Any = None,
                    off_dla: frozenset[str] = frozenset()) -> None:
    """Append ``dense INT8`` and ``sparse INT8`` (DLA INT8 emulator) rows to ``effect``.

    ``source`` is a ``dlakit.quantize`` DataSource used for calibration (each model is calibrated on its own
    activations); ``batches`` are the evaluation inputs the FP32 comparison used; ``shapes`` (parsed ``--shapes``)
    fixes dynamic inputs for calibration.
    """
    from dlakit.model import load_model
    from dlakit.quantize.calibrate import calibrate
    from dlakit.quantize.emulate import build_emulator

    reference = run_first_output(dense, batches)
    for variant, model in (("dense INT8 (emulated)", dense), ("sparse INT8 (emulated)", sparse)):
        # layers `dlakit check` keeps off the DLA get no scale (as in quantize/emulate): a comparison's bool output
        # must not get a QuantizeLinear
        calib = calibrate(load_model(model, shapes), source, method=method, progress=False, off_dla=off_dla)
        _, amax, _ = calib.ranges(method)
        emulated = build_emulator(calib.model, calib.plan, amax)
        effect.rows.append(compare(reference, run_first_output(emulated.model, batches), variant))
    effect.notes.append(f"INT8: DLA INT8 emulator, each model calibrated ({method}) on {len(source)} samples")




def layer_sensitivity(dense: onnx.ModelProto, prune_one: Any, layers: list[str],
                      batches: list[tuple[Batch, int]]) -> list[OutputDelta]:
    """FP32 cost of pruning each layer alone (``prune_one(name) -> ModelProto``), to choose ``--layers``: one
    sensitive layer (often a linear bottleneck projection) can cost more than ten others together."""
    reference = run_first_output(dense, batches)
    return [compare(reference, run_first_output(prune_one(name), batches), name) for name in layers]


def open_batches(path: str, loaded: Any, preset: str | None, num_samples: int | None
                 ) -> tuple[Any, list[tuple[Batch, int]]]:
    """A ``dlakit.quantize`` data source over ``path`` (image folder, .npy/.npz) and its batches in memory, at the
    model's static batch size; the batches are reused for every model compared."""
    from dlakit.quantize.data import PRESETS, open_source
    from dlakit.quantize.runtime import input_specs

    if preset is not None and preset not in PRESETS:
        raise OptionError(f"{{preset}}: '{preset}' is not one of {', '.join(PRESETS)}", "preset")
    inputs, batch = input_specs(loaded)
    source = open_source(path, inputs, PRESETS[preset or "imagenet"], num_samples)
    return source, list(source.batches(batch or 1))


def accuracy_of(proto: onnx.ModelProto, report: CheckReport, result: SparsifyResult,
                data_source: tuple[Any, list[tuple[Batch, int]]], int8: bool, per_layer: bool,
                shapes: Any = None) -> dict[str, Any]:
    """``dlakit sparsify --compare``'s ``accuracy`` field: dense FP32 as the reference, the pruned model (FP32,
    with ``int8`` also through the DLA INT8 emulator on ``report``'s placement), and with ``per_layer`` the FP32 cost
    of pruning each layer alone."""
    from dlakit.quantize.plan import off_dla_of
    from dlakit.sparsity.apply import sparsify_model

    source, batches = data_source
    effect = fp32_effect(proto, result.model, batches)
    if int8:
        add_int8_effect(effect, proto, result.model, source, batches, shapes=shapes, off_dla=off_dla_of(report))
    out = effect.as_dict()
    if per_layer:
        names = [x.name for x in result.pruned]
        rows = layer_sensitivity(proto, lambda name: sparsify_model(proto, report, result.mode, [name]).model,
                                 names, batches)
        out["per_layer"] = [r.as_dict() | {"layer": r.variant} for r in rows]
    return out


__all__ = [
    "AccuracyEffect",
    "OutputDelta",
    "accuracy_of",
    "add_int8_effect",
    "compare",
    "fp32_effect",

    "layer_sensitivity",
    "open_batches",
    "run_first_output",
]
