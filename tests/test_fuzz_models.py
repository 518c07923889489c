"""Seeded mutation fuzzing of small valid models: load + check + estimate + fix end in success or a DlakitError.

Each case takes one of a few small valid networks and applies 1-3 random mutations (flip or retype an attribute,
change a dimension, delete or rename an input, rename a tensor, swap an op type, truncate the bytes). The seed is
fixed, so a failure names a reproducible case: ``mutate(seed)``.
"""

from __future__ import annotations

import random

import numpy as np
import onnx
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from dlakit.analysis import fix_model
from dlakit.check import check_model
from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.perf import conditions_for, evaluate, prepare
from dlakit.rewrite.fix import FixOptions
from dlakit.targets import resolve_target
from tests import hostile

CASES = 600
OPS = ("Relu", "Sigmoid", "Conv", "MaxPool", "AveragePool", "Add", "Mul", "Concat", "Reshape", "Transpose", "Gather",
       "Resize", "Slice", "Softmax", "Flatten", "BatchNormalization", "Identity", "Pad", "Split", "Frobnicate")
TARGET = resolve_target(None, None)


def _seeds() -> list[onnx.ModelProto]:
    base = hostile.base_model()
    two = hostile.model_of(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=1),
         helper.make_node("Add", ["c", "b"], ["a"], name="add"),
         helper.make_node("Resize", ["a", "", "s"], ["r"], name="resize", mode="nearest"),
         helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[0, 1, 3, 2]),
         helper.make_node("Reshape", ["t", "shape"], ["y"], name="reshape")],
        [hostile.tensor("x", [1, 3, 8, 8])], [hostile.tensor("y", None)],
        [hostile.weight(), numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32), "b"),
         numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s"), hostile.i64("shape", [1, -1])])
    three = hostile.model_of(
        [helper.make_node("AveragePool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Concat", ["p", "p"], ["c"], name="concat", axis=1),
         helper.make_node("Softmax", ["c"], ["s"], name="softmax", axis=1),
         helper.make_node("Slice", ["s", "st", "en", "ax"], ["y"], name="slice")],
        [hostile.tensor("x", [1, 3, 8, 8])], [hostile.tensor("y", None)],
        [hostile.i64("st", [0]), hostile.i64("en", [2]), hostile.i64("ax", [1])])
    return [base, two, three]


SEEDS = _seeds()


def _random_attribute(rng: random.Random, name: str) -> AttributeProto:
    choice = rng.randrange(7)
    if choice == 0:
        return helper.make_attribute(name, [rng.choice([0, 1, 2, 3, -1, 1 << 31]) for _ in range(rng.randrange(5))],
                                     attr_type=AttributeProto.INTS)
    if choice == 1:
        return helper.make_attribute(name, rng.choice([0, -1, 1, 3, 1 << 40]))
    if choice == 2:
        return helper.make_attribute(name, rng.choice([0.5, float("nan"), -2.0]))
    if choice == 3:
        return helper.make_attribute(name, [1.5, 2.0])
    if choice == 4:
        return helper.make_attribute(name, rng.choice(["SAME_UPPER", "bogus", "", "linear"]))
    if choice == 5:
        return helper.make_attribute(name, helper.make_graph([], "sub", [], []))
    return helper.make_attribute(name, numpy_helper.from_array(np.zeros(2, np.float32)))


