"""A small, deterministic corpus of hostile and malformed ONNX models, for the robustness tests.

Each case is a function ``(folder) -> path`` that writes one model (and whatever it needs beside it: external data,
a symlink) into ``folder`` and returns the path to hand to a command. Every model is tiny on disk; the "bombs"
declare huge shapes and hold no data, so a tool that allocates from the declared shape is what would blow up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BIG = 1 << 31
Case = Callable[[Path], Path]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES[name] = function
        return function

    return register


def tensor(name: str, shape, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, None if shape is None else list(shape))


def model_of(nodes, inputs, outputs, initializers=(), opset: int | None = OPSET, ir_version: int = 8,
             domains: tuple[tuple[str, int], ...] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "hostile", list(inputs), list(outputs), list(initializers))
    imports = [] if opset is None else [helper.make_opsetid("", opset)]
    imports += [helper.make_opsetid(d, v) for d, v in domains]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = ir_version
    return model


def weight(name: str = "w", shape=(4, 3, 3, 3)) -> TensorProto:
    return numpy_helper.from_array(np.random.default_rng(0).normal(size=shape).astype(np.float32) * 0.1, name)


def base_model() -> onnx.ModelProto:
    """A valid DLA-friendly network: Conv → Relu → MaxPool, input x 1x3x8x8."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    return model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", [1, 4, 4, 4])], [weight()])


def save(model: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> Path:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def write(folder: Path, data: bytes, name: str = "model.onnx") -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def attribute_of(key: str, value) -> onnx.AttributeProto:
    """``helper.make_attribute``, which cannot guess the type of an empty list: make that INTS."""
    if isinstance(value, list) and not value:
        return helper.make_attribute(key, value, attr_type=onnx.AttributeProto.INTS)
    return helper.make_attribute(key, value)


def conv_with(folder: Path, **attrs) -> Path:
    """The base network with the Conv's attributes replaced by ``attrs`` (an attribute set to None is removed)."""
    model = base_model()
    conv = model.graph.node[0]
    for key, value in attrs.items():
        for index, attribute in enumerate(conv.attribute):
            if attribute.name == key:
                del conv.attribute[index]
                break
        if value is not None:
            conv.attribute.append(attribute_of(key, value))
    return save(model, folder)


def single(folder: Path, op: str, inputs: list[str], init=(), shape=(1, 3, 8, 8), ins=None, **attrs) -> Path:
    """One node ``op`` on x (1x3x8x8) and the given constant initializers, output y of unknown shape."""
    node = helper.make_node(op, inputs, ["y"], name=f"{op.lower()}_node")
    node.attribute.extend(attribute_of(key, value) for key, value in attrs.items())
    graph_inputs = ins if ins is not None else [tensor("x", shape)]
    return save(model_of([node], graph_inputs, [tensor("y", None)], list(init)), folder)


def i64(name: str, values) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


# --- bytes that are not an ONNX model ---------------------------------------------------------------------------
@case("bytes.truncated")
def _truncated(folder: Path) -> Path:
    data = base_model().SerializeToString()
    return write(folder, data[: len(data) // 2])


@case("bytes.truncated_tail")
def _truncated_tail(folder: Path) -> Path:
    return write(folder, base_model().SerializeToString()[:-3])


@case("bytes.random")
def _random(folder: Path) -> Path:
    return write(folder, np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())


@case("bytes.empty")
def _empty(folder: Path) -> Path:
    return write(folder, b"")


@case("bytes.text")
def _text(folder: Path) -> Path:
    return write(folder, b"this is not an onnx model\n" * 10)


@case("bytes.tensor_proto")
def _tensor_proto(folder: Path) -> Path:
    return write(folder, weight().SerializeToString())


@case("bytes.graph_proto")
def _graph_proto(folder: Path) -> Path:
    return write(folder, base_model().graph.SerializeToString())


@case("bytes.node_proto")
def _node_proto(folder: Path) -> Path:
    return write(folder, base_model().graph.node[0].SerializeToString())


# --- graph structure --------------------------------------------------------------------------------------------
@case("graph.cycle")
def _cycle(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second"),
             helper.make_node("Relu", ["b"], ["y"], name="third")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)]), folder)


@case("graph.self_loop")
def _self_loop(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "y"], ["y"], name="loop")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)]), folder)


@case("graph.dangling_input")
def _dangling(folder: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)]), folder)


