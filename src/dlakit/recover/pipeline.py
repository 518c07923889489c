"""INT8 accuracy recovery for DLA, end to end: equalize → observe → correct biases → search ranges → mixed precision.

Every step keeps DLA's numerics (symmetric per-tensor activations, per-output-channel weights at max|W|/127, FP16
per layer) so that the result is a plain FP32 model plus a calibration cache (and a Q/DQ model) that TensorRT
builds as is. Each stage is kept in :attr:`Recovery.stages` so that a caller (the benchmark, the report) can measure
what each technique gained.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from dlakit.analysis import Analysis
from dlakit.errors import DlakitError, OptionError
from dlakit.model import LoadedModel, load_model
from dlakit.quantize.calibrate import require_int8_layers
from dlakit.quantize.plan import EqualScaleCost, QuantPlan, build_plan
from dlakit.quantize.runtime import input_specs, tensor_bytes, to_proto
from dlakit.recover.bias_correction import BiasCorrection, correct_biases
from dlakit.recover.budget import NoiseBudget, noise_budget
from dlakit.recover.equalize import RELU6_MODES, EqualizeResult, Verification, equalize, verify
from dlakit.recover.mixed import MixedResult, attach_times, restore_biases, select_fp16
from dlakit.recover.observe import ArraySource, Observation, Source, observe
from dlakit.recover.ranges import RangeSearch, search_ranges
from dlakit.targets import resolve_target
from dlakit.vocab import Precision

#: DLA software from which unsigned (and asymmetric) INT8 exists (int8_baseline.md; dla.md §4.1)
UINT8_MIN_DLA = (3, 16)
SEARCH_SAMPLES = 16
VERIFY_SAMPLES = 4


@dataclass
class RecoverOptions:
    equalize: bool = False  # DFQ's weight-range objective costs 0.3-0.7 dB on Lite0 (per-channel weights)
    relu6: str = "keep"
    bias_correction: bool = True
    range_search: bool = True
    target_sqnr_db: float | None = None
    max_fp16_macs: float | None = None
    allow_uint8: bool = False
    search_samples: int = SEARCH_SAMPLES
    release: str | None = None
    platform: str | None = None
    timings: bool = True  # attach dlakit.perf DLA times to FP16 layers
    noise_budget: bool = False  # measure each quantization point's share of the output noise (one run per group)
    progress: bool = True  # a bar on a terminal, a line every 15 s in a log, for the per-candidate searches
    #: runs the per-candidate emulator runs (sensitivity, noise budget) elsewhere: dlakit.scale.trials.sharder(pool)
    trial_runner: Callable[..., list[float]] | None = None


@dataclass
class Stage:
    """A model and its INT8 configuration after one technique (for ablations)."""

    name: str
    model: onnx.ModelProto
    amax: dict[str, float]
    fp16_nodes: list[str] = field(default_factory=list)
    unsigned: set[str] = field(default_factory=set)


@dataclass
class Recovery:
    original: onnx.ModelProto
    model: onnx.ModelProto  # the recovered FP32 model the scales belong to
    plan: QuantPlan  # for the final FP16 layers
    raw_amax: dict[str, float]
    amax: dict[str, float]
    costs: list[EqualScaleCost]
    unsigned: set[str]
    never_negative: set[str]
    stages: list[Stage] = field(default_factory=list)
    equalized: EqualizeResult | None = None
    verification: Verification | None = None
    relu6_effect: Verification | None = None
    bias: BiasCorrection | None = None
    search: RangeSearch | None = None
    mixed: MixedResult | None = None
    observation: Observation | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    budget: NoiseBudget | None = None


def dla_version(release_dla: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release_dla.split(".")[:2] if p.isdigit())


def check_uint8(release: str | None, platform: str | None) -> str:
    """``--allow-uint8`` only where the release's DLA has unsigned INT8; returns the release label."""
    from dlakit.targets import resolve_target

    target = resolve_target(platform, release)
    if dla_version(target.release.dla) < UINT8_MIN_DLA:
        raise OptionError(f"{{allow_uint8}}: {target.release.name} ships DLA {target.release.dla}, which has only "
                          f"symmetric INT8; unsigned INT8 needs DLA ≥ {'.'.join(map(str, UINT8_MIN_DLA))} "
                          "(e.g. {release} jetpack-7.2.2)", "allow_uint8", "release")
    return target.label


def _feeds(source: Source, batch_size: int, count: int) -> list[dict[str, np.ndarray]]:
    feeds = []
    for batch, _ in source.batches(batch_size):
        feeds.append(batch)
        if len(feeds) * batch_size >= count:
            break
    return feeds


def _head(source: Source, count: int, batch_size: int) -> Source:
    """The first ``count`` samples, in memory (the search and selection read them several times)."""
    if isinstance(source, ArraySource):
        return source.head(count)
    arrays: dict[str, list[np.ndarray]] = {}
    taken = 0
    for batch, valid in source.batches(batch_size):
        for name, value in batch.items():
            arrays.setdefault(name, []).append(value[:valid])
        taken += valid
        if taken >= count:
            break
    return ArraySource({k: np.concatenate(v)[:count] for k, v in arrays.items()})


