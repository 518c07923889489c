"""Helpers to prove a rule on a small graph: build a one-op model, fix it, compare with ONNX Runtime.

Used by dlakit's own rule tests and meant for anyone adding a rule: a rule is done when it applies on a grid of
shapes and attributes with outputs equal to the original's, and refuses the cases it cannot do with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from dlakit.model import load_model
from dlakit.rewrite.fix import FixOptions, FixResult, fix_model
from dlakit.rewrite.verify import Verification, random_inputs, verify

OPSET = 17


@dataclass
class RuleRun:
    result: FixResult
    verification: Verification | None

    @property
    def applied(self) -> list[str]:
        return [a.rule for a in self.result.applied]

    @property
    def reasons(self) -> list[str]:
        return [r.reason for r in self.result.refused]

    @property
    def ops(self) -> list[str]:
        return [n.op_type for n in self.result.proto().graph.node]


def one_op_model(op: str, inputs: Mapping[str, tuple[Sequence[int], Any]],
                 constants: Mapping[str, np.ndarray] | None = None, order: Sequence[str] | None = None,
                 opset: int = OPSET, outputs: int = 1, **attributes: Any) -> onnx.ModelProto:
    """A model with one ``op`` node; ``inputs`` are graph inputs (shape, numpy dtype), ``constants`` initializers.

    ``order`` names the node's inputs in position ('' for an omitted optional input); by default inputs then
    constants.
    """
    constants = dict(constants or {})
    names = list(order) if order is not None else [*inputs, *constants]
    out_names = [f"y{i}" if outputs > 1 else "y" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, name=f"the_{op.lower()}", **attributes)
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(t)), list(s))
                    for n, (s, t) in inputs.items()]
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_empty_tensor_value_info(n) for n in out_names],
                              [onnx.numpy_helper.from_array(np.asarray(a), n) for n, a in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def run_rules(model: onnx.ModelProto, rules: Sequence[str] | None = None, tolerance: float = 1e-5,
              feeds: Mapping[str, np.ndarray] | None = None, **options: Any) -> RuleRun:
    """Fix ``model`` with ``rules`` (default all) and verify the rewritten model against the original."""
    loaded = load_model(model)
    result = fix_model(loaded, FixOptions(rules=list(rules) if rules is not None else None, **options))
    inputs = dict(feeds) if feeds is not None else random_inputs(loaded)
    return RuleRun(result, verify(loaded, result.proto(), inputs, tolerance))