@case("graph.dangling_output")
def _dangling_output(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("nowhere", None)]), folder)


@case("graph.two_producers")
def _two_producers(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="one"), helper.make_node("Sigmoid", ["x"], ["y"], name="two")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)]), folder)


@case("graph.duplicate_outputs")
def _duplicate_outputs(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None), tensor("y", None)]), folder)


@case("graph.duplicate_node_outputs")
def _duplicate_node_outputs(folder: Path) -> Path:
    nodes = [helper.make_node("Split", ["x"], ["y", "y"], name="split", axis=1, num_outputs=2)]
    return save(model_of(nodes, [tensor("x", [1, 4, 8, 8])], [tensor("y", None)], opset=18), folder)


@case("graph.input_is_output_of_node")
def _input_overwritten(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["y"], ["x"], name="relu")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)]), folder)


@case("graph.duplicate_inputs")
def _duplicate_inputs(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8]), tensor("x", [1, 3, 8, 8])], [tensor("y", None)]), folder)


@case("graph.duplicate_initializers")
def _duplicate_initializers(folder: Path) -> Path:
    model = base_model()
    model.graph.initializer.append(weight("w", (2, 3, 3, 3)))
    return save(model, folder)


@case("graph.empty")
def _empty_graph(folder: Path) -> Path:
    return save(model_of([], [], []), folder)


@case("graph.no_outputs")
def _no_outputs(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], []), folder)


@case("graph.no_inputs")
def _no_inputs(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["w"], ["y"], name="relu")]
    return save(model_of(nodes, [], [tensor("y", None)], [weight()]), folder)


@case("graph.input_passthrough")
def _passthrough(folder: Path) -> Path:
    return save(model_of([], [tensor("x", [1, 3, 8, 8])], [tensor("x", [1, 3, 8, 8])]), folder)


@case("graph.empty_op_type")
def _empty_op(folder: Path) -> Path:
    return save(model_of([helper.make_node("", ["x"], ["y"], name="blank")], [tensor("x", [1, 3, 8, 8])],
                         [tensor("y", None)]), folder)


# --- tensors and dims -------------------------------------------------------------------------------------------
@case("tensor.raw_data_short")
def _raw_short(folder: Path) -> Path:
    model = base_model()
    model.graph.initializer[0].raw_data = b"\x00" * 7
    return save(model, folder)


@case("tensor.raw_data_long")
def _raw_long(folder: Path) -> Path:
    model = base_model()
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data + b"\x00" * 16
    return save(model, folder)


@case("tensor.float_data_short")
def _float_short(folder: Path) -> Path:
    model = base_model()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.float_data.extend([1.0, 2.0])
    return save(model, folder)


@case("tensor.huge_declared_no_data")
def _huge_initializer(folder: Path) -> Path:
    model = base_model()
    w = model.graph.initializer[0]
    del w.dims[:]
    w.dims.extend([BIG, 3, 3, 3])
    w.raw_data = b""
    return save(model, folder)


@case("tensor.negative_initializer_dim")
def _neg_init(folder: Path) -> Path:
    model = base_model()
    w = model.graph.initializer[0]
    del w.dims[:]
    w.dims.extend([-4, 3, 3, 3])
    return save(model, folder)


@case("tensor.undefined_dtype")
def _undefined_dtype(folder: Path) -> Path:
    model = base_model()
    model.graph.initializer[0].data_type = 0
    return save(model, folder)


@case("tensor.absurd_dtype")
def _absurd_dtype(folder: Path) -> Path:
    model = base_model()
    model.graph.initializer[0].data_type = 999
    return save(model, folder)


@case("dims.batch_2_31")
def _batch_big(folder: Path) -> Path:
    model = base_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = BIG
    return save(model, folder)


@case("dims.all_2_31")
def _all_big(folder: Path) -> Path:
    model = base_model()
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        dim.dim_value = BIG
    return save(model, folder)


@case("dims.negative")
def _negative(folder: Path) -> Path:
    model = base_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -8
    return save(model, folder)


@case("dims.int64_max")
def _int64_max(folder: Path) -> Path:
    model = base_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = (1 << 63) - 1
    return save(model, folder)


@case("dims.int64_overflow_product")
def _product_overflow(folder: Path) -> Path:
    model = base_model()
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, [1 << 20, 1 << 20, 1 << 20, 1 << 20],
                          strict=True):
        dim.dim_value = value
    return save(model, folder)


