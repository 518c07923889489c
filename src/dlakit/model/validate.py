"""Refuse malformed or hostile ONNX models before anything reads them, with one line naming the node or tensor.

Rules, rewrites, the performance model and ONNX Runtime all assume a well-formed graph: every tensor produced
once, no cycles, attributes of the types the ONNX schema gives, weights whose bytes match their shape, tensors of a
size a computer can hold. A model that breaks one of these is refused here, once, instead of surfacing as a
traceback (or a memory exhaustion, or a hang) deep inside a command.

:func:`validate_model_proto` runs on the protobuf (structure, types, attributes, tensor bytes);
:func:`validate_inferred` runs after shape inference (axes against ranks, tensor sizes against
:data:`TENSOR_BYTES_LIMIT`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache

import onnx
import onnx_ir as ir
from onnx import AttributeProto, TensorProto

from dlakit.data.opdata import op_data
from dlakit.errors import DlakitError

#: No tensor (graph input, weight, intermediate, folded constant) may exceed this: a bigger one is a broken shape,
#: and holding it would exhaust memory.
TENSOR_BYTES_LIMIT = 2 << 30
#: TensorRT dimensions are 32-bit signed integers.
MAX_DIM = (1 << 31) - 1
#: TensorRT tensors have at most 8 dimensions (``Dims::MAX_DIMS``).
MAX_RANK = 8
NAME_LIMIT = 120
STANDARD_DOMAINS = ("", "ai.onnx")
#: Ops with spatial kernel / stride / pad attributes (``data/ops.toml`` ``[onnx] spatial``).
SPATIAL_OPS = op_data().onnx_ops("spatial")
#: String attributes with a closed set of values that rules read (ONNX operator specification).
ENUMS = {
    "auto_pad": ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"),
    "mode": None,  # per op below
    # tf_half_pixel_for_nn left the specification with opset 13, but converters still write it and ONNX Runtime
    # and TensorRT's parser still run it
    "coordinate_transformation_mode": ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn"),
    "nearest_mode": ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"),
}
#: Closed value sets of the ``mode`` attribute per op (``[onnx.modes]``).
MODES = op_data().modes
#: Ops whose ``axis`` attribute indexes the first input's dimensions: [-rank, rank - 1] (Flatten: up to rank).
AXIS_OPS = op_data().onnx_ops("axis")
SUB_BYTE_BITS = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.FLOAT4E2M1: 4}
for _name in ("INT2", "UINT2"):
    if hasattr(TensorProto, _name):
        SUB_BYTE_BITS[getattr(TensorProto, _name)] = 2


def show(name: str | bytes) -> str:
    """A node or tensor name made safe for one line of a terminal: control characters escaped, long names cut.
    (protobuf hands back bytes for a string field that is not valid UTF-8.)"""
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="backslashreplace")
    name = str(name)
    text = name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name
    if len(text) > NAME_LIMIT:
        text = f"{text[:NAME_LIMIT // 2]}...{text[-20:]} ({len(name)} characters)"
    return text or "<empty>"


class _Label:
    """A node's label, made only when a message needs it (validation sees every node, errors are rare)."""

    __slots__ = ("index", "node")

    def __init__(self, node: onnx.NodeProto, index: int) -> None:
        self.node, self.index = node, index

    def __str__(self) -> str:
        return node_label(self.node, self.index)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def node_label(node: onnx.NodeProto, index: int) -> str:
    return f"node '{show(node.name)}' ({show(node.op_type)})" if node.name else f"node #{index} ({show(node.op_type)})"


def human_bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


def budget_error(source: str, what: str, elements: int, itemsize: int = 4) -> DlakitError:
    return DlakitError(
        f"{source}: {what} would hold {elements:,} elements ({human_bytes(elements * itemsize)}), over dlakit's "
        f"{human_bytes(TENSOR_BYTES_LIMIT)} limit per tensor; the shape is almost certainly broken: fix the "
        "exporter's shapes (or --shapes)"
    )


