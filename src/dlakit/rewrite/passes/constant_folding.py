"""Replace build-time constant subgraphs by initializers (what ``polygraphy surgeon sanitize --fold-constants`` does).

:func:`dlakit.model.load_model` already marks folded nodes and computes small values; here every folded node is
evaluated (also large ones such as the ConstantOfShape weights of the ONNX test zoo) and replaced by an initializer,
so that rules can read weights and indices as plain arrays.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from dlakit.model import constant_array, is_folded

#: Refuse to materialise more than this many bytes of folded constants (the rest stays as nodes).
MAX_FOLDED_BYTES = 2 << 30


def _evaluate(node: ir.Node, opset: int) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    inputs = [constant_array(v) if v is not None else None for v in node.inputs]
    if any(a is None for a, v in zip(inputs, node.inputs, strict=True) if v is not None):
        return None
    proto = ir.serde.serialize_node(node)
    names = [f"in{i}" if v is not None else "" for i, v in enumerate(inputs)]
    del proto.input[:]
    proto.input.extend(names)
    feeds = {n: a for n, a in zip(names, inputs, strict=True) if n}
    graph = onnx.helper.make_graph(
        [proto], "fold",
        [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in feeds.items()],
        [onnx.helper.make_empty_tensor_value_info(o) for o in proto.output if o])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]
    except Exception:
        return None


def fold_constants(model: ir.Model, opset: int) -> list[str]:
    """Fold every build-time constant node into initializers; return the names of the folded nodes."""
    graph = model.graph
    folded: list[str] = []
    budget = MAX_FOLDED_BYTES
    for node in list(graph):
        if not is_folded(node) or any(out.is_graph_output() for out in node.outputs):
            continue
        values = [out.const_value.numpy() if out.const_value is not None else None for out in node.outputs]
        if any(v is None for v in values):
            evaluated = _evaluate(node, opset)
            if evaluated is None:
                continue
            values = evaluated
        size = sum(v.nbytes for v in values)
        if size > budget:
            continue
        budget -= size
        for out, array in zip(node.outputs, values, strict=False):
            name = out.name or f"{node.name}_out"
            out.name = f"{name}__folded"
            tensor = ir.tensor(np.asarray(array), name=name)
            value = ir.Value(name=name, shape=ir.Shape(list(np.shape(array))), type=ir.TensorType(tensor.dtype),
                             const_value=tensor)
            out.const_value = tensor  # later folded nodes read their inputs from here
            graph.register_initializer(value)
            out.replace_all_uses_with(value)
        folded.append(node.name or node.op_type)
    for node in list(graph):
        if is_folded(node) and not any(out.uses() or out.is_graph_output() for out in node.outputs):
            graph.remove(node, safe=True)
    return folded