@case("dims.rank_100")
def _rank_100(folder: Path) -> Path:
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    return save(model_of([node], [tensor("x", [1] * 100)], [tensor("y", None)]), folder)


@case("dims.zero")
def _zero(folder: Path) -> Path:
    model = base_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 0
    return save(model, folder)


@case("dims.output_declared_huge")
def _output_huge(folder: Path) -> Path:
    model = base_model()
    del model.graph.output[:]
    model.graph.output.append(tensor("y", [BIG, BIG, 4, 4]))
    return save(model, folder)


# --- input types ------------------------------------------------------------------------------------------------
@case("input.string")
def _string_input(folder: Path) -> Path:
    return single(folder, "Identity", ["x"], ins=[tensor("x", [1, 4], TensorProto.STRING)])


@case("input.bool")
def _bool_input(folder: Path) -> Path:
    return single(folder, "Not", ["x"], ins=[tensor("x", [1, 3, 8, 8], TensorProto.BOOL)])


@case("input.sequence")
def _sequence_input(folder: Path) -> Path:
    seq = helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    node = helper.make_node("SequenceAt", ["x", "i"], ["y"], name="at")
    return save(model_of([node], [seq], [tensor("y", None)], [i64("i", 0)]), folder)


@case("input.optional")
def _optional_input(folder: Path) -> Path:
    opt = helper.make_value_info("x", helper.make_optional_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, [1, 3, 8, 8])))
    node = helper.make_node("OptionalGetElement", ["x"], ["y"], name="get")
    return save(model_of([node], [opt], [tensor("y", None)], opset=18), folder)


@case("input.no_type")
def _untyped_input(folder: Path) -> Path:
    return single(folder, "Relu", ["x"], ins=[helper.make_empty_tensor_value_info("x")])


@case("input.float64")
def _double_input(folder: Path) -> Path:
    return single(folder, "Relu", ["x"], ins=[tensor("x", [1, 3, 8, 8], TensorProto.DOUBLE)])


# --- external data ----------------------------------------------------------------------------------------------
def _external(folder: Path, location: str, offset: int | None = None, length: int | None = None) -> Path:
    model = base_model()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entries = {"location": location}
    if offset is not None:
        entries["offset"] = str(offset)
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        w.external_data.add(key=key, value=value)
    return save(model, folder)


def _weight_bytes() -> bytes:
    return weight().raw_data


@case("external.outside_folder")
def _ext_outside(folder: Path) -> Path:
    (folder.parent / f"{folder.name}_secret.bin").write_bytes(_weight_bytes())
    return _external(folder, f"../{folder.name}_secret.bin")


@case("external.absolute")
def _ext_absolute(folder: Path) -> Path:
    target = folder.parent / f"{folder.name}_abs.bin"
    target.write_bytes(_weight_bytes())
    return _external(folder, str(target))


@case("external.symlink")
def _ext_symlink(folder: Path) -> Path:
    target = folder.parent / f"{folder.name}_linked.bin"
    target.write_bytes(_weight_bytes())
    os.symlink(target, folder / "weights.bin")
    return _external(folder, "weights.bin")


@case("external.missing")
def _ext_missing(folder: Path) -> Path:
    return _external(folder, "weights.bin")


@case("external.past_end")
def _ext_past_end(folder: Path) -> Path:
    (folder / "weights.bin").write_bytes(_weight_bytes())
    return _external(folder, "weights.bin", offset=100, length=432)


@case("external.short_file")
def _ext_short(folder: Path) -> Path:
    (folder / "weights.bin").write_bytes(_weight_bytes()[:40])
    return _external(folder, "weights.bin")


@case("external.negative_offset")
def _ext_negative(folder: Path) -> Path:
    (folder / "weights.bin").write_bytes(_weight_bytes())
    return _external(folder, "weights.bin", offset=-16)


@case("external.bad_offset_text")
def _ext_bad_offset(folder: Path) -> Path:
    (folder / "weights.bin").write_bytes(_weight_bytes())
    model = base_model()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="weights.bin")
    w.external_data.add(key="offset", value="twelve")
    return save(model, folder)


@case("external.directory")
def _ext_dir(folder: Path) -> Path:
    (folder / "weights.bin").mkdir()
    return _external(folder, "weights.bin")