# --- the protobuf -----------------------------------------------------------------------------------------------
def validate_model_proto(proto: onnx.ModelProto, source: str) -> None:
    """Refuse a model whose structure, attributes or tensors are malformed (see the module docstring)."""
    _check_versions(proto, source)
    graph = proto.graph
    if not graph.output:
        raise DlakitError(f"{source}: the graph has no outputs, so nothing would be computed; re-export it with the "
                          "network's outputs marked as graph outputs")
    _check_text(graph, source)
    _check_inputs(graph, source)
    _check_names(graph, source)
    _check_acyclic(graph, source)
    opset = next((o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS), None)
    if opset is None:
        raise DlakitError(f"{source}: the model imports no default ONNX opset; re-export it with a standard opset")
    for tensor, where in _tensors(graph):
        problem = tensor_problem(tensor)
        if problem:
            raise DlakitError(f"{source}: {where} '{show(tensor.name)}' {problem}; the file is damaged or was written "
                              "by a broken exporter: re-export the model")
    for index, node in enumerate(graph.node):
        _check_attributes(node, index, opset, source)


def _check_versions(proto: onnx.ModelProto, source: str) -> None:
    if not 1 <= proto.ir_version <= onnx.IR_VERSION:
        raise DlakitError(f"{source}: ONNX IR version {proto.ir_version} is not one dlakit's onnx understands "
                          f"(1 to {onnx.IR_VERSION}); re-save the model with a released ONNX exporter")
    defaults = [o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS]
    if len(defaults) > 1:
        raise DlakitError(f"{source}: the model imports the default ONNX opset {len(defaults)} times "
                          f"({', '.join(map(str, defaults))}); keep one opset_import for domain ''")
    if defaults and defaults[0] < 1:
        raise DlakitError(f"{source}: ONNX opset {defaults[0]} does not exist; re-export with a standard opset "
                          "(13 to 17 are what TensorRT parsers know best)")


def _check_text(graph: onnx.GraphProto, source: str) -> None:
    """protobuf returns bytes for a string field that is not valid UTF-8 (a damaged or hostile file)."""
    if not _has_bytes(graph):  # the usual case, told without a tuple per field; the walk below names the field
        return
    for value, what in _text_fields(graph):
        if isinstance(value, bytes):
            raise DlakitError(f"{source}: {what} '{show(value)}' is not valid UTF-8 text; the file is damaged: "
                              "re-export the model")


def _has_bytes(graph: onnx.GraphProto) -> bool:
    """Whether any field :func:`_text_fields` walks is bytes."""
    if bytes in {type(v.name) for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}:
        return True
    for node in graph.node:
        if (type(node.name) is bytes or type(node.op_type) is bytes or type(node.domain) is bytes
                or bytes in map(type, node.input) or bytes in map(type, node.output)
                or (node.attribute and bytes in {type(a.name) for a in node.attribute})):
            return True
    return False


def _text_fields(graph: onnx.GraphProto) -> Iterator[tuple[str | bytes, str]]:
    for v in (*graph.input, *graph.output, *graph.value_info):
        yield v.name, "tensor name"
    for t in graph.initializer:
        yield t.name, "weight name"
    for node in graph.node:
        yield node.name, "node name"
        yield node.op_type, "op type"
        yield node.domain, "domain"
        for name in (*node.input, *node.output):
            yield name, "tensor name"
        for a in node.attribute:
            yield a.name, "attribute name"


def _check_inputs(graph: onnx.GraphProto, source: str) -> None:
    initializers = {t.name for t in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        kind = value.type.WhichOneof("value")
        name = show(value.name)
        if kind not in (None, "tensor_type"):
            kind_name = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map",
                         "sparse_tensor_type": "a sparse tensor"}.get(kind, kind)
            raise DlakitError(f"{source}: input '{name}' is {kind_name}; TensorRT takes only dense tensor inputs: "
                              "export the network with tensor inputs")
        elem = value.type.tensor_type.elem_type
        if elem and elem not in TensorProto.DataType.values():
            raise DlakitError(f"{source}: input '{name}' has unknown element type {elem}; re-export the model")
        dims = value.type.tensor_type.shape.dim
        if len(dims) > MAX_RANK:
            raise DlakitError(f"{source}: input '{name}' has {len(dims)} dimensions; TensorRT tensors have at most "
                              f"{MAX_RANK}: reshape it at export time")
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > MAX_DIM:
                raise DlakitError(f"{source}: input '{name}' has size {dim.dim_value:,} on axis {axis}, over "
                                  f"TensorRT's {MAX_DIM:,} (dimensions are 32-bit); give a real size with --shapes "
                                  "or re-export")


