"""Input shapes in trtexec's syntax, and per-node shape inference on the IR."""

from __future__ import annotations

from collections.abc import Mapping

import onnx
import onnx_ir as ir

from dlakit.errors import DlakitError

Shapes = dict[str, tuple[int, ...]]


def parse_shapes(text: str | None) -> Shapes:
    """Parse trtexec's ``--shapes`` syntax: ``name:1x3x224x224[,other:2x16]``; names may be quoted or hold ':'."""
    shapes: Shapes = {}
    if not text:
        return shapes
    for item in _split_items(text):
        name, sep, dims = item.rpartition(":")
        name = name.strip().strip("'\"")
        if not sep or not name:
            raise DlakitError(f"--shapes: '{item}' is not NAME:DIMS; write it like input:1x3x224x224")
        try:
            values = tuple(int(d) for d in dims.strip().lower().split("x"))
        except ValueError:
            raise DlakitError(
                f"--shapes: dimensions '{dims}' of input '{name}' must be positive integers joined by 'x'"
            ) from None
        if any(v <= 0 for v in values):
            raise DlakitError(f"--shapes: dimensions '{dims}' of input '{name}' must all be positive")
        if name in shapes and shapes[name] != values:
            raise DlakitError(f"--shapes: input '{name}' is given twice ({'x'.join(map(str, shapes[name]))} and "
                              f"{'x'.join(map(str, values))}); give it once")
        shapes[name] = values
    return shapes


def _split_items(text: str) -> list[str]:
    items, current, quote = [], "", ""
    for char in text:
        if char in "'\"":
            quote = "" if quote == char else (quote or char)
        if char == "," and not quote:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def format_shape(shape: ir.Shape | None) -> str:
    if shape is None:
        return "?"
    from dlakit.model.validate import show  # a symbolic dim's name comes from the file: escape it like any name

    return "x".join(str(d) if isinstance(d, int) else (show(str(d.value)) if d.value else "?") for d in shape)


def static_dims(value: ir.Value) -> tuple[int, ...] | None:
    """The value's dimensions if every one is a known integer, else None."""
    shape = value.shape
    if shape is None:
        return None
    dims = shape.dims  # rules ask this many times per node: one tuple, one type test per axis
    for d in dims:
        if not isinstance(d, int):
            return None
    return dims


def apply_input_shapes(model: ir.Model, shapes: Mapping[str, tuple[int, ...]], source: str,
                       allow_dynamic: bool = False) -> list[str]:
    """Fix the graph inputs' shapes to the user's, then insist that every input is static.

    With ``allow_dynamic`` (``dlakit check``: TensorRT builds such a model with the affected layers on the GPU) the
    inputs left dynamic are not refused; the hint how to set ``--shapes`` is returned instead, one per input."""
    hints: list[str] = []
    inputs = {value.name: value for value in model.graph.inputs}
    for value in inputs.values():  # some exporters write -1 or 0 for a dynamic dimension
        if value.shape is not None and any(isinstance(d, int) and d < 1 for d in value.shape):
            value.shape = ir.Shape([d if not isinstance(d, int) or d >= 1 else None for d in value.shape])
    for name, dims in shapes.items():
        if name not in inputs:
            known = ", ".join(sorted(inputs)) or "none"
            raise DlakitError(f"--shapes: '{name}' is not an input of {source}; its inputs are: {known}")
        value = inputs[name]
        if value.shape is not None and len(value.shape) != len(dims):
            raise DlakitError(
                f"--shapes: input '{name}' has rank {len(value.shape)} ({format_shape(value.shape)}) "
                f"but {len(dims)} dimensions were given"
            )
        if value.shape is not None:
            for axis, (old, new) in enumerate(zip(value.shape, dims, strict=True)):
                if isinstance(old, int) and old != new:
                    raise DlakitError(
                        f"--shapes: input '{name}' has fixed size {old} on axis {axis}, not {new}; "
                        "only dynamic dimensions can be set"
                    )
        value.shape = ir.Shape(list(dims))
    for value in model.graph.inputs:
        if value.shape is None or not value.shape.is_static():
            dims = value.shape if value.shape is not None else (1, 3, 224, 224)
            # the batch axis gets 1; every other unknown axis is named so that it is filled in, not copied as 1
            parts = [str(d) if isinstance(d, int) else "1" if axis == 0 else f"<{_axis_name(d, axis, len(dims))}>"
                     for axis, d in enumerate(dims)]
            from dlakit.model.validate import show

            shown = show(value.name)
            name = f"'{shown}'" if ":" in shown or "," in shown else shown
            fill = " (replace each <...> with your size)" if any(p.startswith("<") for p in parts) else ""
            message = (f"{source}: input '{shown}' has dynamic shape {format_shape(value.shape)}; DLA needs "
                       f"static shapes, so give them like trtexec: --shapes {name}:{'x'.join(parts)}{fill}")
            if not allow_dynamic:
                raise DlakitError(message)
            hints.append(message)
    return hints


def _axis_name(dim: object, axis: int, rank: int) -> str:
    """A readable name for an unknown axis: its symbolic name when the model has a short one, H/W of an image-like
    4-D input, else axis<N>."""
    text = str(getattr(dim, "value", None) or "").strip()
    if text and text.isascii() and text.replace("_", "").isalnum() and len(text) <= 16:
        return text
    return {2: "H", 3: "W"}.get(axis, f"axis{axis}") if rank == 4 else f"axis{axis}"