@case("external.no_location")
def _ext_no_location(folder: Path) -> Path:
    model = base_model()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    return save(model, folder)


# --- names ------------------------------------------------------------------------------------------------------
def _renamed(folder: Path, name: str) -> Path:
    model = base_model()
    for node in model.graph.node:
        node.name = name + node.name
        node.output[:] = [name + o if o != "y" else o for o in node.output]
        node.input[:] = [name + i if i not in ("x", "w") else i for i in node.input]
    return save(model, folder)


@case("names.newline")
def _newline(folder: Path) -> Path:
    return _renamed(folder, "line1\nline2\r\n")


@case("names.ansi")
def _ansi(folder: Path) -> Path:
    return _renamed(folder, "\x1b[31m\x1b[2J\x1b]0;pwned\x07")


@case("names.long")
def _long(folder: Path) -> Path:
    return _renamed(folder, "n" * 10_000)


@case("names.unicode")
def _unicode(folder: Path) -> Path:
    return _renamed(folder, "卷积\u202e\u200bé🙂")


@case("names.empty_nodes")
def _empty_names(folder: Path) -> Path:
    model = base_model()
    for node in model.graph.node:
        node.name = ""
    return save(model, folder)


@case("names.same_node_names")
def _same_names(folder: Path) -> Path:
    model = base_model()
    for node in model.graph.node:
        node.name = "same"
    return save(model, folder)


@case("names.hostile_input")
def _hostile_input(folder: Path) -> Path:
    model = base_model()
    model.graph.input[0].name = "in\nput\x1b[1m:x,1"
    model.graph.node[0].input[0] = "in\nput\x1b[1m:x,1"
    return save(model, folder)


@case("names.dynamic_hostile_input")
def _dynamic_hostile(folder: Path) -> Path:
    model = base_model()
    name = "\x1b[2J" + "q" * 5000 + "\n"
    model.graph.input[0].name = name
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "\x1b[31mbatch\n"
    model.graph.node[0].input[0] = name
    return save(model, folder)


@case("names.empty_tensor")
def _empty_tensor(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], [""], name="relu"), helper.make_node("Relu", [""], ["y"], name="r2")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)]), folder)


# --- attributes -------------------------------------------------------------------------------------------------
@case("attr.conv_kernel_floats")
def _kernel_floats(folder: Path) -> Path:
    return conv_with(folder, kernel_shape=[3.0, 3.0])


@case("attr.conv_kernel_string")
def _kernel_string(folder: Path) -> Path:
    return conv_with(folder, kernel_shape="3x3")


@case("attr.conv_kernel_missing")
def _kernel_missing(folder: Path) -> Path:
    return conv_with(folder, kernel_shape=None)


@case("attr.conv_kernel_wrong")
def _kernel_wrong(folder: Path) -> Path:
    return conv_with(folder, kernel_shape=[5, 5, 5])


@case("attr.conv_kernel_zero")
def _kernel_zero(folder: Path) -> Path:
    return conv_with(folder, kernel_shape=[0, 0])


@case("attr.conv_strides_empty")
def _strides_empty(folder: Path) -> Path:
    return conv_with(folder, strides=[])


@case("attr.conv_strides_zero")
def _strides_zero(folder: Path) -> Path:
    return conv_with(folder, strides=[0, 0])


@case("attr.conv_strides_negative")
def _strides_neg(folder: Path) -> Path:
    return conv_with(folder, strides=[-1, -2])


@case("attr.conv_strides_short")
def _strides_short(folder: Path) -> Path:
    return conv_with(folder, strides=[2])


@case("attr.conv_strides_float")
def _strides_float(folder: Path) -> Path:
    return conv_with(folder, strides=[1.5, 1.5])


@case("attr.conv_pads_short")
def _pads_short(folder: Path) -> Path:
    return conv_with(folder, pads=[1, 1])


@case("attr.conv_pads_huge")
def _pads_huge(folder: Path) -> Path:
    return conv_with(folder, pads=[BIG, BIG, BIG, BIG])


@case("attr.conv_pads_negative")
def _pads_negative(folder: Path) -> Path:
    return conv_with(folder, pads=[-9, -9, -9, -9])


@case("attr.conv_dilations_zero")
def _dil_zero(folder: Path) -> Path:
    return conv_with(folder, dilations=[0, 0])


@case("attr.conv_group_zero")
def _group_zero(folder: Path) -> Path:
    return conv_with(folder, group=0)


