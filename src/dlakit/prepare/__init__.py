"""``dlakit prepare``: recognise a reference network by structure, apply its recipe, prove and write the result.

Python API::

    from dlakit.prepare import prepare_model

    result = prepare_model("ssd_resnet34.onnx", "ssd_resnet34.dla.onnx")   # or a zoo name: "ssd-resnet34"
    result.recognition.network, result.verification.passed, result.check_after["fully_on_dla"]

The input is never modified; the output is written atomically and only when every prepared output equals the
original model's tensors at its cut point (ONNX Runtime, random inputs with a fixed seed or the user's .npz).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnx_ir as ir

from dlakit.choices import NETWORK_CHOICES
from dlakit.errors import DlakitError
from dlakit.model import LoadedModel, load_model, parse_shapes
from dlakit.model.loader import read_model_proto
from dlakit.prepare.precut import TailCut, drop_control_flow_tail
from dlakit.prepare.recipes import RECIPES, Recipe, Step, apply_recipe
from dlakit.prepare.recognise import GENERIC, Recognition, recognise
from dlakit.prepare.structure import Structure, analyse
from dlakit.prepare.verification import verify_cut_points
from dlakit.rewrite import DEFAULT_TOLERANCE, Verification, load_inputs, random_inputs
from dlakit.sources import open_model, save_model
from dlakit.vocab import Precision

if TYPE_CHECKING:
    from dlakit.check import CheckReport
    from dlakit.targets import Target

__all__ = ["NETWORK_CHOICES", "RECIPES", "PrepareResult", "Recipe", "Recognition", "prepare_model", "save_prepared"]

ModelSource = str | os.PathLike[str] | onnx.ModelProto | LoadedModel


@dataclass
class PrepareResult:
    source: str
    recognition: Recognition
    recipe: Recipe
    steps: list[Step]
    proto: onnx.ModelProto
    model: LoadedModel
    sources: dict[str, list[str]]
    verification: Verification
    ops_before: Counter[str]
    ops_after: Counter[str]
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    check_before: dict[str, Any] | None = None
    check_after: dict[str, Any] | None = None
    target: Target | None = None
    output: str | None = None
    written: bool = False

    def as_dict(self) -> dict[str, Any]:
        ver = self.verification
        return {
            "model": self.source,
            "output": self.output,
            "written": self.written,
            "recognition": self.recognition.as_dict(),
            "recipe": {"name": self.recipe.name, "summary": self.recipe.summary},
            "steps": [{"step": s.name, "count": s.count, "detail": s.detail} for s in self.steps],
            "refused": [{"rule": r, "node": n, "reason": why} for r, n, why in self.refused],
            "nodes": {"before": sum(self.ops_before.values()), "after": sum(self.ops_after.values())},
            "ops": {"before": dict(self.ops_before), "after": dict(self.ops_after)},
            "outputs": [{"name": o.name, "equals": self.sources.get(o.name, [o.name])}
                        for o in self.proto.graph.output],
            "verification": {
                "passed": ver.passed, "tolerance": ver.tolerance, "inputs": ver.inputs,
                "outputs": [{"name": o.name, "shape": o.shape, "max_abs": o.max_abs, "max_rel": o.max_rel,
                             "passed": o.passed, "problem": o.problem} for o in ver.outputs],
            },
            "target": None if self.target is None else {"platform": self.target.platform.key,
                                                        "release": self.target.release.key},
            "check": None if self.check_before is None else {"before": self.check_before, "after": self.check_after},
        }


def _load(model: ModelSource, shapes: str | Mapping[str, tuple[int, ...]] | None
          ) -> tuple[LoadedModel, str, TailCut | None]:
    """A path or proto is loaded (without a control-flow tail, see :mod:`dlakit.prepare.precut`); a zoo name
    (no such file) becomes its *published* form, which is what ``prepare`` turns into the prepared one."""
    if isinstance(model, LoadedModel):
        return model, model.source, None
    parsed = parse_shapes(shapes) if isinstance(shapes, str) or shapes is None else dict(shapes)
    if isinstance(model, onnx.ModelProto):
        proto, label = model, model.graph.name or "<model>"
    else:
        label = os.fspath(model)
        if not Path(label).exists():
            from dlakit import zoo

            if zoo.is_zoo_name(label):
                return open_model(label, parsed, form="published"), label, None
        proto = read_model_proto(label)
    proto, tail = drop_control_flow_tail(proto, label)
    loaded = load_model(proto, parsed, label=label)
    loaded.source = label
    return loaded, label, tail


def _require_parts(recognition: Recognition, recipe: Recipe, structure: Structure) -> None:
    """A network forced with --network must still have what its recipe cuts at."""
    if recipe.cut == "heads" and not structure.heads:
        raise DlakitError(f"--network {recognition.network}: no head layers (last convolutions or linear layer "
                          "before post-processing) found to cut at; use --network auto or generic")
    if recipe.classifier_head and structure.classifier_pool is None:
        raise DlakitError(f"--network {recognition.network}: no global-pool + linear classifier found; use "
                          "--network auto or generic")


def _check(loaded: LoadedModel, target: Target, precision: str, placement: CheckReport | None = None
           ) -> dict[str, Any]:
    """check's summary of ``loaded`` with its DLA node share (``placement``: one already made for it)."""
    from dlakit.analysis import Analysis

    summary = dict(Analysis.of(loaded, target, precision, placement).placement.summary)
    placed = summary["dla_nodes"] + summary["gpu_nodes"] + summary["fixable_nodes"]
    summary["dla_node_fraction"] = round(summary["dla_nodes"] / placed, 6) if placed else 0.0
    return summary