def _mutate_once(model: onnx.ModelProto, rng: random.Random) -> bytes | None:
    """Mutate ``model`` in place; return bytes instead when the mutation works on the serialized file."""
    graph = model.graph
    nodes = list(graph.node)
    node = rng.choice(nodes) if nodes else None
    kind = rng.randrange(10)
    if kind == 0 and node is not None:  # flip or retype an attribute
        names = [a.name for a in node.attribute] + ["kernel_shape", "strides", "pads", "axis", "group", "perm",
                                                    "mode", "dilations", "auto_pad"]
        name = rng.choice(names)
        for i, attribute in enumerate(node.attribute):
            if attribute.name == name:
                del node.attribute[i]
                break
        if rng.random() < 0.85:
            node.attribute.append(_random_attribute(rng, name))
    elif kind == 1:  # change a dimension of an input, output or weight
        targets = [v.type.tensor_type.shape.dim for v in list(graph.input) + list(graph.output)
                   if v.type.tensor_type.shape.dim]
        value = rng.choice([0, -1, 1, 2, 7, 1 << 31, (1 << 63) - 1])
        if targets and rng.random() < 0.6:
            dims = rng.choice(targets)
            dims[rng.randrange(len(dims))].dim_value = value
        elif graph.initializer:
            tensor = rng.choice(list(graph.initializer))
            if tensor.dims:
                tensor.dims[rng.randrange(len(tensor.dims))] = value
    elif kind == 2 and node is not None and node.input:  # delete an input
        del node.input[rng.randrange(len(node.input))]
    elif kind == 3 and node is not None:  # rename a tensor where it is used or produced (not everywhere)
        field = node.input if (node.input and rng.random() < 0.5) else node.output
        if field:
            field[rng.randrange(len(field))] = rng.choice(["ghost", "x", "y", "", "w", "a\nb\x1b[0m"])
    elif kind == 4 and node is not None:  # swap the op type
        node.op_type = rng.choice(OPS)
    elif kind == 5:  # truncate or corrupt the bytes
        data = bytearray(model.SerializeToString())
        if rng.random() < 0.5:
            return bytes(data[: rng.randrange(len(data))])
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    elif kind == 6 and graph.initializer:  # damage a weight
        tensor = rng.choice(list(graph.initializer))
        tensor.raw_data = tensor.raw_data[: rng.randrange(len(tensor.raw_data) + 1)]
        if rng.random() < 0.3:
            tensor.data_type = rng.choice([0, TensorProto.STRING, TensorProto.INT4, 77])
    elif kind == 7 and nodes:  # reorder, duplicate or drop nodes
        choice = rng.randrange(3)
        if choice == 0:
            rng.shuffle(nodes)
        elif choice == 1:
            nodes.append(nodes[rng.randrange(len(nodes))])
        else:
            nodes.pop(rng.randrange(len(nodes)))
        del graph.node[:]
        graph.node.extend(nodes)
    elif kind == 8:  # versions
        if rng.random() < 0.5:
            model.opset_import[0].version = rng.choice([0, 1, 7, 11, 13, 18, 21, 99])
        else:
            model.ir_version = rng.choice([0, 3, 7, 10, 99])
    elif kind == 9 and graph.input:  # retype an input
        graph.input[0].type.tensor_type.elem_type = rng.choice(
            [TensorProto.BOOL, TensorProto.INT64, TensorProto.STRING, TensorProto.FLOAT16, 0, 99])
    return None


def mutate(seed: int) -> onnx.ModelProto | bytes:
    rng = random.Random(seed)
    model = onnx.ModelProto()
    model.CopyFrom(rng.choice(SEEDS))
    for _ in range(rng.randrange(1, 4)):
        data = _mutate_once(model, rng)
        if data is not None:
            return data
    return model


def _exercise(case: onnx.ModelProto | bytes, tmp_path) -> None:
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(case if isinstance(case, bytes) else case.SerializeToString())
    loaded = load_model(path)
    check_model(loaded, TARGET)
    condition, label = conditions_for(TARGET, None, 1, False, "int8")
    evaluate(prepare(loaded, TARGET, "int8"), condition, label)
    fix_model(loaded, FixOptions(target=TARGET))


@pytest.mark.parametrize("block", range(6))
def test_mutated_models_fail_only_with_dlakit_error(block, tmp_path):
    """100 mutations per block: each ends in success or a one-line DlakitError, never another exception."""
    outcomes = {"ok": 0, "refused": 0}
    for seed in range(block * CASES // 6, (block + 1) * CASES // 6):
        case = mutate(seed)
        try:
            _exercise(case, tmp_path)
            outcomes["ok"] += 1
        except DlakitError as exc:
            assert "\n" not in str(exc) and "\x1b" not in str(exc), (seed, str(exc))
            outcomes["refused"] += 1
        except Exception as exc:  # pragma: no cover - the failure report
            raise AssertionError(f"mutate({seed}) raised {type(exc).__name__}: {exc}") from exc
    assert outcomes["refused"] > 0  # the mutations do reach the error paths