@case("attr.conv_group_negative")
def _group_neg(folder: Path) -> Path:
    return conv_with(folder, group=-3)


@case("attr.conv_group_float")
def _group_float(folder: Path) -> Path:
    return conv_with(folder, group=1.0)


@case("attr.conv_group_mismatch")
def _group_mismatch(folder: Path) -> Path:
    return conv_with(folder, group=2)


@case("attr.conv_auto_pad_bogus")
def _auto_pad(folder: Path) -> Path:
    return conv_with(folder, auto_pad="SIDEWAYS", pads=None)


@case("attr.conv_auto_pad_int")
def _auto_pad_int(folder: Path) -> Path:
    return conv_with(folder, auto_pad=3, pads=None)


@case("attr.conv_weight_rank2")
def _weight_rank(folder: Path) -> Path:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    return save(model_of([node], [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], [weight("w", (4, 3))]), folder)


@case("attr.conv_no_weight")
def _no_weight(folder: Path) -> Path:
    return single(folder, "Conv", ["x"], kernel_shape=[3, 3])


@case("attr.convtranspose_output_shape")
def _convt(folder: Path) -> Path:
    return single(folder, "ConvTranspose", ["x", "w"], [weight("w", (3, 4, 3, 3))], kernel_shape=[3, 3],
                  output_shape=[BIG, BIG], strides=[0, 0])


@case("attr.pool_kernel_missing")
def _pool_missing(folder: Path) -> Path:
    return single(folder, "MaxPool", ["x"])


@case("attr.pool_kernel_floats")
def _pool_floats(folder: Path) -> Path:
    return single(folder, "MaxPool", ["x"], kernel_shape=[2.0, 2.0])


@case("attr.pool_strides_empty")
def _pool_strides(folder: Path) -> Path:
    return single(folder, "AveragePool", ["x"], kernel_shape=[2, 2], strides=[])


@case("attr.pool_kernel_huge")
def _pool_huge(folder: Path) -> Path:
    return single(folder, "MaxPool", ["x"], kernel_shape=[BIG, BIG])


@case("attr.pool_pads_wrong")
def _pool_pads(folder: Path) -> Path:
    return single(folder, "AveragePool", ["x"], kernel_shape=[2, 2], pads=[1, 1, 1])


@case("attr.pool_ceil_float")
def _pool_ceil(folder: Path) -> Path:
    return single(folder, "MaxPool", ["x"], kernel_shape=[2, 2], ceil_mode=0.5)


@case("attr.lppool_p_zero")
def _lppool(folder: Path) -> Path:
    return single(folder, "LpPool", ["x"], kernel_shape=[2, 2], p=0)


@case("attr.gather_axis_range")
def _gather_axis(folder: Path) -> Path:
    return single(folder, "Gather", ["x", "i"], [i64("i", [0])], axis=10)


@case("attr.gather_axis_float")
def _gather_float(folder: Path) -> Path:
    return single(folder, "Gather", ["x", "i"], [i64("i", [0])], axis=1.5)


@case("attr.gather_index_range")
def _gather_index(folder: Path) -> Path:
    return single(folder, "Gather", ["x", "i"], [i64("i", [99])], axis=1)


@case("attr.concat_axis_range")
def _concat_axis(folder: Path) -> Path:
    return single(folder, "Concat", ["x", "x"], axis=-7)


@case("attr.concat_axis_missing")
def _concat_missing(folder: Path) -> Path:
    return single(folder, "Concat", ["x", "x"])


@case("attr.softmax_axis_range")
def _softmax_axis(folder: Path) -> Path:
    return single(folder, "Softmax", ["x"], axis=9)


@case("attr.flatten_axis_range")
def _flatten_axis(folder: Path) -> Path:
    return single(folder, "Flatten", ["x"], axis=12)


@case("attr.transpose_perm_short")
def _perm_short(folder: Path) -> Path:
    return single(folder, "Transpose", ["x"], perm=[0, 1])


@case("attr.transpose_perm_repeat")
def _perm_repeat(folder: Path) -> Path:
    return single(folder, "Transpose", ["x"], perm=[0, 0, 0, 0])


@case("attr.transpose_perm_range")
def _perm_range(folder: Path) -> Path:
    return single(folder, "Transpose", ["x"], perm=[0, 1, 2, 99])


