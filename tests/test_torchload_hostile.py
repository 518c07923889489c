"""Crafted legacy ``torch.save`` files: every one is refused with one DlakitError line, none crashes or hangs.

torch is not needed: the files are written with the pure-Python pickler, whose globals (``torch._utils.
_rebuild_tensor_v2``, ``torch.FloatStorage``, ``os.system``) are emitted by name without importing anything, and
whose persistent ids are the storage records ``torch.save`` writes. The layout is torch's legacy one: magic number,
protocol version, system info, the state dict, the storage key list, then each storage's int64 element count and
little-endian bytes. Before the reader checked tensor records, ``offset past the end`` killed Python with SIGSEGV;
the corpus runs once in a subprocess (with an address-space limit) so a regression shows as a crash there rather
than killing pytest, and the ordinary cases run in-process too for clear failures.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import dlakit
from dlakit.errors import DlakitError
from dlakit.quantize.torchload import MAGIC_NUMBER, PROTOCOL_VERSION, load_torch_legacy

SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}


class G:
    """A global by name (pickled as GLOBAL module name; nothing is imported when writing)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # the pickler wants reduce functions callable
        raise AssertionError("never called")


class Storage:
    """A storage record: pickled as its persistent id; its data follows the key list."""

    def __init__(self, key: str, array: np.ndarray, type_name: str = "FloatStorage", numel: Any = None,
                 header: int | None = None, raw: bytes | None = None, view: Any = None,
                 storage_type: Any = None) -> None:
        self.key, self.array, self.type_name, self.view = key, array, type_name, view
        self.numel = array.size if numel is None else numel
        self.header = array.size if header is None else header
        self.raw = array.astype(array.dtype.newbyteorder("<")).tobytes() if raw is None else raw
        self.storage_type = G("torch", type_name) if storage_type is None else storage_type

    def pid(self) -> tuple[Any, ...]:
        return ("storage", self.storage_type, self.key, "cpu", self.numel, self.view)


class T:
    """A tensor record as torch.save writes it: _rebuild_tensor_v2(storage, offset, size, stride, grad, hooks)."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, args: tuple[Any, ...] | None = None,
                 state: Any = None, parameter: bool = False) -> None:
        self.args = (storage, offset, size, stride, False, collections.OrderedDict()) if args is None else args
        self.state, self.parameter = state, parameter

    def __reduce__(self) -> tuple[Any, ...]:
        rebuilt: Any = (G("torch._utils", "_rebuild_tensor_v2"), self.args) + (
            (self.state,) if self.state is not None else ())
        if self.parameter:
            return (G("torch._utils", "_rebuild_parameter"), (T(*self.args[:4]), False, collections.OrderedDict()))
        return rebuilt


class _Writer(pickle._Pickler):  # type: ignore[name-defined]  # the pure-Python pickler: its dispatch is a dict
    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def persistent_id(self, obj: Any) -> Any:
        return obj.pid() if isinstance(obj, Storage) else None

    def save_g(self, obj: G) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[G] = save_g


def dumps(obj: Any, protocol: int = 2) -> bytes:
    buffer = io.BytesIO()
    _Writer(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def legacy(state: Any, storages: list[Storage], keys: Any = None, trailing: bytes = b"", protocol: int = 2,
           main: bytes | None = None) -> bytes:
    """A legacy torch.save file of ``state`` (or the raw pickle ``main``) with ``storages``' data after it."""
    head = b"".join(pickle.dumps(v, protocol=2) for v in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO))
    keys = [s.key for s in storages] if keys is None else keys
    blobs = b"".join(struct.pack("<q", s.header) + s.raw for s in storages)
    return head + (dumps(state, protocol) if main is None else main) + pickle.dumps(keys, protocol=2) + blobs + trailing


def _base() -> Storage:
    return Storage("0", np.arange(12, dtype=np.float32))


def _one(tensor_args: tuple[Any, ...], **storage: Any) -> bytes:
    s = Storage("0", np.arange(12, dtype=np.float32), **storage)
    return legacy(collections.OrderedDict({"conv.weight": T(s, *tensor_args)}), [s])


def _nested_lists(depth: int) -> bytes:
    """A list nested ``depth`` deep through the memo (constant stack, no MARK), as the whole pickle."""
    out = [b"\x80\x02]r" + struct.pack("<I", 0)]
    for i in range(1, depth + 1):
        out.append(b"j" + struct.pack("<I", i - 1) + b"]r" + struct.pack("<I", i) + b"a0")
    return b"".join(out) + b"."


