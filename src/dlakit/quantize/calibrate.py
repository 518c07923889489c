"""Calibration: stream data through the FP32 model, collect per-tensor statistics, derive DLA scales."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import onnx

from dlakit.choices import DEFAULT_BUDGET_MB
from dlakit.errors import DlakitError, OptionError
from dlakit.model import LoadedModel
from dlakit.quantize.calibrators import Calibrator
from dlakit.quantize.data import DataSource
from dlakit.quantize.plan import EqualScaleCost, QuantPlan, build_plan
from dlakit.quantize.runtime import input_specs, stream_activations, tensor_bytes, to_proto


@dataclass
class Calibration:
    """The outcome of one calibration pass; :meth:`ranges` can be asked for any method from the same pass."""

    model: onnx.ModelProto
    plan: QuantPlan
    calibrator: Calibrator
    samples: int
    seconds: float

    def ranges(self, method: str | None = None) -> tuple[dict[str, float], dict[str, float], list[EqualScaleCost]]:
        """``(raw amax, amax after DLA equal-scale constraints, constraint costs)``.

        Outputs of saturating activations (ReLU6, Sigmoid) keep their observed maximum whatever the method: KL,
        percentile and MSE see the values piled up at the bound as outliers and clip them (a KL search cut
        EfficientNet-Lite's late ReLU6 outputs from 6 to 3-4 and cost 1.5 dB each, int8_baseline.md pitfall 2),
        yet saturated values are the activation's most informative ones and already bounded.
        """
        raw = self.calibrator.ranges(method)
        for name, bound in self.plan.bounded.items():
            if name in raw and name in self.calibrator.stats:
                raw[name] = min(self.calibrator.stats[name].amax, bound)
        tied, costs = self.plan.apply_constraints(raw)
        return raw, tied, costs

    def never_negative(self) -> set[str]:
        return {name for name, st in self.calibrator.stats.items() if st.never_negative}


def batch_size_for(loaded: LoadedModel, requested: int | None = None) -> int:
    """The model's static batch (inputs are static after loading); ``requested`` must agree with it."""
    _, batch = input_specs(loaded)
    return batch or requested or 1


def require_int8_layers(plan: QuantPlan, source: str) -> None:
    """Refuse a model where no layer would run on the DLA in INT8: there is nothing to calibrate, and every INT8
    file would be empty."""
    if not plan.observed:
        raise DlakitError(f"{source}: no layer runs on the DLA in INT8 (dlakit check shows where each layer runs), so "
                          "there is nothing to calibrate or quantize; fix the model for DLA first (dlakit fix) or "
                          "build it in FP16")


def calibrate(
    loaded: LoadedModel,
    source: DataSource,
    method: str = "entropy",
    percentile: float = 99.99,
    fp16_layers: set[str] | None = None,
    budget_mb: int = DEFAULT_BUDGET_MB,
    progress: bool = True,
    plan: QuantPlan | None = None,
    off_dla: frozenset[str] = frozenset(),
    sharded: Callable[..., int] | None = None,
) -> Calibration:
    """Run ``source`` through the FP32 model once, observing every tensor a DLA INT8 layer reads or writes.

    ``off_dla``: layers ``dlakit check`` places on the GPU (:func:`dlakit.quantize.plan.off_dla_layers`).
    ``sharded``: runs the statistics pass elsewhere, called as ``sharded(model, source, calibrator, tensors, batch,
    budget_bytes, sizes, progress)`` and returning the samples seen (:func:`dlakit.scale.calib.sharder`: a Ray
    cluster, the same statistics bit for bit); None runs here.
    """
    unknown = sorted(set(fp16_layers or ()) - {node.name for node in loaded.graph})
    if unknown:
        raise OptionError(f"{{fp16_layers}}: no layer named {', '.join(unknown)} in {loaded.source}; use node names "
                          "as dlakit check lists them", "fp16_layers")
    plan = plan or build_plan(loaded.graph, fp16_layers or set(), off_dla=off_dla)
    require_int8_layers(plan, loaded.source)
    model = to_proto(loaded)
    calibrator = Calibrator(method=method, percentile=percentile)
    batch = batch_size_for(loaded)
    start = time.perf_counter()
    sizes = tensor_bytes(loaded, plan.observed)
    if sharded is not None:
        samples = sharded(model, source, calibrator, plan.observed, batch, budget_mb << 20, sizes, progress)
    else:
        samples = stream_activations(model, source, plan.observed, calibrator.observe, batch, budget_mb << 20,
                                     sizes, progress=progress)
    return Calibration(model, plan, calibrator, samples, time.perf_counter() - start)