@case("attr.slice_axes_range")
def _slice_axes(folder: Path) -> Path:
    return single(folder, "Slice", ["x", "s", "e", "a"], [i64("s", [0]), i64("e", [2]), i64("a", [17])])


@case("attr.slice_step_zero")
def _slice_step(folder: Path) -> Path:
    return single(folder, "Slice", ["x", "s", "e", "a", "t"],
                  [i64("s", [0]), i64("e", [2]), i64("a", [1]), i64("t", [0])])


@case("attr.slice_lengths_mismatch")
def _slice_lengths(folder: Path) -> Path:
    return single(folder, "Slice", ["x", "s", "e"], [i64("s", [0, 0, 0]), i64("e", [2])])


@case("attr.resize_mode_bogus")
def _resize_mode(folder: Path) -> Path:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")
    return single(folder, "Resize", ["x", "", "sc"], [scales], mode="cubicle")


@case("attr.resize_scales_short")
def _resize_short(folder: Path) -> Path:
    scales = numpy_helper.from_array(np.array([2, 2], np.float32), "sc")
    return single(folder, "Resize", ["x", "", "sc"], [scales], mode="nearest")


@case("attr.resize_scales_huge")
def _resize_huge(folder: Path) -> Path:
    scales = numpy_helper.from_array(np.array([1, 1, 1e9, 1e9], np.float32), "sc")
    return single(folder, "Resize", ["x", "", "sc"], [scales], mode="nearest")


@case("attr.resize_scales_nan")
def _resize_nan(folder: Path) -> Path:
    scales = numpy_helper.from_array(np.array([1, 1, np.nan, np.inf], np.float32), "sc")
    return single(folder, "Resize", ["x", "", "sc"], [scales], mode="nearest")


@case("attr.resize_sizes_negative")
def _resize_sizes(folder: Path) -> Path:
    return single(folder, "Resize", ["x", "", "", "sz"], [i64("sz", [1, 3, -16, -16])], mode="nearest")


@case("attr.resize_no_scales")
def _resize_none(folder: Path) -> Path:
    return single(folder, "Resize", ["x"], mode="linear")


@case("attr.reshape_two_minus_one")
def _reshape(folder: Path) -> Path:
    return single(folder, "Reshape", ["x", "s"], [i64("s", [-1, -1])])


@case("attr.reshape_wrong_count")
def _reshape_count(folder: Path) -> Path:
    return single(folder, "Reshape", ["x", "s"], [i64("s", [7, 7])])


@case("attr.split_wrong_sum")
def _split(folder: Path) -> Path:
    node = helper.make_node("Split", ["x", "s"], ["a", "b"], name="split", axis=1)
    return save(model_of([node], [tensor("x", [1, 3, 8, 8])], [tensor("a", None), tensor("b", None)],
                         [i64("s", [5, 5])]), folder)


@case("attr.squeeze_axes_range")
def _squeeze(folder: Path) -> Path:
    return single(folder, "Squeeze", ["x", "a"], [i64("a", [40])])


@case("attr.batchnorm_epsilon_string")
def _bn(folder: Path) -> Path:
    init = [numpy_helper.from_array(np.ones(3, np.float32), n) for n in ("s", "b", "m", "v")]
    return single(folder, "BatchNormalization", ["x", "s", "b", "m", "v"], init, epsilon="tiny")


@case("attr.leakyrelu_alpha_ints")
def _leaky(folder: Path) -> Path:
    return single(folder, "LeakyRelu", ["x"], alpha=[1, 2])


@case("attr.clip_min_string")
def _clip(folder: Path) -> Path:
    return single(folder, "Clip", ["x", "lo"], [numpy_helper.from_array(np.array(["a"], dtype=object), "lo")])


@case("attr.graph_on_relu")
def _graph_attr(folder: Path) -> Path:
    sub = helper.make_graph([], "sub", [], [])
    return single(folder, "Relu", ["x"], body=sub)


@case("attr.unknown_attribute")
def _unknown_attr(folder: Path) -> Path:
    return conv_with(folder, frobnicate=[1, 2, 3])


@case("attr.matmul_rank_mismatch")
def _matmul(folder: Path) -> Path:
    return single(folder, "MatMul", ["x", "w"], [weight("w", (5, 7))])


@case("attr.gemm_transb_float")
def _gemm(folder: Path) -> Path:
    return single(folder, "Gemm", ["x", "w"], [weight("w", (4, 192))], shape=(1, 192), transB=0.5)