def _laughs(levels: int, tensor: bytes) -> bytes:
    """{"bomb": L, "w": tensor} where L_i = [L_(i-1), L_(i-1)]: 2**levels leaves if anything walked it."""
    out = [b"\x80\x02}(X\x04\x00\x00\x00bomb]r\x00\x00\x00\x00"]
    for i in range(1, levels + 1):  # drop L_(i-1) from the stack, push L_i = [L_(i-1), L_(i-1)]
        get = b"j" + struct.pack("<I", i - 1)
        out.append(b"0]r" + struct.pack("<I", i) + b"(" + get + get + b"e")
    return b"".join(out) + b"X\x01\x00\x00\x00w" + tensor + b"u."


def _corpus() -> dict[str, tuple[bytes, str, str | None]]:
    """name → (file bytes, fragment of the refusal, state-dict key the message must name or None)."""
    key = "conv.weight"
    s = _base()
    good = legacy(collections.OrderedDict({key: T(s, 0, (3, 4), (4, 1))}), [s])
    evil_system = b"\x80\x02cos\nsystem\nX\x0b\x00\x00\x00touch touch\x85R."  # would create ./touch
    code = b"open('touch', 'w')"
    evil_proto4 = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c" + bytes([len(code)]) + code + b"\x85R."
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", evil_system)
        archive.writestr("archive/data/0", bytes(48))
    other = Storage("1", np.zeros(2, np.float32))
    cases: dict[str, tuple[bytes, str, str | None]] = {
        "offset_past_end": (_one((20, (1,), (1,))), "reach element 20 of storage '0', which holds 12", key),
        "offset_plus_extent": (_one((10, (3,), (1,))), "reach element 12", key),
        "negative_offset": (_one((-1, (3,), (1,))), "storage offset -1 is not a non-negative integer", key),
        "negative_stride": (_one((0, (3, 4), (4, -1))), "stride (4, -1) is not a tuple", key),
        "huge_stride": (_one((0, (3, 4), (1 << 40, 1))), f"reach element {2 << 40 | 3}", key),
        "negative_size": (_one((0, (-3, 4), (4, 1))), "size (-3, 4) is not a tuple", key),
        "size_past_storage": (_one((0, (4, 4), (4, 1))), "reach element 15 of storage '0'", key),
        "float_size": (_one((0, (3.0, 4), (4, 1))), "size (a float, 4) is not a tuple", key),
        "too_many_dims": (_one((0, (1,) * 40, (1,) * 40)), "size a tuple of 40 items is not a tuple of at most 32",
                          key),
        "rank_mismatch": (_one((0, (3, 4), (1,))), "have different lengths", key),
        "broadcast_past_cap": (_one((0, (1 << 20, 1 << 20), (0, 0))), "past the cap on tensor data", key),
        "astronomic_size": (_one((0, (10 ** 2000,), (0,))), "-bit integer> bytes, past the cap", key),
        "storage_header_short": (_one((0, (3, 4), (4, 1)), header=11),
                                 "storage '0' (tensor 'conv.weight'): the file holds 11 elements, the pickle "
                                 "declares 12", key),
        "storage_header_negative": (_one((0, (3, 4), (4, 1)), header=-1), "the file holds -1 elements", key),
        "storage_huge_numel": (_one((0, (3, 4), (4, 1)), numel=1 << 60, header=1 << 60),
                               f"needs {4 << 60} bytes, the file has 48 left (truncated)", key),
        "storage_bytes_short": (_one((0, (3, 4), (4, 1)), raw=bytes(40)), "(truncated)", key),
        "pid_numel_negative": (_one((0, (3, 4), (4, 1)), numel=-5), "storage '0' declares -5 elements", None),
        "pid_numel_not_int": (_one((0, (3, 4), (4, 1)), numel="12"), "declares '12' elements", None),
        "unknown_storage_type": (_one((0, (3, 4), (4, 1)), type_name="ComplexFloatStorage"),
                                 "storage type torch.ComplexFloatStorage is not supported", None),
        "storage_type_not_a_class": (_one((0, (3, 4), (4, 1)), storage_type="FloatStorage"),
                                     "unsupported storage type 'FloatStorage'", None),
        "view_outside_storage": (_one((0, (3,), (1,)), view=("v", 10, 5)), "view ('v', 10, 5) does not lie inside",
                                 None),
        "storage_not_a_storage": (legacy({key: T(5, 0, (3,), (1,))}, []), "its storage is 5, not a torch storage",
                                  key),
        "short_tensor_record": (legacy({key: T(None, None, None, None, args=(s, 0))}, [s]),
                                "the tensor record has 2 fields", key),
        "build_on_tensor": (legacy({key: T(s, 0, (3, 4), (4, 1), state={"args": (s, 99, (1,), (1,))})}, [s]),
                            "BUILD on TensorRef is not allowed", None),
        "non_str_key": (legacy({5: T(s, 0, (3, 4), (4, 1))}, [s]), "a tensor is stored under 5, not a str key", None),
        "same_storage_two_types": (legacy({key: T(s, 0, (3,), (1,)), "b": T(Storage("0", s.array, "IntStorage"), 0,
                                                                          (3,), (1,))}, [s]),
                                   "storage '0' is declared as 12 x FloatStorage and as 12 x IntStorage", None),
        "missing_storage": (legacy({key: T(s, 0, (3, 4), (4, 1))}, [], keys=[]),
                            "storage '0' (tensor 'conv.weight') is referenced but has no data", key),
        "duplicate_storage_key": (legacy({key: T(s, 0, (3, 4), (4, 1))}, [s, s]), "storage key '0' is listed twice",
                                  None),
        "unreferenced_storage": (legacy({key: T(s, 0, (3, 4), (4, 1))}, [s, other]),
                                 "storage '1' has data in the file but no tensor refers to it", None),
        "key_list_not_list": (legacy({key: T(s, 0, (3, 4), (4, 1))}, [s], keys="0"), "storage key list is '0'",
                              None),
        "trailing_garbage": (good + b"junk", "4 bytes of unexpected data after the last storage", None),
        "bad_magic": (pickle.dumps(12345) + good[len(pickle.dumps(MAGIC_NUMBER, protocol=2)):], "bad magic number",
                      None),
        "os_system_state_dict": (legacy(None, [], main=evil_system), "refuses to load 'os.system'", None),
        "os_system_in_header": (evil_system + good, "global os.system not allowed here", None),
        "eval_protocol4": (legacy(None, [], main=evil_proto4), "refuses to load 'builtins.eval'", None),
        "newobj_opcode": (legacy(None, [], main=b"\x80\x02ccollections\nOrderedDict\n)\x81."),
                          "pickle opcode NEWOBJ at byte", None),
        "ext_opcode": (legacy(None, [], main=b"\x80\x02\x82\x01."), "pickle opcode EXT1", None),
        "persid_string": (legacy(None, [], main=b"\x80\x02X\x03\x00\x00\x00abcQ."),
                          "persistent id 'abc' is not a torch storage record", None),
        "pid_short_tuple": (legacy(None, [], main=b"\x80\x02X\x07\x00\x00\x00storage\x85Q."),
                            "persistent id ('storage',) is not a torch storage record", None),
        "undefined_memo_get": (legacy(None, [], main=b"\x80\x02h\x05."), "memo index 5 at byte",
                               None),
        "memo_index_4g": (legacy(None, [], main=b"\x80\x02]r\xff\xff\xff\x7f."), "memo index 2147483647", None),
        "bytes8_length_2e40": (legacy(None, [], main=b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"xx."),
                               "not a readable legacy torch.save file (state dict:", None),
        "mark_bomb": (legacy(None, [], main=b"\x80\x02" + b"(" * 100_000 + b"."), "nested deeper than 64", None),
        "deep_list": (legacy(None, [], main=_nested_lists(20_000)), "holds a list, not a state dict", None),
        "not_a_dict": (legacy([1, 2], []), "holds a list, not a state dict", None),
        "zip_hostile_data_pkl": (zipped.getvalue(), "is a zip-format torch.save file", None),
        "empty_file": (b"", "not a readable legacy torch.save file (magic number: pickle exhausted", None),
        "random_bytes": (bytes(range(256)) * 4, "not a readable legacy torch.save file", None),
    }
    for cut in (1, 30, len(good) // 2, len(good) - 60, len(good) - 49, len(good) - 1):
        cases[f"truncated_at_{cut}"] = (good[:cut], "", None)
    return cases


CASES = _corpus()
#: a regression on these would not be an exception but a crash or gigabytes: only run them in the subprocess
IN_SUBPROCESS_ONLY = {"offset_past_end", "huge_stride", "size_past_storage", "memo_index_4g", "bytes8_length_2e40",
                      "broadcast_past_cap", "storage_huge_numel"}


def _check_refusal(message: str, path: Path, fragment: str, key: str | None) -> None:
    assert "\n" not in message and message.startswith(f"{path}: "), message
    assert fragment in message, message
    if key is not None:
        assert f"'{key}'" in message, message


@pytest.mark.parametrize("name", sorted(set(CASES) - IN_SUBPROCESS_ONLY))
def test_hostile_file_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    data, fragment, key = CASES[name]
    path = tmp_path / f"{name}.pth"
    path.write_bytes(data)
    with pytest.raises(DlakitError) as info:
        load_torch_legacy(path)
    _check_refusal(str(info.value), path, fragment, key)


_RUNNER = r"""
import json, resource, sys
from pathlib import Path
from dlakit.errors import DlakitError
from dlakit.quantize.torchload import load_torch_legacy
# no load may take more address space than this on top of what the interpreter and numpy already hold
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), resource.RLIM_INFINITY))
for path in sorted(Path(sys.argv[1]).iterdir()):
    try:
        load_torch_legacy(path)
        outcome, message = "loaded", ""
    except DlakitError as exc:
        outcome, message = "refused", str(exc)
    except BaseException as exc:
        outcome, message = "bug", f"{type(exc).__name__}: {exc}"[:300]
    print(json.dumps([path.name, outcome, message]), flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address-space limit and /proc are Linux's")
def test_corpus_in_a_subprocess_never_crashes(tmp_path: Path) -> None:
    """All of the corpus in one child: a SIGSEGV or an allocation past the limit fails this test, not pytest."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, (data, _, _) in CASES.items():
        (corpus / f"{name}.pth").write_bytes(data)
    marker = tmp_path / "touch"
    env = {**os.environ, "PYTHONPATH": str(Path(dlakit.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(corpus)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    results = {name: (outcome, message) for name, outcome, message in map(json.loads, proc.stdout.splitlines())}
    assert len(results) == len(CASES)
    for name, (_, fragment, key) in CASES.items():
        outcome, message = results[f"{name}.pth"]
        assert outcome == "refused", (name, outcome, message)
        _check_refusal(message, corpus / f"{name}.pth", fragment, key)
    assert not marker.exists()  # os.system("touch") never ran (cwd is tmp_path)


def test_every_truncation_of_a_real_layout_is_refused(tmp_path: Path) -> None:
    s, ints = _base(), Storage("7", np.array([3, -1], np.int64), "LongStorage")
    data = legacy(collections.OrderedDict({"a.weight": T(s, 0, (3, 4), (1, 3)), "a.n": T(ints, 1, (), ())}),
                  [s, ints])
    path = tmp_path / "cut.pth"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(DlakitError) as info:
            load_torch_legacy(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    path.write_bytes(data)
    assert load_torch_legacy(path)["a.n"] == -1


def _strided_reference(flat: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> np.ndarray:
    """Element by element, the definition of a strided tensor: out[i] = flat[offset + sum(i * stride)]."""
    out = np.empty(size, flat.dtype)
    for index in np.ndindex(*size):
        out[index] = flat[offset + sum(i * s for i, s in zip(index, stride, strict=True))]
    return out


@pytest.mark.parametrize("protocol", [2, 4])
def test_well_formed_strided_tensors_load_to_their_values(tmp_path: Path, protocol: int) -> None:
    flat = np.arange(48, dtype=np.float32) * 0.5 - 3
    s = Storage("0", flat)
    halves = Storage("1", np.array([1.5, -2, 65504], np.float16), "HalfStorage")
    flags = Storage("2", np.array([0, 1, 2], np.uint8), "BoolStorage")
    count = Storage("3", np.array([7], np.int64), "LongStorage")
    records = {
        "transposed": (s, 0, (3, 4), (1, 3)),  # a (4, 3) matrix's transpose
        "channels_last": (s, 0, (4, 3, 2, 2), (1, 16, 8, 4)),  # the Lite0 wheel stores its convs like this
        "offset_slice": (s, 5, (2, 3), (10, 2)),
        "broadcast": (s, 7, (3, 2), (0, 1)),  # an expanded tensor: stride 0
        "empty": (s, 48, (0, 5), (5, 1)),
        "last_element": (s, 47, (1,), (1,)),
    }
    state = collections.OrderedDict((k, T(*v)) for k, v in records.items())
    state["halves"] = T(halves, 0, (3,), (1,))
    state["flags"] = T(flags, 0, (3,), (1,))
    state["num_batches_tracked"] = T(count, 0, (), ())
    state["param"] = T(s, 0, (2,), (1,), parameter=True)
    state["ignored"] = {"lr": 0.1}
    path = tmp_path / "ok.pth"
    path.write_bytes(legacy(state, [s, halves, flags, count], protocol=protocol))
    weights = load_torch_legacy(path)
    assert list(weights) == [*records, "halves", "flags", "num_batches_tracked", "param"]
    for name, (_, offset, size, stride) in records.items():
        want = _strided_reference(flat, offset, size, stride)
        assert weights[name].dtype == np.float32 and weights[name].shape == size
        np.testing.assert_array_equal(weights[name], want)
        assert weights[name].flags.c_contiguous and weights[name].flags.writeable
    np.testing.assert_array_equal(weights["transposed"], flat[:12].reshape(4, 3).T)
    np.testing.assert_array_equal(weights["channels_last"], flat.reshape(3, 2, 2, 4).transpose(3, 0, 1, 2))
    np.testing.assert_array_equal(weights["halves"], np.array([1.5, -2, 65504], np.float16))
    assert weights["flags"].tolist() == [False, True, True]
    assert weights["num_batches_tracked"].shape == () and weights["num_batches_tracked"] == 7
    np.testing.assert_array_equal(weights["param"], flat[:2])


def test_old_storage_views_and_bombs_beside_tensors(tmp_path: Path) -> None:
    """torch < 1.0 storage views load from their offset; a 2**60-leaf DAG next to a tensor is never walked."""
    s = Storage("0", np.arange(12, dtype=np.float32), view=("view", 4, 6))
    path = tmp_path / "view.pth"
    path.write_bytes(legacy({"v": T(s, 1, (2, 2), (1, 2))}, [s]))
    np.testing.assert_array_equal(load_torch_legacy(path)["v"], np.array([[5, 7], [6, 8]], np.float32))
    path.write_bytes(legacy({"v": T(s, 3, (2, 2), (1, 2))}, [s]))  # inside the storage, past the view's 6
    with pytest.raises(DlakitError, match=r"tensor 'v': .* reach element 6 of storage '0', which holds 6"):
        load_torch_legacy(path)
    plain = Storage("0", np.arange(12, dtype=np.float32))
    tensor = dumps(T(plain, 0, (3, 4), (4, 1)))[2:-1]
    path.write_bytes(legacy(None, [plain], main=_laughs(60, tensor)))
    assert list(load_torch_legacy(path)) == ["w"]


def test_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DlakitError, match="not a regular file"):
        load_torch_legacy(tmp_path)
    with pytest.raises(DlakitError, match="no such file"):
        load_torch_legacy(tmp_path / "absent.pth")


def _lite0_weights() -> dict[str, np.ndarray]:
    from tests.assets import asset
    from tests.test_quant_support import LITE0

    return load_torch_legacy(asset(*LITE0))


@pytest.mark.parametrize("change, expected", [
    (lambda w: w.pop("_blocks.3._bn1.running_var"), "EfficientNet-Lite0 state dict lacks _blocks.3._bn1.running_var"),
    (lambda w: w.update({"_blocks.2._project_conv.weight": w["_blocks.2._project_conv.weight"][:, :50]}),
     r"_blocks.2._project_conv.weight has shape \(24, 50, 1, 1\), expected \(24, 144, 1, 1\)"),
    (lambda w: w.update({"_bn0.bias": w["_bn0.bias"][:7]}), r"_bn0.bias has shape \(7,\), expected \(32,\)"),
    (lambda w: w.update({"_fc.weight": w["_fc.weight"][:, :9]}), r"_fc.weight has shape \(1000, 9\)"),
    (lambda w: w.update({"_conv_stem.weight": w["_conv_stem.weight"][0]}), r"_conv_stem.weight has shape \(3, 3, 3\)"),
])
def test_lite0_state_dict_that_does_not_fit_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          change: Callable[[dict[str, np.ndarray]], Any],
                                                          expected: str) -> None:
    import dlakit.quantize.reference as reference

    weights = dict(_lite0_weights())
    change(weights)
    monkeypatch.setattr(reference, "load_torch_legacy", lambda _path: weights)
    with pytest.raises(DlakitError, match=expected) as info:
        reference.efficientnet_lite0_from_file(tmp_path / "lite0.pth")
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{tmp_path / 'lite0.pth'}: ")