#: What :func:`infer_node` learned, by signature: the same op with the same attributes, input types and constant
#: inputs always infers the same output types, and networks repeat such nodes by the thousand (a stage of equal
#: convolutions, a chain of activations). A hit skips serialising the node and calling ONNX's inference.
InferenceCache = dict[tuple, tuple | None]
_SIMPLE_ATTRIBUTES = frozenset({ir.AttributeType.INT, ir.AttributeType.FLOAT, ir.AttributeType.STRING,
                                ir.AttributeType.INTS, ir.AttributeType.FLOATS, ir.AttributeType.STRINGS})


def infer_node(node: ir.Node, opset: int, data: Mapping[str, onnx.TensorProto],
               cache: InferenceCache | None = None, source: str | None = None) -> None:
    """Infer the output types of one node from its inputs (and the values of its constant inputs).

    ``cache`` (one per model pass) memoises the result by the node's signature (:data:`InferenceCache`). With
    ``source`` (a model being loaded), a node ONNX's inference rejects (input count, types, shapes that do not fit)
    is refused with a DlakitError naming it; without, inference just leaves its outputs unknown."""
    if not node.outputs:
        return
    try:
        schema = _schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return
    input_types = {}
    for value in node.inputs:
        if value is None or not value.name:
            continue
        if value.dtype is None:
            return
        input_types[value.name] = value
    key = _signature(node, opset, input_types, data) if cache is not None else None
    if key is not None and key in cache:
        inferred = cache[key]
    else:
        inferred = _infer(schema, node, opset, input_types, data, source)
        if key is not None:
            cache[key] = inferred
    if inferred is None:
        return
    for value, out in zip(node.outputs, inferred, strict=True):
        if out is None:
            continue
        elem_type, dims = out
        if value.dtype is None and elem_type:
            value.dtype = ir.DataType(elem_type)
        if dims is not None and (value.shape is None or not value.shape.is_static()):
            value.shape = ir.Shape(dims)


def _infer(schema: onnx.defs.OpSchema, node: ir.Node, opset: int, inputs: Mapping[str, ir.Value],
           data: Mapping[str, onnx.TensorProto], source: str | None = None) -> tuple | None:
    """ONNX's inference for one node: per output, (element type, dims or None) or None; None when it fails."""
    proto = ir.serde.serialize_node(node)
    try:
        out_types = onnx.shape_inference.infer_node_outputs(
            schema,
            proto,
            {name: _typed(value) for name, value in inputs.items()},
            {name: data[name] for name in inputs if name in data},  # not a scan of every constant
            opset_imports=[onnx.helper.make_opsetid("", opset)],
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        text = " ".join(str(exc).split())
        if source is None or "deprecated" in text:  # a deprecated op still runs in TensorRT's parser
            return None
        from dlakit.model.validate import show

        text = text.split("] ", 1)[1] if text.startswith("[") and "] " in text else text
        raise DlakitError(f"{source}: node '{show(node.name)}' ({node.op_type}) is malformed: ONNX shape inference "
                          f"says: {show(text[:300])}; fix its attributes or inputs, or re-export the model") from exc
    except Exception:
        return None
    result = []
    for value in node.outputs:
        out = out_types.get(value.name)
        if out is None or not out.HasField("tensor_type"):
            result.append(None)
            continue
        tensor_type = out.tensor_type
        dims = None
        if tensor_type.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                         for d in tensor_type.shape.dim)
        result.append((tensor_type.elem_type, dims))
    return tuple(result)


def _signature(node: ir.Node, opset: int, inputs: Mapping[str, ir.Value],
               data: Mapping[str, onnx.TensorProto]) -> tuple | None:
    """Everything ONNX's inference reads of the node, without names; None when an attribute is not a plain
    number/string (or a list of them), which is then inferred every time."""
    attributes = []
    for name, attr in node.attributes.items():
        if attr.type not in _SIMPLE_ATTRIBUTES:
            return None
        value = attr.value
        attributes.append((name, attr.type, tuple(value) if isinstance(value, list | tuple) else value))
    operands = []
    for value in node.inputs:
        if value is None or not value.name:
            operands.append(None)
            continue
        operands.append((int(value.dtype), _dims_key(value.shape), _constant_key(data.get(value.name))))
    # an input named twice (Add(x, x)) is seen as two operands of equal type, so names need not be in the key;
    # empty output names are (ONNX keeps a place for them)
    outputs = tuple(bool(v.name) for v in node.outputs)
    return (node.domain, node.op_type, opset, tuple(attributes), tuple(operands), outputs)


def _dims_key(shape: ir.Shape | None) -> tuple | None:
    """The shape as a tuple of ints, and of names (or None) for symbolic dims."""
    if shape is None:
        return None
    dims = shape.dims
    for d in dims:
        if not isinstance(d, int):
            return tuple(d if isinstance(d, int) else (d.value or None) for d in dims)
    return dims


def _constant_key(tensor: onnx.TensorProto | None) -> tuple | bytes | None:
    """A constant operand's value without its name (the name would make every weight a different key)."""
    if tensor is None:
        return None
    if tensor.raw_data:
        return tuple(tensor.dims), tensor.data_type, tensor.raw_data
    return tensor.SerializeToString(deterministic=True)


_SCHEMAS: dict[tuple[str, int, str], onnx.defs.OpSchema] = {}


def _schema(op_type: str, opset: int, domain: str) -> onnx.defs.OpSchema:
    key = (op_type, opset, domain)
    schema = _SCHEMAS.get(key)
    if schema is None:
        schema = _SCHEMAS[key] = onnx.defs.get_schema(op_type, opset, domain)
    return schema


def _typed(value: ir.Value) -> onnx.TypeProto:
    dims = None if value.shape is None else [d if isinstance(d, int) else (d.value or None) for d in value.shape]
    return onnx.helper.make_tensor_type_proto(int(value.dtype), dims)