# --- ops and versions -------------------------------------------------------------------------------------------
@case("op.unknown_default_domain")
def _unknown_op(folder: Path) -> Path:
    return single(folder, "Frobnicate", ["x"])


@case("op.custom_domain")
def _custom(folder: Path) -> Path:
    node = helper.make_node("Evil", ["x"], ["y"], name="evil", domain="com.evil")
    return save(model_of([node], [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], domains=(("com.evil", 1),)),
                folder)


@case("op.ms_domain_undeclared")
def _ms(folder: Path) -> Path:
    node = helper.make_node("FusedConv", ["x", "w"], ["y"], name="fused", domain="com.microsoft")
    return save(model_of([node], [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], [weight()]), folder)


@case("opset.missing")
def _opset_missing(folder: Path) -> Path:
    model = base_model()
    del model.opset_import[:]
    return save(model, folder)


@case("opset.one")
def _opset_one(folder: Path) -> Path:
    model = base_model()
    model.opset_import[0].version = 1
    return save(model, folder)


@case("opset.zero")
def _opset_zero(folder: Path) -> Path:
    model = base_model()
    model.opset_import[0].version = 0
    return save(model, folder)


@case("opset.negative")
def _opset_negative(folder: Path) -> Path:
    model = base_model()
    model.opset_import[0].version = -5
    return save(model, folder)


@case("opset.99")
def _opset_99(folder: Path) -> Path:
    model = base_model()
    model.opset_import[0].version = 99
    return save(model, folder)


@case("opset.twice")
def _opset_twice(folder: Path) -> Path:
    model = base_model()
    model.opset_import.append(helper.make_opsetid("", 9))
    return save(model, folder)


@case("ir.zero")
def _ir_zero(folder: Path) -> Path:
    model = base_model()
    model.ir_version = 0
    return save(model, folder)


@case("ir.huge")
def _ir_huge(folder: Path) -> Path:
    model = base_model()
    model.ir_version = 1 << 40
    return save(model, folder)


@case("ir.3_no_opset")
def _ir_3(folder: Path) -> Path:
    model = base_model()
    model.ir_version = 3
    return save(model, folder)


# --- subgraphs --------------------------------------------------------------------------------------------------
@case("subgraph.if")
def _if(folder: Path) -> Path:
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [tensor("t", None)])
    other = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["e"])], "else", [], [tensor("e", None)])
    node = helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=other)
    cond = numpy_helper.from_array(np.array(True), "c")
    return save(model_of([node], [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], [cond]), folder)


@case("subgraph.loop")
def _loop(folder: Path) -> Path:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "x"], ["v_out"])],
        "body", [tensor("i", [], TensorProto.INT64), tensor("cond_in", [], TensorProto.BOOL), tensor("v_in", None)],
        [tensor("cond_out", [], TensorProto.BOOL), tensor("v_out", None)])
    node = helper.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=body)
    return save(model_of([node], [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], [i64("n", BIG)]), folder)


@case("subgraph.nested_in_custom_attr")
def _nested(folder: Path) -> Path:
    inner = helper.make_graph([helper.make_node("Relu", ["x"], ["z"])], "inner", [], [tensor("z", None)])
    mid = helper.make_graph([helper.make_node("If", ["c"], ["m"], then_branch=inner, else_branch=inner)], "mid", [],
                            [tensor("m", None)])
    node = helper.make_node("If", ["c"], ["y"], name="outer", then_branch=mid, else_branch=mid)
    cond = numpy_helper.from_array(np.array(False), "c")
    return save(model_of([node], [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], [cond]), folder)


# --- memory bombs in build-time constant folding ----------------------------------------------------------------
def _bomb(folder: Path, nodes, init) -> Path:
    nodes = [*nodes, helper.make_node("Add", ["x", "big"], ["y"], name="use")]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("y", None)], init), folder)


@case("bomb.constant_of_shape")
def _cos(folder: Path) -> Path:
    return _bomb(folder, [helper.make_node("ConstantOfShape", ["s"], ["big"], name="fill")], [i64("s", [BIG, 1, 1, 1])])


@case("bomb.constant_of_shape_2d")
def _cos2(folder: Path) -> Path:
    return _bomb(folder, [helper.make_node("ConstantOfShape", ["s"], ["big"], name="fill")],
                 [i64("s", [1 << 16, 1 << 16])])