def recover(loaded: LoadedModel, source: Source, options: RecoverOptions | None = None,
            analysis: Analysis | None = None) -> Recovery:
    """Run the recovery on ``loaded`` with calibration ``source``; the input model is never modified."""
    options = options or RecoverOptions()
    if options.max_fp16_macs is not None and not 0 <= options.max_fp16_macs <= 1:
        raise OptionError(f"{{max_fp16_macs}}: {options.max_fp16_macs} is not a fraction between 0 and 1",
                          "max_fp16_macs")
    if options.target_sqnr_db is not None and options.max_fp16_macs is not None:
        raise OptionError("give {target_sqnr_db} or {max_fp16_macs}, not both", "target_sqnr_db", "max_fp16_macs")
    if options.relu6 not in RELU6_MODES:
        raise OptionError(f"{{relu6}}: '{options.relu6}' is not one of {', '.join(RELU6_MODES)}", "relu6")
    if options.allow_uint8:
        check_uint8(options.release, options.platform)
    _, batch = input_specs(loaded)
    batch = batch or 1
    if len(source) == 0:
        raise DlakitError("calibration data holds no samples")
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    original = to_proto(loaded)
    if analysis is None:  # the INT8 placement of ``loaded`` on the options' target
        analysis = Analysis.of(loaded, resolve_target(options.platform, options.release), Precision.INT8)
    off_dla = analysis.off_dla
    plan = build_plan(loaded.graph, off_dla=off_dla)
    require_int8_layers(plan, loaded.source)
    notes: list[str] = []
    equalized = None
    verification = relu6_effect = None
    model1 = original
    if options.equalize:
        t = time.perf_counter()
        equalized = equalize(original, options.relu6)
        model1 = equalized.model
        feeds = _feeds(source, batch, VERIFY_SAMPLES)
        if options.relu6 == "relu" and equalized.relu6_replaced:
            relu6_effect = verify(original, model1, feeds)
            notes.append(f"ReLU6 replaced by ReLU in {len(equalized.relu6_replaced)} layers (a model change): FP32 "
                         f"output SQNR vs the original {relu6_effect.sqnr_db:.1f} dB")
        else:
            verification = verify(original, model1, feeds)
            if verification.sqnr_db < 80:
                raise DlakitError(f"cross-layer equalization changed the FP32 outputs ({verification.sqnr_db:.1f} "
                                  "dB); this is a dlakit bug, rerun without --equalize")
        seconds["equalize"] = time.perf_counter() - t
    loaded1 = load_model(model1) if model1 is not original else loaded
    sizes = tensor_bytes(loaded1, plan.tensors)
    means = {spec.activation for spec in plan.weights}
    obs = observe(model1, source, plan.tensors, means, batch, sizes)
    seconds["observe"] = obs.seconds
    raw = obs.amax()
    for name, bound in plan.bounded.items():  # a saturating activation never exceeds its bound
        if name in raw:
            raw[name] = min(raw[name], bound)
    start, costs = plan.apply_constraints(raw)
    never_negative = obs.never_negative() & set(plan.tensors)
    unsigned = set(never_negative) if options.allow_uint8 else set()
    stages = [Stage("naive (max)", original, dict(start), unsigned=unsigned)]
    if options.equalize:
        stages.append(Stage("+ cross-layer equalization", model1, dict(start), unsigned=unsigned))
    model2, bias = model1, None
    if options.bias_correction:
        t = time.perf_counter()
        bias = correct_biases(model1, plan.weights, {n: m for n in means if (m := obs.channel_mean(n)) is not None})
        model2 = bias.model
        seconds["bias_correction"] = time.perf_counter() - t
        stages.append(Stage("+ bias correction", model2, dict(start), unsigned=unsigned))
    amax, search = dict(start), None
    subset = _head(source, options.search_samples, batch) if (options.range_search or options.target_sqnr_db
                                                                or options.max_fp16_macs) else source
    if options.range_search:
        keep = {o.name for o in model1.graph.output}  # clipping logits flips argmax for confident samples
        search = search_ranges(model1, model2, plan, start, subset, batch, unsigned, keep)
        amax = search.amax
        seconds["range_search"] = search.seconds
        stages.append(Stage("+ range search", model2, dict(amax), unsigned=unsigned))
    seconds["calibration_total"] = time.perf_counter() - began
    mixed = None
    final_plan = plan
    if options.target_sqnr_db is not None or options.max_fp16_macs:
        loaded2 = load_model(model2)
        mixed = select_fp16(loaded2, model1, model2, plan, amax, subset, batch, options.target_sqnr_db,
                            options.max_fp16_macs, unsigned, progress=options.progress, runner=options.trial_runner)
        seconds["mixed_precision"] = mixed.seconds
        if options.timings and mixed.fp16_units:
            mixed.timing_note = attach_times(loaded2, mixed.fp16_units, options.release, options.platform)
        final_plan = build_plan(loaded2.graph, set(mixed.fp16_nodes), off_dla=off_dla)
        amax = {k: v for k, v in amax.items() if k in set(final_plan.tensors)}
        model2 = restore_biases(model2, model1, set(mixed.fp16_nodes))
        stages.append(Stage("+ mixed precision", model2, dict(amax), mixed.fp16_nodes, unsigned & set(amax)))
    budget = None
    if options.noise_budget:
        fp16 = set(mixed.fp16_nodes) if mixed else set()
        budget = noise_budget(load_model(model2), model1, model2, final_plan, amax, subset, batch, fp16,
                              unsigned & set(amax), model1, progress=options.progress, runner=options.trial_runner)
        seconds["noise_budget"] = budget.seconds
    seconds["total"] = time.perf_counter() - began
    raw_final = {k: v for k, v in raw.items() if k in amax}
    return Recovery(original, model2, final_plan, raw_final, amax, costs, unsigned & set(amax), never_negative,
                    stages, equalized, verification, relu6_effect, bias, search, mixed, obs, seconds, notes,
                    budget)
