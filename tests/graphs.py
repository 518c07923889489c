"""Small ONNX graphs built in tests, so each rule is tested at, inside and outside its limits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from dlakit.check import check_model
from dlakit.model import load_model
from dlakit.targets import resolve_target

OPSET = 17


def make_model(nodes, inputs, outputs, initializers=(), opset: int = OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def tensor(name: str, shape: Sequence[int | str | None], dtype: int = TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, None if shape is None else list(shape))


def const(name: str, array) -> TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def weights(name: str, shape: Sequence[int], seed: int = 0) -> TensorProto:
    return const(name, np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.1)


def conv_model(c: int = 16, k: int = 16, hw: tuple[int, int] = (32, 32), kernel=(3, 3), n: int = 1, **attrs):
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=list(kernel), **attrs)
    return make_model([node], [tensor("x", [n, c, *hw])], [tensor("y", None)],
                      [weights("w", [k, c // attrs.get("group", 1), *kernel])])


def unary_model(op: str, shape=(1, 8, 16, 16), **attrs):
    return make_model([helper.make_node(op, ["x"], ["y"], name="node", **attrs)], [tensor("x", shape)],
                      [tensor("y", None)])


def binary_model(op: str, a=(1, 8, 16, 16), b=(1, 8, 16, 16), dtype=TensorProto.FLOAT):
    return make_model([helper.make_node(op, ["a", "b"], ["y"], name="node")],
                      [tensor("a", a, dtype), tensor("b", b, dtype)], [tensor("y", None)])


def place(model: onnx.ModelProto, node: str | None = None, platform=None, release=None, precision="int8",
          shapes=None):
    """Check ``model`` and return the placement of ``node`` (default: the first computing node) and the report."""
    report = check_model(load_model(model, shapes), resolve_target(platform, release), precision)
    if node is None:
        found = next(n for n in report.nodes if n.placement != "folded")
    else:
        found = next(n for n in report.nodes if n.name == node)
    return found, report


def rules_of(placement) -> set[str]:
    return {r.rule for r in placement.reasons}