@case("bomb.constant_of_shape_overflow")
def _cos_overflow(folder: Path) -> Path:
    return _bomb(folder, [helper.make_node("ConstantOfShape", ["s"], ["big"], name="fill")],
                 [i64("s", [1 << 62, 1 << 62, 4])])


@case("bomb.constant_of_shape_negative")
def _cos_negative(folder: Path) -> Path:
    return _bomb(folder, [helper.make_node("ConstantOfShape", ["s"], ["big"], name="fill")], [i64("s", [-1, 3])])


@case("bomb.expand")
def _expand(folder: Path) -> Path:
    one = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "one")
    return _bomb(folder, [helper.make_node("Expand", ["one", "s"], ["big"], name="expand")],
                 [one, i64("s", [BIG, 3, 8, 8])])


@case("bomb.tile")
def _tile(folder: Path) -> Path:
    one = numpy_helper.from_array(np.ones((1, 3, 8, 8), np.float32), "one")
    return _bomb(folder, [helper.make_node("Tile", ["one", "r"], ["big"], name="tile")],
                 [one, i64("r", [1 << 24, 1, 1, 1])])


@case("bomb.range")
def _range(folder: Path) -> Path:
    nodes = [helper.make_node("Range", ["a", "b", "d"], ["r"], name="range"),
             helper.make_node("Cast", ["r"], ["big"], name="cast", to=TensorProto.FLOAT)]
    return _bomb(folder, nodes, [i64("a", 0), i64("b", 1 << 40), i64("d", 1)])


@case("bomb.range_zero_delta")
def _range_zero(folder: Path) -> Path:
    nodes = [helper.make_node("Range", ["a", "b", "d"], ["r"], name="range"),
             helper.make_node("Cast", ["r"], ["big"], name="cast", to=TensorProto.FLOAT)]
    return _bomb(folder, nodes, [i64("a", 0), i64("b", 10), i64("d", 0)])


@case("bomb.constant_node_huge")
def _constant_huge(folder: Path) -> Path:
    value = TensorProto(name="v", data_type=TensorProto.FLOAT, dims=[BIG, 4])
    return _bomb(folder, [helper.make_node("Constant", [], ["big"], name="const", value=value)], [])


@case("bomb.reshape_to_huge")
def _reshape_huge(folder: Path) -> Path:
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"], name="fill"),
             helper.make_node("Reshape", ["c", "t"], ["big"], name="reshape")]
    return _bomb(folder, nodes, [i64("s", [1 << 20, 1 << 20]), i64("t", [1 << 40])])


@case("bomb.input_shape_chain")
def _shape_chain(folder: Path) -> Path:
    """A 2^31 batch reaching ConstantOfShape through Shape: folding sees only constants, but a huge result."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("ConstantOfShape", ["s"], ["c"], name="fill"),
             helper.make_node("Add", ["x", "c"], ["y"], name="use")]
    return save(model_of(nodes, [tensor("x", [BIG, 3, 8, 8])], [tensor("y", None)]), folder)


@case("bomb.concat_of_huge")
def _concat_huge(folder: Path) -> Path:
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"], name="fill"),
             helper.make_node("Concat", ["c", "c", "c", "c"], ["big"], name="cat", axis=0)]
    return _bomb(folder, nodes, [i64("s", [1 << 29, 1, 1, 1])])


# --- "valid" models that stress the INT8 commands ---------------------------------------------------------------
@case("valid.base")
def _valid(folder: Path) -> Path:
    return save(base_model(), folder)


@case("valid.no_dla_layer")
def _no_dla(folder: Path) -> Path:
    """Only a layer DLA cannot run (TopK): the INT8 commands have nothing to quantize."""
    nodes = [helper.make_node("TopK", ["x", "k"], ["y", "i"], name="topk", axis=1)]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])],
                         [tensor("y", None), tensor("i", None, TensorProto.INT64)], [i64("k", [2])]), folder)


@case("valid.identity_only")
def _identity(folder: Path) -> Path:
    return single(folder, "Identity", ["x"])


@case("valid.constant_output")
def _constant_output(folder: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Constant", [], ["y"], name="const",
                              value=numpy_helper.from_array(np.ones(3, np.float32)))]
    return save(model_of(nodes, [tensor("x", [1, 3, 8, 8])], [tensor("r", None), tensor("y", None)]), folder)
