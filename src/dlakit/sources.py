"""What a command's MODEL argument means: an ONNX file, or the name of a zoo network built offline.

:func:`open_model` is the one loader every command uses; :func:`open_source` also returns the protobuf as it is on
disk (for the commands that write the user's own file back with a few tensors changed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import onnx

from dlakit.errors import DlakitError
from dlakit.model import LoadedModel, load_model, parse_shapes
from dlakit.model.loader import CONTROL_FLOW_OPS, read_model_proto

ShapesArg = str | Mapping[str, tuple[int, ...]] | None
#: protobuf cannot serialise 2 GiB; a model this large keeps its weights in ``<name>.data`` beside it
PROTO_LIMIT = 1 << 31


def _shapes(shapes: ShapesArg) -> Mapping[str, tuple[int, ...]]:
    return parse_shapes(shapes) if shapes is None or isinstance(shapes, str) else dict(shapes)


def zoo_proto(model: str, form: str = "prepared", batch: int | None = None) -> onnx.ModelProto | None:
    """The zoo network ``model`` names (``form``, ``batch``), or None when ``model`` is a file or no zoo name.

    A word that is neither a file nor a zoo name but close to one is refused with the name it resembles."""
    if Path(model).exists():
        return None
    from dlakit import zoo
    from dlakit.zoo.registry import suggestion

    if zoo.is_zoo_name(model):
        return zoo.build(model, form=form, batch=batch)
    if suggestion(model) and not Path(model).suffix:
        raise DlakitError(f"{model}: no such file or zoo network{suggestion(model)}; see dlakit zoo list")
    return None


def open_model(model: str | os.PathLike[str], shapes: ShapesArg = None, *, allow_dynamic: bool = False,
               form: str = "prepared", batch: int | None = None, outputs: list[str] | None = None) -> LoadedModel:
    """Load an ONNX file, or build the zoo network ``model`` names (in ``form``) when no such file exists.

    ``allow_dynamic``: keep inputs without ``shapes`` dynamic (check places their layers on the GPU).
    ``batch``: load at another batch size (a zoo network is built at it; a file's 4-D inputs are set to it).
    ``outputs``: cut the graph at these tensors before loading, so that control flow after the cut (which the
    loader refuses, naming ``--outputs`` as the way out) never reaches the loader.
    """
    model = os.fspath(model)
    if batch is not None:
        return _open_rebatched(model, shapes, batch)
    parsed = _shapes(shapes)
    proto = zoo_proto(model, form)
    if proto is not None:
        loaded = load_model(proto, parsed, allow_dynamic=allow_dynamic)
        loaded.source = model
        return loaded
    if outputs and Path(model).is_file():
        cut = _cut_before_control_flow(model, outputs)
        if cut is not None:
            loaded = load_model(cut, parsed, label=model, allow_dynamic=allow_dynamic)
            loaded.source = model
            return loaded
    return load_model(model, parsed, allow_dynamic=allow_dynamic)


def open_source(model: str, shapes: ShapesArg = None) -> tuple[onnx.ModelProto, LoadedModel]:
    """The model as a ModelProto (the file's own, external data loaded, or a zoo network) and its analysis form.

    The proto is kept because an output must be the user's file with only some tensors changed; the analysis form
    renames unnamed nodes and fixes the ``shapes`` given, which must not leak into the written model."""
    proto = zoo_proto(model) or read_model_proto(model)
    loaded = load_model(proto, _shapes(shapes))
    loaded.source = model
    return proto, loaded


def save_model(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Write ``proto`` atomically (temp file + rename); weights go to ``<name>.data`` beyond protobuf's 2 GiB."""
    from dlakit.atomic import write_with

    target = Path(path)

    def writer(tmp: Path) -> None:
        if proto.ByteSize() >= PROTO_LIMIT:
            onnx.save_model(proto, str(tmp), save_as_external_data=True, location=f"{target.name}.data")
        else:
            onnx.save_model(proto, str(tmp))

    write_with(target, writer)


def rebatch(proto: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """Set the batch (first) dimension of every 4-D input and forget inferred shapes that would contradict it."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for value in out.graph.input:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4:
            dims[0].Clear()
            dims[0].dim_value = batch
    del out.graph.value_info[:]
    for value in out.graph.output:
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = "batch"
    return out


def _open_rebatched(model: str, shapes: ShapesArg, batch: int) -> LoadedModel:
    if batch < 1:
        raise DlakitError(f"--batch: {batch} must be at least 1")
    if shapes:
        raise DlakitError("--batch and --shapes both set the input shape; give the batch inside --shapes")
    if Path(model).exists():
        proto = read_model_proto(model)
    else:
        proto = zoo_proto(model, "prepared", batch)
        if proto is None:
            return open_model(model)  # raises the usual "no such file" error
    loaded = load_model(rebatch(proto, batch), parse_shapes(None))
    loaded.source = model
    return loaded


def _cut_before_control_flow(model: str, outputs: list[str]) -> onnx.ModelProto | None:
    """The file cut at ``outputs`` when it holds control flow (else None: the loader cuts it as usual)."""
    proto = read_model_proto(model)
    if not any(n.op_type in CONTROL_FLOW_OPS for n in proto.graph.node):
        return None
    produced = {o for n in proto.graph.node for o in n.output} | {i.name for i in proto.graph.input}
    missing = [o for o in outputs if o not in produced]
    if missing:
        raise DlakitError(f"--outputs: tensor '{missing[0]}' is not in {model}")
    needed, keep = set(outputs), []
    for node in reversed(proto.graph.node):  # the nodes the new outputs depend on (the graph is topologically sorted)
        if needed & set(node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    cut = onnx.ModelProto()
    cut.CopyFrom(proto)
    del cut.graph.node[:]
    cut.graph.node.extend(reversed(keep))
    del cut.graph.output[:]
    cut.graph.output.extend(onnx.helper.make_empty_tensor_value_info(o) for o in outputs)
    return cut