def save_prepared(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Write atomically (temp file + rename); weights go to ``<name>.data`` beyond protobuf's 2 GiB."""
    save_model(proto, path)


def prepare_model(model: ModelSource, output: str | os.PathLike[str] | None = None, *, network: str = "auto",
                  shapes: str | Mapping[str, tuple[int, ...]] | None = None, platform: str | None = None,
                  release: str | None = None, precision: str = Precision.INT8,
                  inputs: str | os.PathLike[str] | Mapping[str, np.ndarray] | None = None,
                  tolerance: float = DEFAULT_TOLERANCE, seed: int = 0, check: bool = True) -> PrepareResult:
    """Recognise, apply the recipe, verify; write ``output`` only when verification passes (else raise)."""
    if network not in NETWORK_CHOICES:
        raise DlakitError(f"--network: '{network}' is not one of {', '.join(NETWORK_CHOICES)}")
    if not 0 < tolerance < float("inf"):
        raise DlakitError(f"--tolerance must be positive, not {tolerance}")
    if output is not None and not isinstance(model, (onnx.ModelProto, LoadedModel)) and Path(model).exists() \
            and Path(output).resolve() == Path(model).resolve():
        raise DlakitError(f"-o {output}: refusing to overwrite the input model; write to another file")
    from dlakit.targets import resolve_target

    target = resolve_target(platform, release)
    loaded, label, tail = _load(model, shapes)
    structure = analyse(loaded.graph)
    recognition = recognise(structure, network)
    recipe = RECIPES[recognition.network if recognition.network in RECIPES else GENERIC]
    _require_parts(recognition, recipe, structure)
    applied = apply_recipe(recipe, loaded, structure, target)
    if tail is not None:
        applied.steps.insert(0, Step("drop-control-flow-tail", tail.detail, len(tail.removed)))
    proto = ir.serde.serialize_model(applied.model.model)
    if isinstance(inputs, Mapping):
        feeds, feeds_label = dict(inputs), "given arrays"
    elif inputs is not None:
        feeds, feeds_label = load_inputs(inputs, loaded), str(inputs)
    else:
        feeds, feeds_label = random_inputs(loaded, seed), f"random, seed {seed}"
    verification = verify_cut_points(loaded, proto, applied.sources, feeds, tolerance, feeds_label)
    result = PrepareResult(
        source=label, recognition=recognition, recipe=recipe, steps=applied.steps, proto=proto,
        model=applied.model, sources=applied.sources, verification=verification,
        ops_before=Counter(n.op_type for n in loaded.graph) + Counter(op for _, op in (tail.removed if tail else [])),
        ops_after=Counter(n.op_type for n in proto.graph.node),
        refused=applied.refused, target=target, output=None if output is None else os.fspath(output))
    if check:
        result.check_before = _check(loaded, target, precision)
        result.check_after = _check(applied.model, target, precision, applied.placement)
    if output is not None:
        if not verification.passed:
            raise DlakitError(f"verification failed: {failure(verification)}; {output} not written")
        save_prepared(proto, output)
        result.written = True
    return result


def failure(verification: Verification) -> str:
    """One line on the worst output, for refusals."""
    worst = verification.worst
    if worst is None:
        return "no outputs to compare"
    detail = worst.problem or f"differs by {worst.max_abs:.3g} (relative {worst.max_rel:.3g})"
    return f"output '{worst.name}' {detail}, beyond --tolerance {verification.tolerance:g}"
