"""Read the user's model as it is on disk (or build a zoo network) and write the pruned copy atomically."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import onnx

from dlakit.atomic import write_with
from dlakit.errors import DlakitError
from dlakit.model import LoadedModel, load_model, parse_shapes
from dlakit.model.loader import read_model_proto

#: protobuf cannot serialise a message of 2 GiB or more; larger models get their tensors in a side file
PROTO_LIMIT = 2**31 - 1024


def read_source(model: str, shapes: str | None = None) -> tuple[onnx.ModelProto, LoadedModel]:
    """The model as a ModelProto (the file's own, external data loaded, or a zoo network) and its analysis form.

    We keep the proto because the output must be the user's file with only the pruned tensors changed; the
    analysis form (``load_model``) renames unnamed nodes and fixes the ``--shapes`` given, which must not leak into
    the written model.
    """
    path = Path(model)
    if not path.exists() and importlib.util.find_spec("dlakit.zoo") is not None:
        from dlakit import zoo

        if zoo.is_zoo_name(model):
            proto = zoo.build(model)
            loaded = load_model(proto, parse_shapes(shapes))
            loaded.source = model
            return proto, loaded
    proto = read_model_proto(path)
    loaded = load_model(proto, parse_shapes(shapes))
    loaded.source = model
    return proto, loaded


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    pa, pb = Path(a), Path(b)
    try:
        return pa.exists() and pb.exists() and pa.samefile(pb)
    except OSError:
        return False


def write_model(proto: onnx.ModelProto, out: str | os.PathLike[str]) -> None:
    """Write ``proto`` to ``out`` atomically; models over protobuf's 2 GiB limit keep their tensors in ``OUT.data``."""
    out = Path(out)
    if out.exists() and out.is_dir():
        raise DlakitError(f"-o {out}: is a directory; give the path of the .onnx file to write")
    if proto.ByteSize() < PROTO_LIMIT:
        write_with(out, lambda tmp: onnx.save_model(proto, str(tmp)))
        return
    location = out.name + ".data"
    (out.parent / location).unlink(missing_ok=True)  # save_model appends to an existing data file
    write_with(out, lambda tmp: onnx.save_model(proto, str(tmp), save_as_external_data=True,
                                                all_tensors_to_one_file=True, location=location))
