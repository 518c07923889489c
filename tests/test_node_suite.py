"""Peer suite: the ONNX backend node tests (onnx==1.22.0) of every op dlakit rewrites, through ``fix``.

Each test's model goes through :func:`dlakit.rewrite.fix_model`; the rewritten model is run with ONNX Runtime on the
test's shipped inputs and compared with the test's *shipped* expected outputs (not with ONNX Runtime's). Our rules
only rewrite ops with constant indices/conditions/weights, so inputs that play that role (integer inputs after the
first, Where's condition, MatMul/Gemm and recurrent weights) are frozen into initializers from the test data first;
everything else stays a graph input. Tests on sequences or optionals (Identity of a sequence) are outside DLA's
tensor world and left out. Every applicable test must pass; every other one must be refused with a reason.

``python -m tests.test_node_suite`` prints the table: op, tests, applicable, rewritten, passed.
"""

from __future__ import annotations

import collections
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest

from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.rewrite import ALL_RULES, RULES, fix_model
from dlakit.rewrite.verify import compare, run
from tests.assets import ONNX_TEST_DATA, asset_path

#: Rules that optimise rather than reconstruct: their anchors (Conv, Add, Reshape...) are mostly fine as they are.
OPTIMISATION_RULES = {"fold-pad-into-conv", "fold-mul-add-into-conv", "fold-mul-add-before-conv", "lift-to-4d",
                      "reshape-merge", "transpose-through-elementwise", "transpose-merge", "cast-removal"}
#: (Add is matmul-to-conv's anchor only for a MatMul bias; on its own it is a lift-to-4d op.)
OPS = {op for rule in ALL_RULES if rule.id not in OPTIMISATION_RULES for op in rule.ops} - {"Add"}
#: lift-to-4d is checked on the tests of its ops whose float tensors all have rank 1-3 (the ones it must lift)
LIFT_OPS = set(RULES["lift-to-4d"].ops) - OPS
#: inputs (by position) that a rule needs constant; other ops: integer inputs after the first (indices, axes)
FREEZE = {"Where": {0}, "MatMul": {1}, "Gemm": {1, 2},
          "GRU": {1, 2, 3, 4}, "RNN": {1, 2, 3, 4}, "LSTM": {1, 2, 3, 4, 7}}
TOLERANCE = 1e-4


def _node_dir() -> Path | None:
    return asset_path("onnx==1.22.0", f"{ONNX_TEST_DATA}/node")


def suite_cases() -> list[Path]:
    root = _node_dir()
    if root is None:
        return []
    cases = []
    for case in sorted(root.iterdir()):
        model = onnx.load(str(case / "model.onnx"), load_external_data=False)
        values = [*model.graph.input, *model.graph.output]
        if len(model.graph.node) != 1 or not all(v.type.HasField("tensor_type") for v in values):
            continue
        op = model.graph.node[0].op_type
        if op in OPS or (op in LIFT_OPS and all(_low_rank_float(v) for v in values)):
            cases.append(case)
    return cases


def _low_rank_float(value: onnx.ValueInfoProto) -> bool:
    tensor = value.type.tensor_type
    return tensor.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and 1 <= len(tensor.shape.dim) <= 3


@dataclass
class CaseResult:
    name: str
    op: str
    applicable: bool
    rewritten: bool
    passed: bool
    detail: str


