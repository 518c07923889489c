"""Load an ONNX model the way TensorRT's parser sees it: static shapes, weights as constants.

Every problem a user can cause here is a :class:`~dlakit.errors.DlakitError` with one line that names the file,
node or input and says what to do next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from dlakit.errors import DlakitError
from dlakit.model.folding import propagate
from dlakit.model.shapes import Shapes, apply_input_shapes
from dlakit.model.validate import show, tensor_problem, validate_inferred, validate_model_proto

STANDARD_DOMAINS = ("", "ai.onnx")
CONTROL_FLOW_OPS = ("If", "Loop", "Scan", "SequenceMap")


@dataclass
class LoadedModel:
    """An ONNX model prepared for analysis: user shapes applied, names filled in, shapes inferred."""

    model: ir.Model
    source: str
    #: inputs left dynamic (only with ``allow_dynamic``), each with the --shapes hint that makes it static
    dynamic_inputs: list[str] = field(default_factory=list)

    @property
    def graph(self) -> ir.Graph:
        return self.model.graph

    @property
    def opset(self) -> int:
        return self.model.opset_imports.get("", self.model.opset_imports.get("ai.onnx", 1))


def max_supported_opset() -> int:
    """The newest default-domain opset the installed ONNX (and so dlakit's shape inference) understands."""
    return onnx.defs.onnx_opset_version()


def read_model_proto(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read an ONNX file and its external data, turning every failure into a one-line error."""
    path = Path(path)
    if not path.exists():
        raise DlakitError(f"{path}: no such file; pass the path of an .onnx model or a zoo name (dlakit zoo list)")
    if path.is_dir():
        raise DlakitError(f"{path}: is a directory; pass the path of an .onnx model file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise DlakitError(
            f"{path}: not a readable ONNX model (protobuf parsing failed: {_first_line(exc)}); "
            "the file may be truncated or of another format"
        ) from exc
    if not proto.graph.node and not proto.graph.input and not proto.graph.output:
        raise DlakitError(f"{path}: not an ONNX model (no graph found); export the network to ONNX first")
    _load_external_data(proto, path)
    validate_model_proto(proto, str(path))
    return proto


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Read weights kept beside the model. onnx refuses, for safety, locations outside the model's folder, absolute
    paths and symbolic links; dlakit keeps that refusal and says so."""
    base = path.parent
    helper = onnx.external_data_helper
    for tensor in helper._get_all_tensors(proto):
        if not helper.uses_external_data(tensor):
            continue
        name = show(tensor.name)
        try:
            info = helper.ExternalDataInfo(tensor)
        except (ValueError, TypeError) as exc:
            raise DlakitError(f"{path}: tensor '{name}' has a malformed external data entry ({_first_line(exc)}); "
                              "re-save the model with onnx.save(..., save_as_external_data=True)") from exc
        location = base / info.location if info.location else None
        if location is None or not location.is_file():
            raise DlakitError(
                f"{path}: tensor '{name}' keeps its data in external file '{show(info.location)}', "
                f"which was not found in {base}; copy it next to the model"
            )
        try:
            helper.load_external_data_for_tensor(tensor, str(base))
        except onnx.checker.ValidationError as exc:
            text = _first_line(exc)
            why = ("is a symbolic link" if "symbolic link" in text else "is an absolute path"
                   if "absolute path" in text else "points outside the model's folder")
            raise DlakitError(
                f"{path}: tensor '{name}' keeps its data in '{show(info.location)}', which {why}; onnx refuses such "
                f"external data for safety (and so does dlakit): copy the file itself into {base} and name it "
                "relative to the model"
            ) from exc
        except (OSError, ValueError) as exc:
            raise DlakitError(f"{path}: could not read the external data of tensor '{name}' from "
                              f"'{show(info.location)}' ({_first_line(exc)}); the file is truncated or the model's "
                              "offset/length are wrong: re-save the model") from exc
        problem = tensor_problem(tensor)
        if problem:
            raise DlakitError(f"{path}: tensor '{name}' read from '{show(info.location)}' {problem}; the external "
                              "file is truncated or does not belong to this model")


def validate_proto(proto: onnx.ModelProto, source: str) -> None:
    """Reject what neither dlakit nor TensorRT's DLA path can analyse, with the node and the remedy."""
    opset = next((o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS), None)
    if opset is None:
        raise DlakitError(f"{source}: the model imports no default ONNX opset; re-export it with a standard opset")
    newest = max_supported_opset()
    if opset > newest:
        raise DlakitError(
            f"{source}: model uses ONNX opset {opset}, newer than the {newest} dlakit supports; "
            f"re-export with opset {newest} or lower (torch.onnx.export(..., opset_version={newest}))"
        )
    for index, node in enumerate(proto.graph.node):
        name = node.name or f"#{index} ({node.op_type})"
        if node.domain not in STANDARD_DOMAINS:
            raise DlakitError(
                f"{source}: node '{name}' uses custom op '{node.domain}::{node.op_type}'; TensorRT would need a "
                "plugin for it and plugins never run on DLA; export with standard ONNX ops instead"
            )
        if node.op_type in CONTROL_FLOW_OPS:
            raise DlakitError(
                f"{source}: node '{name}' is a {node.op_type} (control flow), which DLA cannot run and dlakit "
                "cannot place; unroll it at export time or cut the model before it (dlakit fix --outputs)"
            )


def to_ir(proto: onnx.ModelProto) -> ir.Model:
    model = ir.serde.deserialize_model(proto)
    _drop_initializer_inputs(model.graph)
    _name_nodes(model.graph)
    return model


def _drop_initializer_inputs(graph: ir.Graph) -> None:
    """Old exporters list weights as graph inputs too; TensorRT treats them as weights, and so do we."""
    keep = [value for value in graph.inputs if value.name not in graph.initializers]
    if len(keep) != len(graph.inputs):
        graph.inputs.clear()
        graph.inputs.extend(keep)


def _name_nodes(graph: ir.Graph) -> None:
    """Give unnamed nodes the names TensorRT's ONNX parser gives their layers (``node_of_<first output>``)."""
    if all(node.name for node in graph):
        return
    used = {node.name for node in graph if node.name}
    for index, node in enumerate(graph):
        if node.name:
            continue
        first = node.outputs[0].name if node.outputs and node.outputs[0].name else f"{node.op_type}_{index}"
        name = f"node_of_{first}"
        while name in used:
            name += "_"
        node.name = name
        used.add(name)


def load_model(
    source: str | os.PathLike[str] | onnx.ModelProto,
    shapes: Mapping[str, tuple[int, ...]] | Shapes | None = None,
    label: str | None = None,
    allow_dynamic: bool = False,
) -> LoadedModel:
    """Load a model file (or proto), apply user shapes, infer shapes and fold what TensorRT folds at build time.

    ``label`` names a proto in error messages (the file it was read from); by default its graph name."""

    if isinstance(source, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(source)  # never touch the caller's model
        label = label or proto.graph.name or "<model>"
        validate_model_proto(proto, label)
    else:
        proto = read_model_proto(source)
        label = str(source)
    validate_proto(proto, label)
    model = to_ir(proto)
    hints = apply_input_shapes(model, shapes or {}, label, allow_dynamic)
    propagate(model, label)
    validate_inferred(model, label)
    return LoadedModel(model=model, source=label, dynamic_inputs=hints)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
