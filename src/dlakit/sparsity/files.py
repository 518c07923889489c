"""Read the user's model as it is on disk (or build a zoo network) and write the pruned copy atomically."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from dlakit.atomic import write_with
from dlakit.errors import DlakitError
from dlakit.model import LoadedModel

#: protobuf cannot serialise a message of 2 GiB or more; larger models get their tensors in a side file
PROTO_LIMIT = 2**31 - 1024


def read_source(model: str, shapes: str | None = None) -> tuple[onnx.ModelProto, LoadedModel]:
    """The model as a ModelProto (the file's own, external data loaded, or a zoo network) and its analysis form
    (:func:`dlakit.sources.open_source`): the output must be the user's file with only the pruned tensors changed."""
    from dlakit.sources import open_source

    return open_source(model, shapes)


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