def _tensors(case: Path, prefix: str) -> list[np.ndarray]:
    files = sorted((case / "test_data_set_0").glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    return [onnx.numpy_helper.to_array(onnx.load_tensor(str(p))) for p in files]


def _freeze(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    node = model.graph.node[0]
    frozen = set()
    for position, name in enumerate(node.input):
        if not name or name not in feeds:
            continue
        array = feeds[name]
        if node.op_type in FREEZE:
            wanted = position in FREEZE[node.op_type]
        else:
            wanted = position > 0 and np.issubdtype(array.dtype, np.integer)
        if wanted:
            frozen.add(name)
    for name in frozen:
        model.graph.initializer.append(onnx.numpy_helper.from_array(feeds.pop(name), name))
    keep = [i for i in model.graph.input if i.name not in frozen]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def run_case(case: Path) -> CaseResult:
    model = onnx.load(str(case / "model.onnx"))
    op = model.graph.node[0].op_type
    inputs = _tensors(case, "input")
    expected = _tensors(case, "output")
    feeds = {i.name: a for i, a in zip(model.graph.input, inputs, strict=False)}
    _freeze(model, feeds)
    try:
        loaded = load_model(model)
    except DlakitError as exc:
        return CaseResult(case.name, op, False, False, False, f"refused at load: {exc}")
    result = fix_model(loaded)
    applied = [a for a in result.applied if a.op == op]
    if not applied:
        reasons = [r.reason for r in result.refused if r.op == op]
        if not reasons:
            # no rule is concerned: fine when check already says why (DLA as is, or GPU for a reason no rule
            # claims to fix, e.g. a dilated pool); a 'fixable' verdict must be kept by fix applying or refusing
            verdict = _check_verdict(loaded)
            if verdict:
                return CaseResult(case.name, op, False, False, True, f"refused: nothing to rewrite ({verdict})")
            return CaseResult(case.name, op, False, False, False, "neither rewritten nor refused with a reason")
        return CaseResult(case.name, op, False, False, True, f"refused: {reasons[0]}")
    proto = result.proto()
    original = model.graph.node[0].name or applied[0].node
    rewritten = all(n.name != original for n in proto.graph.node)
    outputs = run(proto, feeds)
    problems = []
    for out, want in zip(proto.graph.output, expected, strict=True):
        check = compare(outputs[out.name], want, TOLERANCE, out.name)
        if not check.passed:
            problems.append(f"{out.name}: {check.problem or f'max abs error {check.max_abs:.3g}'}")
    return CaseResult(case.name, op, True, rewritten, not problems, "; ".join(problems) or "equal")


def _check_verdict(loaded) -> str | None:
    """What ``check`` says of the model's node when no rule is concerned with it; None for 'fixable'."""
    from dlakit.check import DLA, GPU, check_model
    from dlakit.targets import resolve_target

    node = check_model(loaded, resolve_target(None, None)).nodes[0]
    if node.placement == DLA:
        return "runs on DLA"
    if node.placement == GPU and node.reasons:
        return f"check: {node.reasons[0].rule}"
    return None


CASES = suite_cases()


@pytest.mark.skipif(not CASES, reason="onnx==1.22.0 node tests are not available (no network?)")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case: Path) -> None:
    result = run_case(case)
    if result.applicable:
        assert result.rewritten, f"{case.name}: the {result.op} node is still in the rewritten graph"
        assert result.passed, f"{case.name}: {result.detail}"
    else:
        assert result.detail.startswith("refused"), f"{case.name}: {result.detail}"


def table(results: list[CaseResult]) -> str:
    rows = collections.defaultdict(lambda: [0, 0, 0, 0])
    for r in results:
        row = rows[r.op]
        row[0] += 1
        row[1] += r.applicable
        row[2] += r.rewritten
        row[3] += r.applicable and r.passed
    lines = ["| op | tests | applicable | rewritten | passed |", "|---|---|---|---|---|"]
    for op in sorted(rows):
        lines.append(f"| {op} | " + " | ".join(str(v) for v in rows[op]) + " |")
    totals = [sum(row[i] for row in rows.values()) for i in range(4)]
    lines.append("| **total** | " + " | ".join(str(v) for v in totals) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    results = [run_case(case) for case in CASES]
    print(table(results))
    if "-v" in sys.argv:
        for r in results:
            print(f"{r.name}: {'applied' if r.applicable else 'refused'} — {r.detail}")
