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
    return "x".join(str(d) if isinstance(d, int) else (str(d.value) if d.value else "?") for d in shape)


def static_dims(value: ir.Value) -> tuple[int, ...] | None:
    """The value's dimensions if every one is a known integer, else None."""
    shape = value.shape
    if shape is None or not shape.is_static():
        return None
    return tuple(int(d) for d in shape)


def apply_input_shapes(model: ir.Model, shapes: Mapping[str, tuple[int, ...]], source: str) -> None:
    """Fix the graph inputs' shapes to the user's, then insist that every input is static."""
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
            raise DlakitError(
                f"{source}: input '{shown}' has dynamic shape {format_shape(value.shape)}; DLA needs static "
                f"shapes, so give them like trtexec: --shapes {name}:{'x'.join(parts)}{fill}"
            )


def _axis_name(dim: object, axis: int, rank: int) -> str:
    """A readable name for an unknown axis: its symbolic name when the model has a short one, H/W of an image-like
    4-D input, else axis<N>."""
    text = str(getattr(dim, "value", None) or "").strip()
    if text and text.isascii() and text.replace("_", "").isalnum() and len(text) <= 16:
        return text
    return {2: "H", 3: "W"}.get(axis, f"axis{axis}") if rank == 4 else f"axis{axis}"


def infer_node(node: ir.Node, opset: int, data: Mapping[str, onnx.TensorProto], source: str | None = None) -> None:
    """Infer the output types of one node from its inputs (and the values of its constant inputs).

    With ``source`` (a model being loaded), a node ONNX's inference rejects (input count, types, shapes that do not
    fit) is refused with a DlakitError naming it; without, inference just leaves its outputs unknown."""
    if not node.outputs:
        return
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return
    input_types = {}
    for value in node.inputs:
        if value is None or not value.name:
            continue
        if value.dtype is None:
            return
        input_types[value.name] = _typed(value)
    proto = ir.serde.serialize_node(node)
    try:
        out_types = onnx.shape_inference.infer_node_outputs(
            schema,
            proto,
            input_types,
            {k: v for k, v in data.items() if k in input_types},
            opset_imports=[onnx.helper.make_opsetid("", opset)],
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        text = " ".join(str(exc).split())
        if source is None or "deprecated" in text:  # a deprecated op still runs in TensorRT's parser
            return
        from dlakit.model.validate import show

        text = text.split("] ", 1)[1] if text.startswith("[") and "] " in text else text
        raise DlakitError(f"{source}: node '{show(node.name)}' ({node.op_type}) is malformed: ONNX shape inference "
                          f"says: {show(text[:300])}; fix its attributes or inputs, or re-export the model") from exc
    except Exception:
        return
    for value in node.outputs:
        out = out_types.get(value.name)
        if out is None or not out.HasField("tensor_type"):
            continue
        tensor_type = out.tensor_type
        if value.dtype is None and tensor_type.elem_type:
            value.dtype = ir.DataType(tensor_type.elem_type)
        if tensor_type.HasField("shape") and (value.shape is None or not value.shape.is_static()):
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]
            value.shape = ir.Shape(dims)


def _typed(value: ir.Value) -> onnx.TypeProto:
    dims = None if value.shape is None else [d if isinstance(d, int) else (d.value or None) for d in value.shape]
    return onnx.helper.make_tensor_type_proto(int(value.dtype), dims)
