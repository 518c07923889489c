"""Shape inference and build-time constant folding in one topological pass.

TensorRT evaluates at build time every layer whose inputs are all constants (weights, shape arithmetic on static
shapes, ConstantOfShape, Constant nodes): such nodes never reach the DLA or the GPU. We mark them ``folded`` and,
where the result is small (shape tensors, Reshape targets, Resize scales), compute its value so that later rules can
read it. Large constants (weights made by ConstantOfShape in the ONNX test zoo) stay unevaluated: their shape is
enough, and evaluating them would cost memory for nothing.

Sizes are checked from shapes (or, where shape inference could not tell, from the constant inputs' values) BEFORE
anything is computed: a tensor over :data:`~dlakit.model.validate.TENSOR_BYTES_LIMIT` (a ConstantOfShape, Expand,
Tile or Range with a huge extent, a batch of 2^31) is refused with the limit in the message, never allocated.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnx_ir as ir

from dlakit.data.opdata import op_data
from dlakit.model.shapes import InferenceCache, infer_node, static_dims
from dlakit.model.validate import TENSOR_BYTES_LIMIT, budget_error, check_value_size, show, value_itemsize

#: Evaluate a folded node's outputs only up to this many elements (4 MiB of float32).
VALUE_LIMIT = 1 << 20
NON_DETERMINISTIC = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
)
#: Ops TensorRT keeps as layers even when fed by constants (quantization is a layer property, not a value).
KEEP_AS_LAYER = frozenset({"QuantizeLinear"})
FOLDED_META = "dlakit.folded"


def is_folded(node: ir.Node) -> bool:
    # the store's plain dict: MetadataStore.get goes through UserDict's generic Mapping.get, and placement asks
    # this for every input of every node
    return bool(node.meta.data.get(FOLDED_META, False))


def is_constant(value: ir.Value | None) -> bool:
    """True for weights and for outputs of folded nodes: values TensorRT knows at build time."""
    if value is None:
        return True  # an omitted optional input
    if value.is_graph_input():
        return False
    if value.const_value is not None or value.is_initializer():
        return True
    producer = value.producer()
    return producer is not None and is_folded(producer)


def constant_array(value: ir.Value | None) -> np.ndarray | None:
    """The value as a numpy array when it is a constant whose value is known, else None."""
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def propagate(model: ir.Model, source: str | None = None) -> None:
    """Infer every node's output shapes and fold build-time constants, in topological order.

    Raises DlakitError (naming ``source``) when a tensor's shape puts it over the per-tensor memory limit; with
    ``source`` (a user's model being loaded), also for nodes ONNX's shape inference rejects."""
    graph = model.graph
    opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
    if not _in_order(graph):
        graph.sort()  # stable: a graph already in topological order keeps its order, so checking first is the same
    data: dict[str, onnx.TensorProto] = {}
    label = source or "<model>"
    for value in graph.inputs:
        check_value_size(value, label)
    for value in graph.initializers.values():
        _remember(value, data)
    inferred: InferenceCache = {}
    for node in graph:
        _fold_constant_node(node)
        infer_node(node, opset, data, inferred, source)
        for out in node.outputs:
            check_value_size(out, label)
        if _foldable(node):
            node.meta[FOLDED_META] = True
            _evaluate(node, opset, label)
            for out in node.outputs:
                _remember(out, data)


def _in_order(graph: ir.Graph) -> bool:
    """True when every node comes after the producers of its inputs and no node holds a subgraph (which
    :meth:`ir.Graph.sort` orders too): one pass, where sorting costs a heap operation per node."""
    seen: set[int] = set()
    for node in graph:
        for value in node.inputs:
            producer = value.producer() if value is not None else None
            if producer is not None and id(producer) not in seen and producer.graph is graph:
                return False
        for attr in node.attributes.values():
            if attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS):
                return False
        seen.add(id(node))
    return True


def _remember(value: ir.Value, data: dict[str, onnx.TensorProto]) -> None:
    tensor = value.const_value
    if tensor is not None and tensor.size <= 4096 and value.name:
        array = np.asarray(tensor.numpy())
        if array.dtype.kind in "biuf":  # shape inference reads numbers; string constants (labels) are not needed
            data[value.name] = onnx.numpy_helper.from_array(array, value.name)


def _fold_constant_node(node: ir.Node) -> None:
    """A Constant node's output takes its tensor, so rules read it like an initializer."""
    if node.op_type != "Constant" or not node.outputs:
        return
    attr = next(iter(node.attributes.values()), None)
    if attr is None:
        return
    if attr.name == "value":
        tensor = attr.as_tensor()
    else:
        scalar_types = {"value_float": np.float32, "value_int": np.int64}
        list_types = {"value_floats": np.float32, "value_ints": np.int64}
        if attr.name in scalar_types:
            tensor = ir.tensor(np.array(attr.value, dtype=scalar_types[attr.name]))
        elif attr.name in list_types:
            tensor = ir.tensor(np.array(list(attr.value), dtype=list_types[attr.name]))
        else:
            return
    out = node.outputs[0]
    out.const_value = tensor
    out.dtype = tensor.dtype
    out.shape = ir.Shape(list(tensor.shape))


def _foldable(node: ir.Node) -> bool:
    if node.op_type in NON_DETERMINISTIC or node.op_type in KEEP_AS_LAYER or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type in ("Shape", "Size"):
        return node.inputs[0] is not None and static_dims(node.inputs[0]) is not None
    if node.op_type == "Constant":
        return True
    return all(is_constant(value) for value in node.inputs) and bool(node.inputs)


def _evaluate(node: ir.Node, opset: int, source: str = "<model>") -> None:
    if all(out.const_value is not None for out in node.outputs):
        return
    if node.op_type in ("Shape", "Size"):
        dims = static_dims(node.inputs[0])
        if node.op_type == "Size":
            result = np.array(math.prod(dims), dtype=np.int64)
        else:
            start = node.attributes.get_int("start", 0)
            end = node.attributes.get_int("end", len(dims))
            result = np.array(dims[slice(start, end)], dtype=np.int64)
        _store(node.outputs[0], result)
        return
    inputs = [constant_array(v) for v in node.inputs]
    if any(a is None for a, v in zip(inputs, node.inputs, strict=True) if v is not None):
        return
    if any(a is not None and a.size > VALUE_LIMIT for a in inputs):
        return
    for out in node.outputs:
        dims = static_dims(out)
        if dims is not None and math.prod(dims) > VALUE_LIMIT:
            return
    bound = output_bound(node, inputs)
    if bound is None:
        return  # the result's size cannot be told before computing it: leave it unevaluated
    itemsize = value_itemsize(node.outputs[0]) if node.outputs else 4
    if node.op_type in GENERATORS and bound * itemsize > TENSOR_BYTES_LIMIT:  # exact sizes: refuse, never allocate
        out = node.outputs[0].name if node.outputs else ""
        raise budget_error(source, f"tensor '{show(out)}' (output of node '{show(node.name)}', {node.op_type}, "
                           "folded at build time)", bound, itemsize)
    if bound > VALUE_LIMIT:
        return
    try:
        results = _run_reference(node, inputs, opset)
    except Exception:
        return
    for out, result in zip(node.outputs, results, strict=False):
        if result is not None:
            _store(out, np.asarray(result))


def _store(value: ir.Value, array: np.ndarray) -> None:
    value.const_value = ir.tensor(array, name=value.name)
    value.dtype = ir.DataType.from_numpy(array.dtype)
    value.shape = ir.Shape(list(array.shape))


def _run_reference(node: ir.Node, inputs: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    proto = ir.serde.serialize_node(node)
    names = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
    del proto.input[:]
    proto.input.extend(names)
    feeds = {name: array for name, array in zip(names, inputs, strict=True) if name}
    graph = onnx.helper.make_graph(
        [proto],
        "fold",
        [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in feeds.items()],
        [onnx.helper.make_empty_tensor_value_info(o) for o in proto.output if o],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, feeds)


#: Ops whose output size :func:`output_bound` computes exactly from their constant inputs; for the others the bound is
#: a loose product of input sizes, used only to skip evaluation.
GENERATORS = op_data().onnx_ops("generators")
#: Ops whose output size depends on input values or attributes in ways :func:`output_bound` does not model.
UNBOUNDED = op_data().onnx_ops("unbounded")


def output_bound(node: ir.Node, inputs: list[np.ndarray | None]) -> int | None:
    """An upper bound on the elements of the node's largest output, from its constant inputs, before computing it
    (None: cannot tell, do not compute). Python integers: a hostile shape cannot overflow."""
    op = node.op_type
    if op in UNBOUNDED:
        return None
    arrays = [a for a in inputs if a is not None]
    try:
        if op == "ConstantOfShape":
            dims = [int(d) for d in np.ravel(inputs[0])] if inputs and inputs[0] is not None else []
            return math.prod(dims) if all(d >= 0 for d in dims) else None
        if op == "Expand":
            target = [int(d) for d in np.ravel(inputs[1])]
            return math.prod(max(abs(a), b) for a, b in _aligned(list(inputs[0].shape), target))
        if op == "Tile":
            repeats = [int(r) for r in np.ravel(inputs[1])]
            return math.prod(d * max(r, 0) for d, r in zip(inputs[0].shape, repeats, strict=False)) \
                if len(repeats) == inputs[0].ndim else None
        if op == "Range":
            start, limit, delta = (float(np.ravel(a)[0]) for a in inputs[:3])
            if delta == 0 or not all(math.isfinite(v) for v in (start, limit, delta)):
                return None
            return max(math.ceil((limit - start) / delta), 0)
        if op in ("Resize", "Upsample"):
            return _resize_bound(node, inputs)
        if op == "Pad":
            pads = [int(p) for p in np.ravel(inputs[1])] if len(inputs) > 1 and inputs[1] is not None else None
            if pads is None or len(pads) != 2 * inputs[0].ndim:
                return None
            rank = inputs[0].ndim
            return math.prod(max(d + pads[i] + pads[i + rank], 0) for i, d in enumerate(inputs[0].shape))
        if op == "OneHot":
            return int(inputs[0].size) * abs(int(np.ravel(inputs[1])[0]))
        if op == "NonZero":
            return int(inputs[0].size) * max(inputs[0].ndim, 1)
    except (TypeError, ValueError, IndexError, OverflowError, AttributeError):
        return None
    sizes = [int(a.size) for a in arrays]
    return sum(sizes) + math.prod(max(s, 1) for s in sizes)


def _aligned(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    rank = max(len(a), len(b))
    return list(zip([1] * (rank - len(a)) + a, [1] * (rank - len(b)) + b, strict=True))


def _resize_bound(node: ir.Node, inputs: list[np.ndarray | None]) -> int | None:
    data = inputs[0]
    sizes = inputs[3] if len(inputs) > 3 else None
    scales = inputs[2] if len(inputs) > 2 else (inputs[1] if node.op_type == "Upsample" and len(inputs) > 1 else None)
    if sizes is not None and sizes.size:
        values = [int(v) for v in np.ravel(sizes)]
        return math.prod(values) if all(v >= 0 for v in values) else None
    if scales is not None and scales.size == data.ndim:
        values = [float(v) for v in np.ravel(scales)]
        if not all(math.isfinite(v) and v > 0 for v in values):
            return None
        return math.prod(math.floor(d * v) + 1 for d, v in zip(data.shape, values, strict=True))
    return None
