"""Prove a rewrite: run the original and the rewritten model with ONNX Runtime on the same inputs and compare.

An output passes when ``max|rewritten − original| ≤ tolerance · max(1, max|original|)``: relative to the output's
own range, so logits in the thousands and probabilities in [0, 1] are judged alike, and absolute near zero. Outputs
of a cut graph are compared against the same-named tensors of the original, which are added as extra outputs to a
copy of it. Positions where both models give the same inf or both give NaN agree; a NaN or inf on one side only is
an infinite error. FP16 outputs are judged with a tolerance of at least :data:`FP16_TOLERANCE`: rewritten graphs
sum in another order, which moves FP16's last bit.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_ir as ir

from dlakit.choices import DEFAULT_TOLERANCE
from dlakit.data.opdata import op_data
from dlakit.errors import DlakitError, numpy_file_problem
from dlakit.model import LoadedModel, static_dims

#: Before IR version 4 every initializer had to be a graph input too; dlakit's loader drops those inputs (TensorRT
#: treats them as weights), so models are written with at least this IR version.
MIN_IR_VERSION = 4
#: FP16 outputs are judged with at least this tolerance (a few units in FP16's last place)
FP16_TOLERANCE = 4e-3
SEED = 0


@dataclass
class OutputCheck:
    name: str
    shape: list[int]
    max_abs: float
    max_rel: float
    passed: bool
    problem: str | None = None


@dataclass
class Verification:
    tolerance: float
    inputs: str
    outputs: list[OutputCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def worst(self) -> OutputCheck | None:
        return max(self.outputs, key=lambda o: o.max_rel, default=None)


def random_inputs(loaded: LoadedModel, seed: int = SEED) -> dict[str, np.ndarray]:
    """Inputs with realistic ranges: floats in [−1, 1] (normalised images/features), 0/1 bools, small ints."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for value in loaded.graph.inputs:
        shape = static_dims(value) or ()
        dtype = value.dtype.numpy() if value.dtype is not None else np.dtype(np.float32)
        if dtype == np.bool_:
            feeds[value.name] = rng.integers(0, 2, size=shape).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            feeds[value.name] = rng.integers(0, 4, size=shape).astype(dtype)
        else:
            feeds[value.name] = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    return feeds