def _check_names(graph: onnx.GraphProto, source: str) -> None:
    """Every tensor has one producer: a graph input, a weight, or one node output; every use has a producer."""
    produced: dict[str, str | int] = {}  # a description, or the index of the producing node
    for value in graph.input:
        if value.name in produced:
            raise DlakitError(f"{source}: graph input '{show(value.name)}' is listed twice; give each input once")
        produced[value.name] = f"graph input '{show(value.name)}'"
    for tensor in graph.initializer:
        if tensor.name in produced and not produced[tensor.name].startswith("graph input"):
            raise DlakitError(f"{source}: two weights are named '{show(tensor.name)}'; each initializer needs a "
                              "unique name: re-export the model")
        produced[tensor.name] = f"weight '{show(tensor.name)}'"
    names: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        if node.name and names.setdefault(node.name, index) != index:
            raise DlakitError(f"{source}: nodes #{names[node.name]} and #{index} are both named '{show(node.name)}'; "
                              "TensorRT layer names (the calibration cache, --layerPrecisions, dlakit's report) must "
                              "be unique: rename one of them")
        if not node.op_type:
            raise DlakitError(f"{source}: node #{index} ('{show(node.name)}') has no op type; the file is damaged: "
                              "re-export the model")
        for out in node.output:
            if not out:
                continue
            if out in produced:
                first = produced[out]
                first = node_label(graph.node[first], first) if isinstance(first, int) else first
                raise DlakitError(f"{source}: tensor '{show(out)}' is produced twice (by {first} and by "
                                  f"{node_label(node, index)}); ONNX tensors are assigned once: re-export the model")
            produced[out] = index
    read = {name for node in graph.node for name in node.input}
    read.discard("")
    if read.difference(produced):  # only then walk the nodes to name the first that reads an unknown tensor
        _check_reads(graph, produced, source)
    seen = set()
    for value in graph.output:
        if value.name in seen:
            raise DlakitError(f"{source}: graph output '{show(value.name)}' is listed twice; list each output once")
        seen.add(value.name)
        if value.name not in produced:
            raise DlakitError(f"{source}: graph output '{show(value.name)}' is not produced by any node; remove it or "
                              "re-export the model")


def _check_reads(graph: onnx.GraphProto, produced: dict[str, str | int], source: str) -> None:
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in produced:
                raise DlakitError(f"{source}: {node_label(node, index)} reads tensor '{show(name)}', which no node, "
                                  "weight or graph input produces; the graph is incomplete: re-export the model")


def _check_acyclic(graph: onnx.GraphProto, source: str) -> None:
    """Kahn's algorithm over nodes; on a cycle, name a node on it (a cycle would hang any topological walk).
    Exporters write nodes in topological order, which proves the graph acyclic in one pass: Kahn runs only when
    some node reads a tensor that a later node (or itself) produces."""
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    if _in_order(graph, producer):
        return
    deps = [{producer[name] for name in node.input if name in producer} for node in graph.node]
    users: list[list[int]] = [[] for _ in graph.node]
    for i, sources in enumerate(deps):
        for j in sources:
            users[j].append(i)
    pending = [len(d) for d in deps]
    ready = [i for i, count in enumerate(pending) if count == 0]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for j in users[i]:
            pending[j] -= 1
            if pending[j] == 0:
                ready.append(j)
    if done == len(graph.node):
        return
    node = next(i for i, count in enumerate(pending) if count)
    visited: set[int] = set()
    while node not in visited:  # walk back through unfinished producers until one repeats: it is on a cycle
        visited.add(node)
        node = next(j for j in deps[node] if pending[j])
    bad = graph.node[node]
    raise DlakitError(f"{source}: {node_label(bad, node)} is on a cycle (its output feeds back into its own inputs); "
                      "ONNX graphs must be acyclic: re-export the model")


