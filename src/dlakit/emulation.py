"""The library side of ``dlakit emulate``, ``eval`` and ``qdq-translate``: a model's DLA INT8 emulation from a
calibration cache or its own Q/DQ nodes, and the translation between Q/DQ models and calibration caches.

Each takes the target's placement from one :class:`dlakit.analysis.Analysis` of the model it emulates. A layer above
``quantize`` and ``recover`` (a UINT8 Q/DQ model, written by ``recover --allow-uint8``, is emulated on its grid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from dlakit.analysis import Analysis
from dlakit.atomic import write_with
from dlakit.errors import DlakitError
from dlakit.model import LoadedModel, load_model
from dlakit.quantize.cache import check_cache_used, read_cache
from dlakit.quantize.emulate import Emulation, emulation_from_scales
from dlakit.quantize.outputs import write_outputs
from dlakit.quantize.qdq import translate_qdq
from dlakit.quantize.runtime import to_proto, upgrade_for_qdq
from dlakit.recover.ranges import make_unsigned
from dlakit.sources import open_model
from dlakit.targets import Target
from dlakit.vocab import Precision

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def emulation_of(model: str, shapes: str | None, calib_cache: str | None, qdq: bool, target: Target,
                 rounding: str = "even") -> tuple[LoadedModel, Emulation]:
    """The model (Q/DQ removed) and its emulation, with ``dlakit check``'s placement for ``target``."""
    if (calib_cache is None) == (not qdq):
        raise DlakitError("give exactly one of --calib-cache FILE (model + cache) or --qdq (MODEL is a Q/DQ model)")
    loaded = open_model(model, shapes)
    unsigned: set[str] = set()
    if qdq:
        translation = translate_qdq(to_proto(loaded))
        if not translation.scales:
            raise DlakitError(f"{model}: --qdq given but the model has no QuantizeLinear→DequantizeLinear pairs")
        loaded = load_model(translation.model)
        loaded.source = model
        scales, unsigned = translation.scales, translation.unsigned
    else:
        scales = read_cache(calib_cache).scales  # type: ignore[arg-type]
    loaded = upgrade_for_qdq(loaded)
    off_dla = Analysis.of(loaded, target, Precision.INT8).off_dla
    emulation = emulation_from_scales(loaded, scales, rounding=rounding, off_dla=off_dla)
    if calib_cache is not None:
        check_cache_used(calib_cache, model, scales, emulation.ignored_scales, len(emulation.plan.observed))
    if unsigned:  # UINT8 Q/DQ (dlakit recover --allow-uint8): emulate the 255-level grid it was written for
        emu = emulation.emulated
        make_unsigned(emu.model, emu.compare_names, unsigned & set(emu.scales), emulation.amax)
    return loaded, emulation


def cache_to_qdq(model: str, shapes: str | None, calib_cache: str, output: str, target: Target) -> dict[str, Any]:
    """``qdq-translate --calib-cache``: MODEL (without Q/DQ) + cache → Q/DQ model and the quantize files."""
    loaded = upgrade_for_qdq(open_model(model, shapes))
    if any(node.op_type in QDQ_OPS for node in loaded.graph):
        raise DlakitError(f"{model} already has Q/DQ nodes; translate it without --calib-cache, or give the "
                          "model without Q/DQ")
    target_cache = Path(output) / f"{Path(loaded.source).stem or 'model'}.cache"
    if target_cache.exists() and target_cache.resolve() == Path(calib_cache).resolve():
        raise DlakitError(f"-o {output}: would overwrite the input cache {calib_cache}; choose another folder")
    cache = read_cache(calib_cache)
    analysis = Analysis.of(loaded, target, Precision.INT8)
    emulation = emulation_from_scales(loaded, cache.scales, off_dla=analysis.off_dla)
    check_cache_used(calib_cache, model, cache.scales, emulation.ignored_scales, len(emulation.plan.observed))
    info = {"model": loaded.source, "direction": "cache -> qdq", "calib_cache": calib_cache,
            "ignored_cache_entries": emulation.ignored_scales}
    given = {name: scale * 127 for name, scale in cache.scales.items()}
    written = write_outputs(output, loaded, emulation.model, emulation.plan, given, emulation.amax, [], target, info,
                            placement=analysis.placement)
    return written.summary


def qdq_to_cache(model: str, shapes: str | None, output: str, target: Target, rtol: float = 1e-3
                 ) -> dict[str, Any]:
    """``qdq-translate``: Q/DQ model → model without Q/DQ + calibration cache + scales JSON + FP16 layer list,
    checking weight scales against TensorRT's per-channel max|W|/127 rule."""
    loaded_qdq = open_model(model, shapes)
    translation = translate_qdq(to_proto(loaded_qdq), rtol)
    if not translation.scales:
        raise DlakitError(f"{model}: no QuantizeLinear→DequantizeLinear pairs to translate; for a model without "
                          "Q/DQ give --calib-cache CACHE to build its Q/DQ model")
    stem = Path(loaded_qdq.source).stem
    plain = Path(output) / f"{stem}_noqdq.onnx"
    write_with(plain, lambda tmp: onnx.save(translation.model, str(tmp)))
    loaded = load_model(translation.model)  # not from `plain`: it is renamed into place only at the end
    loaded.source = str(plain)
    analysis = Analysis.of(loaded, target, Precision.INT8)
    emulation = emulation_from_scales(loaded, translation.scales, off_dla=analysis.off_dla)
    info = {"model": loaded_qdq.source, "direction": "qdq -> cache", "model_without_qdq": str(plain),
            "weights_checked": translation.weights_checked,
            "weight_scale_mismatches": [m.as_dict() for m in translation.mismatches]}
    scaled = {n: s * 127 for n, s in translation.scales.items()}
    written = write_outputs(output, loaded, emulation.model, emulation.plan, scaled, emulation.amax, [],
                            target, info, write_qdq=False, placement=analysis.placement)
    summary = written.summary
    summary["files"] = {"model_without_qdq": str(plain), **summary["files"]}  # every file written, listed
    # the plan has every DLA INT8 tensor; layers none of whose tensors got a scale stay FP16
    summary["unscaled_tensors"] = [n for n in emulation.plan.tensors if n not in emulation.amax]
    return summary