def load_inputs(path: str | os.PathLike[str], loaded: LoadedModel) -> dict[str, np.ndarray]:
    """Inputs from an .npz whose keys are the model's input names; every input must be there with its shape."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DlakitError(f"--inputs: cannot read {path} as .npz ({numpy_file_problem(exc)}); save it with "
                          "numpy.savez") from exc
    feeds = {}
    for value in loaded.graph.inputs:
        if value.name not in data:
            raise DlakitError(f"--inputs: {path} has no array '{value.name}' (it has: {', '.join(sorted(data))})")
        array = data[value.name]
        want = static_dims(value)
        if want is not None and tuple(array.shape) != want:
            raise DlakitError(f"--inputs: '{value.name}' in {path} has shape {list(array.shape)}, the model "
                              f"expects {list(want)}")
        dtype = value.dtype.numpy() if value.dtype is not None else array.dtype
        if array.dtype.kind not in "biuf" and array.dtype != dtype:  # strings, complex: no numeric conversion
            raise DlakitError(f"--inputs: '{value.name}' in {path} has dtype {array.dtype}, the model expects "
                              f"{np.dtype(dtype)}")
        feeds[value.name] = array.astype(dtype)
    return feeds


def run(proto: onnx.ModelProto, feeds: Mapping[str, np.ndarray], role: str = "model") -> dict[str, np.ndarray]:
    """Run a model with ONNX Runtime (CPU, no graph optimisation: we verify our graph, not ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        advice = ("use --skip-rules to find the rule responsible" if role == "rewritten model" else
                  "the input model itself is invalid for ONNX Runtime; fix or re-export it")
        raise DlakitError(f"ONNX Runtime cannot load the {role} for verification ({_first_line(exc)}); "
                          f"{advice}") from exc
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    try:
        results = session.run(outputs, {n: feeds[n] for n in names})
    except Exception as exc:  # ORT's own error classes are not importable portably
        raise DlakitError(f"ONNX Runtime fails running the {role} on the verification inputs ({_first_line(exc)}); "
                          "pass inputs in the model's valid range with --inputs FILE.npz") from exc
    return dict(zip(outputs, results, strict=True))


def with_outputs(loaded: LoadedModel, names: list[str]) -> onnx.ModelProto:
    """A proto of ``loaded`` whose outputs are the named tensors (for comparing a cut graph with its original)."""
    values = {v.name: v for v in loaded.graph.inputs}
    for node in loaded.graph:
        values.update({out.name: out for out in node.outputs})
    values.update(loaded.graph.initializers)
    missing = [n for n in names if n not in values]
    if missing:
        raise DlakitError(f"verification: output '{missing[0]}' of the rewritten model has no counterpart in the "
                          "original; rewrites must keep output names")
    proto = ir.serde.serialize_model(loaded.model)
    del proto.graph.output[:]
    proto.graph.output.extend(ir.serde.serialize_value(values[n]) for n in names)
    proto.ir_version = max(proto.ir_version, MIN_IR_VERSION)
    return proto


def compare(actual: np.ndarray, expected: np.ndarray, tolerance: float, name: str = "") -> OutputCheck:
    actual, expected = np.asarray(actual), np.asarray(expected)
    shape = list(expected.shape)
    if actual.shape != expected.shape:
        return OutputCheck(name, shape, float("inf"), float("inf"), False,
                           f"shape {list(actual.shape)} instead of {shape}")
    if not (np.issubdtype(expected.dtype, np.number) or expected.dtype == np.bool_):  # strings, objects: exact
        equal = actual.dtype == expected.dtype and bool(np.array_equal(actual, expected))
        return OutputCheck(name, shape, 0.0 if equal else float("inf"), 0.0 if equal else float("inf"), equal,
                           None if equal else "values differ")
    a = actual.astype(np.float64)
    b = expected.astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(same, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    max_abs = float(diff.max()) if diff.size else 0.0
    finite = np.abs(b[np.isfinite(b)])
    scale = float(finite.max()) if finite.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    if expected.dtype == np.float16:  # FP16 has 11 significant bits: any change of op order moves the last one
        tolerance = max(tolerance, FP16_TOLERANCE)
    passed = max_abs <= tolerance * max(1.0, scale)
    if actual.dtype != expected.dtype and not (np.issubdtype(actual.dtype, np.floating)
                                               and np.issubdtype(expected.dtype, np.floating)):
        return OutputCheck(name, shape, max_abs, max_rel, False, f"type {actual.dtype} instead of {expected.dtype}")
    return OutputCheck(name, shape, max_abs, max_rel, passed)


#: ops whose outputs are selections (indices, counts): a last-bit change of a score can reorder or swap them, so
#: they are judged by their continuous inputs (NMS: boxes and scores; TopK/ArgMax/ArgMin: the data)
DISCRETE_OPS = op_data().selection_inputs  # data/ops.toml [onnx.selection_inputs]


def _discrete_inputs(proto: onnx.ModelProto, name: str) -> list[str]:
    """The continuous inputs of the selection op that produces ``name`` (TopK's values are not a selection)."""
    node = next((n for n in proto.graph.node if name in n.output), None)
    if node is None or node.op_type not in DISCRETE_OPS or (node.op_type == "TopK" and name == node.output[0]):
        return []
    return [i for i in node.input[:DISCRETE_OPS[node.op_type]] if i]


def verify(original: LoadedModel, rewritten: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
           tolerance: float = DEFAULT_TOLERANCE, inputs_label: str = f"random, seed {SEED}") -> Verification:
    """Compare every output of ``rewritten`` with the same-named tensor of ``original``.

    A selection output (NMS indices, TopK/ArgMax indices) that differs passes when the continuous tensors it
    selects from agree: near-ties among random-weight scores reorder indices on a last-bit change."""
    names = [o.name for o in rewritten.graph.output]
    known = {v.name for v in original.graph.inputs} | set(original.graph.initializers)
    known.update(out.name for node in original.graph for out in node.outputs)
    sources = {n: [s for s in _discrete_inputs(rewritten, n) if s in known] for n in names}
    extra = [s for n in names for s in sources[n] if s not in names]
    extra = list(dict.fromkeys(extra))
    reference = run(with_outputs(original, names + extra), feeds, "original model")
    probe = onnx.ModelProto()
    probe.CopyFrom(rewritten)
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in extra)
    candidate = run(probe, feeds, "rewritten model")
    result = Verification(tolerance=tolerance, inputs=inputs_label)
    for name in names:
        check = compare(candidate[name], reference[name], tolerance, name)
        if not check.passed and sources[name] and all(
                compare(candidate[s], reference[s], tolerance, s).passed for s in sources[name]):
            check.passed = True
            check.problem = f"selection output; its inputs {', '.join(sources[name])} agree"
        result.outputs.append(check)
    return result


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