def _in_order(graph: onnx.GraphProto, producer: dict[str, int]) -> bool:
    """Whether every node comes after the producers of all its inputs."""
    for index, node in enumerate(graph.node):
        for name in node.input:
            if producer.get(name, -1) >= index:
                return False
    return True


def _tensors(graph: onnx.GraphProto) -> Iterator[tuple[TensorProto, str]]:
    for tensor in graph.initializer:
        yield tensor, "weight"
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.type == AttributeProto.TENSOR:
                    yield attribute.t, f"Constant node '{show(node.name)}' tensor"


def tensor_problem(tensor: TensorProto) -> str | None:
    """What is wrong with a tensor's declared type, shape and data, or None; checked without decoding it."""
    if any(d < 0 for d in tensor.dims):
        return f"has negative dimensions {list(tensor.dims)}"
    if tensor.data_type == TensorProto.UNDEFINED or tensor.data_type not in TensorProto.DataType.values():
        return f"has no valid data type ({tensor.data_type})"
    if tensor.data_location == TensorProto.EXTERNAL:
        return None  # checked once read (loader), or refused there
    count = math.prod(tensor.dims)
    dtype = tensor.data_type
    if tensor.HasField("raw_data"):
        if dtype == TensorProto.STRING:
            return "is a string tensor with raw data, which ONNX does not allow"
        bits = SUB_BYTE_BITS.get(dtype) or 8 * onnx.helper.tensor_dtype_to_np_dtype(dtype).itemsize
        expected = (count * bits + 7) // 8
        if len(tensor.raw_data) != expected:
            return (f"holds {len(tensor.raw_data):,} bytes but its shape {list(tensor.dims)} of "
                    f"{TensorProto.DataType.Name(dtype)} needs {expected:,}")
        return None
    field = onnx.helper.tensor_dtype_to_field(dtype)
    have = len(getattr(tensor, field))
    per = 2 if dtype in (TensorProto.COMPLEX64, TensorProto.COMPLEX128) else 1
    expected = -(-count * SUB_BYTE_BITS[dtype] // 32) if dtype in SUB_BYTE_BITS else count * per
    if have != expected and not (have == 0 and count == 0):
        return f"holds {have:,} values but its shape {list(tensor.dims)} needs {expected:,}"
    return None


@cache
def _schema(op: str, opset: int) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return None


@cache
def _attribute_specs(op: str, opset: int) -> tuple[dict[str, int], tuple[str, ...]] | None:
    """The schema's attributes of ``op`` (name → type) and the required ones, in schema order; None without a
    schema. (``OpSchema.attributes`` builds a new dict on every read.)"""
    schema = _schema(op, opset)
    if schema is None:
        return None
    attributes = schema.attributes
    return ({name: spec.type.value for name, spec in attributes.items()},
            tuple(name for name, spec in attributes.items() if spec.required))


def _check_attributes(node: onnx.NodeProto, index: int, opset: int, source: str) -> None:
    if node.domain not in STANDARD_DOMAINS:
        return
    label = _Label(node, index)
    specs = _attribute_specs(node.op_type, opset)
    attrs = {a.name: a for a in node.attribute}
    if specs is not None:
        types, required = specs
        for name, attribute in attrs.items():
            kind = types.get(name)
            if kind is None:
                raise DlakitError(f"{source}: {label} has attribute '{show(name)}', which {node.op_type} does not "
                                  f"have in opset {opset}; remove it or re-export the model")
            if attribute.type != kind:
                raise DlakitError(
                    f"{source}: {label}: attribute '{name}' is {_type_name(attribute.type)}, but ONNX "
                    f"{node.op_type} takes {_type_name(kind)}; re-export the model")
        for name in required:
            if name not in attrs:
                raise DlakitError(f"{source}: {label} lacks its required attribute '{name}'; re-export the model")
    if not attrs:
        return  # what follows reads attributes only
    for name, allowed in ENUMS.items():
        allowed = MODES.get(node.op_type) if name == "mode" else allowed
        if name in attrs and allowed and attrs[name].type == AttributeProto.STRING:
            value = attrs[name].s.decode(errors="replace")
            if value not in allowed:
                raise DlakitError(f"{source}: {label}: {name} '{show(value)}' is not one of {', '.join(allowed)}")
    if node.op_type in SPATIAL_OPS:
        _check_window(node, attrs, label, source)
    if "group" in attrs and attrs["group"].type == AttributeProto.INT and attrs["group"].i < 1:
        raise DlakitError(f"{source}: {label}: group {attrs['group'].i} must be 1 or more")


def _type_name(kind: int) -> str:
    return AttributeProto.AttributeType.Name(kind) if kind in AttributeProto.AttributeType.values() else str(kind)


def _check_window(node: onnx.NodeProto, attrs: dict[str, AttributeProto], label: str, source: str) -> None:
    """Kernel geometry the rules compute with: positive kernel, strides and dilations, one per spatial axis."""

    def ints(name: str) -> list[int] | None:
        attribute = attrs.get(name)
        return list(attribute.ints) if attribute is not None and attribute.type == AttributeProto.INTS else None

    kernel = ints("kernel_shape")
    rank = len(kernel) if kernel is not None else None
    if kernel is not None and (not kernel or any(k < 1 for k in kernel)):
        raise DlakitError(f"{source}: {label}: kernel_shape {kernel} must hold one size of 1 or more per spatial axis")
    for name, low in (("strides", 1), ("dilations", 1), ("pads", 0), ("output_padding", 0)):
        values = ints(name)
        if values is None:
            continue
        if any(v < low or v > MAX_DIM for v in values):
            raise DlakitError(f"{source}: {label}: {name} {values} must be between {low} and {MAX_DIM:,}")
        expected = None if rank is None else 2 * rank if name == "pads" else rank
        if (expected is not None and len(values) != expected) or (not values and name != "output_padding"):
            raise DlakitError(f"{source}: {label}: {name} has {len(values)} values, but its kernel_shape has "
                              f"{rank if rank is not None else 'one per'} spatial axes"
                              f"{' (pads: begin and end for each)' if name == 'pads' else ''}; re-export the model")


# --- after shape inference --------------------------------------------------------------------------------------
def validate_inferred(model: ir.Model, source: str) -> None:
    """Axes within ranks, once shapes are known (tensor sizes are checked as they are inferred, in folding)."""
    for node in model.graph:
        op = node.op_type
        if op in _AXES_CHECKED:
            _check_axes(node, source)
        if op in _VALUES_CHECKED:
            _check_values(node, source)


#: The ops :func:`_check_axes` and :func:`_check_values` look at (each passes every other op at once).
_AXES_CHECKED = AXIS_OPS | {"Flatten", "Transpose"}
_VALUES_CHECKED = SPATIAL_OPS | {"Resize", "Upsample", "Reshape"}


def value_elements(value: ir.Value) -> int | None:
    shape = value.shape
    if shape is None:
        return None
    count = 1
    for d in shape.dims:
        if not isinstance(d, int):
            return None
        if d > 0:
            count *= d
        else:
            count = 0
    return count


def value_itemsize(value: ir.Value) -> int:
    try:
        return max(math.ceil(value.dtype.itemsize), 1) if value.dtype is not None else 4
    except Exception:  # an element type without a numpy size
        return 1


#: The widest element ONNX has (COMPLEX128): a tensor under the limit at this size is under it at any.
_WIDEST_ITEM = 16


def check_value_size(value: ir.Value, source: str) -> None:
    """Refuse a value whose static shape puts it over :data:`TENSOR_BYTES_LIMIT` (from its shape: nothing is
    allocated)."""
    if value.shape is not None and len(value.shape) > MAX_RANK:
        raise DlakitError(f"{source}: tensor '{show(value.name)}' has {len(value.shape)} dimensions; TensorRT tensors "
                          f"have at most {MAX_RANK}: reshape it at export time")
    elements = value_elements(value)
    if elements is None or elements * _WIDEST_ITEM <= TENSOR_BYTES_LIMIT:
        return
    itemsize = value_itemsize(value)
    if elements * itemsize > TENSOR_BYTES_LIMIT:
        producer = value.producer()
        where = f" (output of node '{show(producer.name)}', {producer.op_type})" if producer is not None else ""
        raise budget_error(source, f"tensor '{show(value.name)}'{where}", elements, itemsize)


def _rank(value: ir.Value | None) -> int | None:
    return None if value is None or value.shape is None else len(value.shape)


def _check_axes(node: ir.Node, source: str) -> None:
    attributes = node.attributes
    rank = _rank(node.inputs[0]) if node.inputs else None
    if rank is None:
        return
    label = f"node '{show(node.name)}' ({node.op_type})"
    axis_attr = attributes.get("axis")
    if node.op_type in AXIS_OPS | {"Flatten"} and axis_attr is not None and axis_attr.type == ir.AttributeType.INT:
        axis = axis_attr.as_int()
        high = rank if node.op_type == "Flatten" else rank - 1
        if rank > 0 and not -rank <= axis <= high:
            raise DlakitError(f"{source}: {label}: axis {axis} is out of range for its rank-{rank} input "
                              f"(allowed {-rank} to {high}); re-export the model")
    perm = attributes.get("perm")
    if node.op_type == "Transpose" and perm is not None and perm.type == ir.AttributeType.INTS:
        values = list(perm.as_ints())
        if sorted(values) != list(range(rank)):
            raise DlakitError(f"{source}: {label}: perm {values} is not a permutation of the {rank} axes of its input; "
                              "re-export the model")


def _const(value: ir.Value | None):
    return None if value is None or value.const_value is None else value.const_value.numpy()


def _dims(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None or not value.shape.is_static():
        return None
    return tuple(int(d) for d in value.shape)


def _check_values(node: ir.Node, source: str) -> None:
    """Constant operands and shapes that make a node fail at build or run time (ONNX Runtime and TensorRT refuse
    them), told here in one line instead of as ORT's error on the first batch."""
    import numpy as np

    label = f"{source}: node '{show(node.name)}' ({node.op_type})"
    op, inputs = node.op_type, list(node.inputs)
    if op in ("Resize", "Upsample"):
        scales = _const(inputs[2] if op == "Resize" and len(inputs) > 2 else inputs[1] if len(inputs) > 1 else None)
        if scales is not None and scales.size and not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
            raise DlakitError(f"{label}: scales {scales.tolist()} must be finite and positive; re-export the model")
        sizes = _const(inputs[3]) if op == "Resize" and len(inputs) > 3 else None
        if sizes is not None and sizes.size and np.any(sizes < 1):
            raise DlakitError(f"{label}: sizes {sizes.tolist()} must all be 1 or more; re-export the model")
    if op in ("Conv", "ConvTranspose") and len(inputs) > 1:
        data, weight = _dims(inputs[0]), _dims(inputs[1])
        group = node.attributes.get_int("group", 1)
        if data and weight and len(data) == len(weight) and len(data) > 2:
            channels = weight[1] * group if op == "Conv" else weight[0]
            if data[1] != channels or (op == "Conv" and weight[0] % group):
                raise DlakitError(f"{label}: its input has {data[1]} channels but its weights {list(weight)} with "
                                  f"group {group} expect {channels}; fix the weights or group, or re-export")
    if op in SPATIAL_OPS and node.outputs:
        out = _dims(node.outputs[0])
        if out is not None and any(d < 1 for d in out):
            raise DlakitError(f"{label}: its output would be {'x'.join(map(str, out))} (empty): the kernel is larger "
                              "than the padded input; fix kernel_shape/pads or the input size")
    if op == "Reshape" and len(inputs) > 1:
        data, shape = _dims(inputs[0]), _const(inputs[1])
        if data is not None and shape is not None and shape.dtype.kind in "iu":
            target = [data[i] if int(d) == 0 and not node.attributes.get_int("allowzero", 0) and i < len(data)
                      else int(d) for i, d in enumerate(shape.ravel())]
            total, known = math.prod(data), math.prod(d for d in target if d != -1)
            if target.count(-1) > 1 or any(d < -1 for d in target) or (
                    -1 not in target and known != total) or (-1 in target and (known == 0 or total % known)):
                raise DlakitError(f"{label}: cannot reshape {'x'.join(map(str, data))} ({total} elements) to "
                                  f"{shape.ravel().tolist()}; fix the target shape or re-export the model")
