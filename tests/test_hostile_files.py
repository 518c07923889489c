"""A corpus of hostile inputs other than ONNX models (images, tensors, caches, logs, profiles, COCO files, command
lines), each run through every command that reads it: the result is success or one ``error:`` line, exit 2."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from tests.cli import run
from tests.test_quant_plan import small_model


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` pixels (an image bomb), with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def _folder(tmp: Path, files: dict[str, bytes]) -> Path:
    folder = tmp / "data"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def _npy(tmp: Path, name: str, array: np.ndarray, allow_pickle: bool = False) -> Path:
    path = tmp / name
    np.save(path, array, allow_pickle=allow_pickle)
    return path


def _npz(tmp: Path, name: str, **arrays: np.ndarray) -> Path:
    path = tmp / name
    np.savez(path, **arrays)
    return path


def _file(tmp: Path, name: str, content: bytes | str) -> Path:
    path = tmp / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


#: calibration / evaluation data: name -> builder(tmp) -> path
DATA: dict[str, Callable[[Path], Path]] = {
    "truncated-jpeg": lambda t: _folder(t, {"a.jpg": _image_bytes("JPEG")[:100]}),
    "truncated-png": lambda t: _folder(t, {"a.png": _image_bytes("PNG")[:60]}),
    "zero-byte-jpeg": lambda t: _folder(t, {"a.jpg": b""}),
    "text-named-jpg": lambda t: _folder(t, {"a.jpg": b"this is not an image\n"}),
    "png-bomb": lambda t: _folder(t, {"a.png": _png_header_only(100_000, 100_000)}),
    "png-zero-size": lambda t: _folder(t, {"a.png": _png_header_only(0, 0)}),
    "empty-folder": lambda t: _folder(t, {}),
    "folder-of-other-files": lambda t: _folder(t, {"notes.txt": b"x"}),
    "object-npy": lambda t: _npy(t, "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
    "object-npz": lambda t: _npz(t, "o.npz", x=np.array([{"a": 1}], dtype=object)),
    "zero-byte-npy": lambda t: _file(t, "z.npy", b""),
    "garbage-npy": lambda t: _file(t, "g.npy", b"\x93NUMPY\x01\x00garbage"),
    "garbage-npz": lambda t: _file(t, "g.npz", b"PK\x03\x04garbage"),
    "string-npy": lambda t: _npy(t, "s.npy", np.array(["a"] * 192).reshape(1, 3, 8, 8)),
    "complex-npy": lambda t: _npy(t, "c.npy", np.ones((1, 3, 8, 8), np.complex64)),
    "bool-npy": lambda t: _npy(t, "b.npy", np.ones((2, 3, 8, 8), bool)),
    "int-npy": lambda t: _npy(t, "i.npy", np.ones((2, 3, 8, 8), np.int64)),
    "float16-npy": lambda t: _npy(t, "h.npy", np.ones((2, 3, 8, 8), np.float16)),
    "nan-npy": lambda t: _npy(t, "n.npy", np.full((2, 3, 8, 8), np.nan, np.float32)),
    "inf-npy": lambda t: _npy(t, "f.npy", np.full((2, 3, 8, 8), np.inf, np.float32)),
    "scalar-npy": lambda t: _npy(t, "sc.npy", np.float32(1.0)),
    "wrong-shape-npy": lambda t: _npy(t, "w.npy", np.ones((2, 3, 9, 8), np.float32)),
    "zero-samples-npy": lambda t: _npy(t, "e.npy", np.ones((0, 3, 8, 8), np.float32)),
    "wrong-name-npz": lambda t: _npz(t, "w.npz", nope=np.ones((1, 3, 8, 8), np.float32)),
    "empty-npz": lambda t: _npz(t, "e.npz"),
    "string-npz": lambda t: _npz(t, "s.npz", x=np.array(["a"] * 192).reshape(1, 3, 8, 8)),
    "complex-npz": lambda t: _npz(t, "c.npz", x=np.ones((1, 3, 8, 8), np.complex64)),
    "nan-npz": lambda t: _npz(t, "n.npz", x=np.full((1, 3, 8, 8), np.nan, np.float32)),
    "mixed-folder": lambda t: _folder(t, {"a.jpg": _image_bytes("JPEG"), "b.npy": b""}),
}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> tuple[Path, Path]:
    """The small model and its calibration cache (from 2 good samples), shared by the module's tests."""
    tmp = tmp_path_factory.mktemp("quantized")
    model = tmp / "small.onnx"
    onnx.save(small_model(), model)
    np.save(tmp / "ok.npy", np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32))
    assert run("quantize", str(model), "--calib", str(tmp / "ok.npy"), "-o", str(tmp / "q"),
               "--no-progress").returncode == 0
    return model, tmp / "q" / "small.cache"


def _assert_clean(result, command=(), allowed=(0, 2, 3)) -> None:
    assert "Traceback" not in result.stderr, (command, result.stderr[-1500:])
    assert result.returncode in allowed, (result.returncode, result.stderr)
    if result.returncode == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@pytest.mark.parametrize("kind", sorted(DATA))
def test_hostile_data_files(kind: str, quantized: tuple[Path, Path], tmp_path: Path) -> None:
    model, cache = quantized
    data = DATA[kind](tmp_path)
    commands = [
        ["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "out"), "--no-progress"],
        ["emulate", str(model), "--calib-cache", str(cache), "-i", str(data), "--no-progress"],
        ["recover", str(model), "--calib", str(data), "-o", str(tmp_path / "rec"), "--no-range-search"],
        ["report", str(model), "--calib", str(data), "-o", str(tmp_path / "r.html")],
    ]
    if data.suffix == ".npz":
        commands += [["fix", str(model), "-o", str(tmp_path / "f.onnx"), "--inputs", str(data)],
                     ["prepare", str(model), "-o", str(tmp_path / "p.onnx"), "--inputs", str(data)]]
    for command in commands:
        result = run(*command)
        _assert_clean(result, command)
        if result.returncode == 2:
            assert str(data) in result.stderr or kind in ("zero-samples-npy",), (command, result.stderr)


#: calibration caches: name -> text (or bytes)
CACHES: dict[str, str | bytes] = {
    "binary-garbage": bytes(range(256)) * 4,
    "zero-byte": b"",
    "header-only": "TRT-8601-EntropyCalibration2\n",
    "wrong-header": "TRT-abc-Entropy\nx: 3c010204\n",
    "no-header": "x: 3c010204\n",
    "nan-scale": "TRT-8601-EntropyCalibration2\nx: 7fc00000\n",
    "inf-scale": "TRT-8601-EntropyCalibration2\nx: 7f800000\n",
    "negative-scale": "TRT-8601-EntropyCalibration2\nx: bf800000\n",
    "zero-scale": "TRT-8601-EntropyCalibration2\nx: 00000000\nc1: 00000000\n",
    "subnormal-scale": "TRT-8601-EntropyCalibration2\nx: 00000001\n",
    "huge-scale": "TRT-8601-EntropyCalibration2\nx: 7f7fffff\nc1: 7f7fffff\n",
    "bad-hex": "TRT-8601-EntropyCalibration2\nx: zzzz\n",
    "long-hex": "TRT-8601-EntropyCalibration2\nx: 3c0102040506\n",
    "duplicate-tensor": "TRT-8601-EntropyCalibration2\nx: 3c010204\nx: 3c010204\n",
    "unknown-tensors": "TRT-8601-EntropyCalibration2\nnot_in_model: 3c010204\nother: 3c010204\n",
    "no-colon": "TRT-8601-EntropyCalibration2\njust a line\n",
    "utf16": "TRT-8601-EntropyCalibration2\nx: 3c010204\n".encode("utf-16"),
    "nul-bytes": "TRT-8601-EntropyCalibration2\nx\0: 3c010204\n",
    "crlf": "TRT-8601-EntropyCalibration2\r\nx: 3c010204\r\n",
    "huge-line": "TRT-8601-EntropyCalibration2\n" + "x" * 200_000 + ": 3c010204\n",
}


@pytest.mark.parametrize("kind", sorted(CACHES))
def test_hostile_calibration_caches(kind: str, quantized: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = quantized
    cache = _file(tmp_path, "bad.cache", CACHES[kind])
    data = tmp_path / "ok.npy"
    np.save(data, np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32))
    images = _folder(tmp_path, {})
    (images / "0").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "0" / "a.png")
    commands = [
        ["emulate", str(model), "--calib-cache", str(cache), "-i", str(data), "--no-progress", "--compare"],
        ["qdq-translate", str(model), "--calib-cache", str(cache), "-o", str(tmp_path / "qdq")],
        ["eval", str(model), "--calib-cache", str(cache), "-d", str(images), "--no-progress"],
        ["trtexec", str(model), "--calib", str(cache)],
    ]
    for command in commands:
        result = run(*command)
        _assert_clean(result, command)
        if result.returncode == 2 and command[0] != "trtexec":
            assert "bad.cache" in result.stderr, (command, result.stderr)
        if kind in ("huge-scale", "unknown-tensors", "header-only", "binary-garbage", "nan-scale", "bad-hex",
                    "duplicate-tensor") and command[0] != "trtexec":
            assert result.returncode == 2, (command, result.stderr)


def _good_profile() -> list:
    return json.loads((Path(__file__).parent / "data" / "profile.json").read_text())


#: trtexec build logs and --exportProfile files
LOGS: dict[str, str | bytes] = {
    "binary-garbage": bytes(range(256)) * 64,
    "zero-byte": b"",
    "utf16": "[I] [TRT] ---------- Layers Running on DLA ----------\n".encode("utf-16"),
    "huge-line": "[I] [TRT] " + "{ForeignNode[" * 50_000 + "\n",
    "json-instead": json.dumps(_good_profile()),
    "unterminated-block": "[I] [TRT] ---------- Layers Running on DLA ----------\n[I] [TRT] [DlaLayer] {ForeignNode[",
}
PROFILES: dict[str, str | bytes] = {
    "binary-garbage": bytes(range(256)) * 64,
    "zero-byte": b"",
    "object-not-list": json.dumps({"name": "x", "averageMs": 1}),
    "list-of-numbers": json.dumps([1, 2, 3]),
    "name-not-string": json.dumps([{"count": 1}, {"name": ["a"], "averageMs": 1.0}]),
    "name-number": json.dumps([{"count": 1}, {"name": 7, "averageMs": 1.0}]),
    "average-string": json.dumps([{"count": 1}, {"name": "{ForeignNode[a...b]}", "averageMs": "fast"}]),
    "average-null": json.dumps([{"count": 1}, {"name": "{ForeignNode[a...b]}", "averageMs": None}]),
    "average-negative": json.dumps([{"count": 1}, {"name": "{ForeignNode[a...b]}", "averageMs": -1.0}]),
    "average-huge": '[{"count": 1}, {"name": "{ForeignNode[a...b]}", "averageMs": 1e400}]',
    "average-nan": '[{"count": 1}, {"name": "{ForeignNode[a...b]}", "averageMs": NaN}]',
    "count-string": json.dumps([{"count": "many"}, {"name": "x", "timeMs": 5.0}]),
    "time-string": json.dumps([{"count": 1}, {"name": "x", "timeMs": "5"}]),
    "percentage-string": json.dumps([{"count": 1}, {"name": "x", "averageMs": 1.0, "percentage": "all"}]),
    "all-zero": json.dumps([{"count": 1}, {"name": "{ForeignNode[conv...relu]}", "averageMs": 0.0}]),
    "deep-nesting": "[" * 100_000 + "]" * 100_000,
    "no-entries": json.dumps([{"count": 1}]),
}


@pytest.mark.parametrize("kind", sorted(LOGS))
def test_hostile_build_logs(kind: str, quantized: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = quantized
    log = _file(tmp_path, "bad.log", LOGS[kind])
    result = run("compare", str(model), "--log", str(log))
    _assert_clean(result, kind)
    assert result.returncode == 2 and ("bad.log" in result.stderr or "build log" in result.stderr), result.stderr


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_hostile_profiles(kind: str, quantized: tuple[Path, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DLAKIT_PROFILE_DIR", str(tmp_path / "profiles"))
    model, _ = quantized
    profile = _file(tmp_path, "bad.json", PROFILES[kind])
    for command in (["compare", str(model), "--profile", str(profile)],
                    ["compare", str(model), "--profile", str(profile), "--refit", "board"]):
        result = run(*command)
        _assert_clean(result, command)
        if result.returncode == 2:
            assert "bad.json" in result.stderr or "--refit" in result.stderr, result.stderr


def _coco(images=None, annotations=None, categories=None) -> dict:
    return {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}] if images is None else images,
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]}] if annotations is None
            else annotations,
            "categories": [{"id": 1, "name": "thing"}] if categories is None else categories}


COCO: dict[str, str | bytes] = {
    "binary-garbage": bytes(range(256)) * 4,
    "zero-byte": b"",
    "list": json.dumps([1, 2]),
    "images-not-list": json.dumps({**_coco(), "images": {"id": 1}}),
    "image-not-object": json.dumps(_coco(images=[1])),
    "image-no-file": json.dumps(_coco(images=[{"id": 1, "width": 8, "height": 8}])),
    "image-huge-id": '{"images": [{"id": 1e400, "file_name": "a.png", "width": 8, "height": 8}], '
                     '"annotations": [], "categories": [{"id": 1}]}',
    "image-nan-width": '{"images": [{"id": 1, "file_name": "a.png", "width": NaN, "height": 8}], '
                       '"annotations": [], "categories": [{"id": 1}]}',
    "image-negative-size": json.dumps(_coco(images=[{"id": 1, "file_name": "a.png", "width": -8, "height": 0}])),
    "bbox-short": json.dumps(_coco(annotations=[{"image_id": 1, "category_id": 1, "bbox": [0, 0]}])),
    "bbox-strings": json.dumps(_coco(annotations=[{"image_id": 1, "category_id": 1, "bbox": ["a", 0, 1, 1]}])),
    "bbox-nan": '{"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}], "annotations": '
                '[{"image_id": 1, "category_id": 1, "bbox": [NaN, 0, Infinity, 1]}], "categories": [{"id": 1}]}',
    "bbox-number": json.dumps(_coco(annotations=[{"image_id": 1, "category_id": 1, "bbox": 5}])),
    "annotation-unknown-image": json.dumps(_coco(annotations=[{"image_id": 9, "category_id": 1,
                                                                "bbox": [0, 0, 1, 1]}])),
    "annotation-unknown-category": json.dumps(_coco(annotations=[{"image_id": 1, "category_id": 9,
                                                                   "bbox": [0, 0, 1, 1]}])),
    "duplicate-image-ids": json.dumps(_coco(images=[{"id": 1, "file_name": "a.png", "width": 8, "height": 8}] * 2)),
    "no-categories": json.dumps(_coco(categories=[])),
    "category-no-id": json.dumps(_coco(categories=[{"name": "x"}])),
    "no-images-match": json.dumps(_coco(images=[{"id": 1, "file_name": "zzz.png", "width": 8, "height": 8}])),
}


def _detector(path: Path) -> Path:
    """x [1,3,8,8] -> detections [1,64,6] (a 1x1 convolution per pixel): enough for eval --coco to read boxes."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).uniform(0, 1, (6, 3, 1, 1)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 6, 64], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Reshape", ["c", "shape"], ["r"], name="reshape"),
             helper.make_node("Transpose", ["r"], ["detections"], name="transpose", perm=[0, 2, 1])]
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, 64, 6])],
                              [w, shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.parametrize("kind", sorted(COCO))
def test_hostile_coco_files(kind: str, tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    model = _detector(tmp_path / "det.onnx")
    images = _folder(tmp_path, {"a.png": _image_bytes("PNG")})
    good = _file(tmp_path, "good.json", json.dumps(_coco()))
    assert run("eval", str(model), "-d", str(images), "--coco", str(good), "--no-progress").returncode == 0
    coco = _file(tmp_path, "bad.json", COCO[kind])
    result = run("eval", str(model), "-d", str(images), "--coco", str(coco), "--no-progress")
    _assert_clean(result, kind)
    assert result.returncode == 2 and ("bad.json" in result.stderr or "a.png" in result.stderr), result.stderr


ARGUMENTS: list[list[str]] = [
    ["check", "{model}", "--shapes", "x:"],
    ["check", "{model}", "--shapes", "x:1x3xAx8"],
    ["check", "{model}", "--shapes", "x:0x3x8x8"],
    ["check", "{model}", "--shapes", "x:-1x3x8x8"],
    ["check", "{model}", "--shapes", "x:99999999999999999999x3x8x8"],
    ["check", "{model}", "--shapes", "nope:1x3x8x8"],
    ["check", "{model}", "--shapes", "x:1x3x8x8,x:2x3x8x8"],
    ["check", "{model}", "--shapes", ":::,,,"],
    ["check", "{model}", "--platform", "nope"],
    ["check", "{model}", "--release", "nope"],
    ["check", "{model}", "--precision", "int4"],
    ["check", "{model}", "--format", "xml"],
    ["estimate", "{model}", "--batch", "0"],
    ["estimate", "{model}", "--batch", "-3"],
    ["estimate", "{model}", "--batch", "99999999999"],
    ["estimate", "{model}", "--cores", "0"],
    ["estimate", "{model}", "--cores", "99"],
    ["estimate", "{model}", "--dla-mhz", "0"],
    ["estimate", "{model}", "--dla-mhz", "nan"],
    ["estimate", "{model}", "--emc-mhz", "-5"],
    ["estimate", "{model}", "--emc-mhz", "inf"],
    ["estimate", "{model}", "--power-mode", "ludicrous"],
    ["estimate", "{model}", "--top", "-1"],
    ["estimate", "{model}", "--profile", "../../etc/passwd"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--method", "magic"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--percentile", "nan"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--num-samples", "0"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--num-samples", "-1"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--mean", "1,2"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--std", "0"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--std", "nan"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--scale", "inf"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--mean", "a,b,c"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--layout", "CHWN"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--preset", "nope"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--qdq-precision", "fp8"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--fp16-layers", "no_such_layer"],
    ["emulate", "{model}", "-i", "{data}", "--rounding", "up"],
    ["emulate", "{model}", "-i", "{data}", "--qdq", "--calib-cache", "{cache}"],
    ["eval", "{model}", "-d", "{tmp}", "--class-ids", "bogus", "--coco", "{tmp}/none.json"],
    ["eval", "{model}", "-d", "{tmp}", "--box-format", "xywh", "--coco", "{tmp}/none.json"],
    ["recover", "{model}", "--calib", "{data}", "-o", "{tmp}/r", "--max-fp16-macs", "2"],
    ["recover", "{model}", "--calib", "{data}", "-o", "{tmp}/r", "--max-fp16-macs", "nan"],
    ["recover", "{model}", "--calib", "{data}", "-o", "{tmp}/r", "--target-sqnr", "30", "--max-fp16-macs", "0.5"],
    ["recover", "{model}", "--calib", "{data}", "-o", "{tmp}/r", "--relu6", "sometimes"],
    ["recover", "{model}", "--calib", "{data}", "-o", "{tmp}/r", "--preset", "nope"],
    ["fix", "{model}", "-o", "{tmp}/f.onnx", "--tolerance", "-1"],
    ["fix", "{model}", "-o", "{tmp}/f.onnx", "--tolerance", "nan"],
    ["fix", "{model}", "-o", "{tmp}/f.onnx", "--rules", "no_such_rule"],
    ["fix", "{model}", "-o", "{tmp}/f.onnx", "--outputs", ","],
    ["prepare", "{model}", "-o", "{tmp}/p.onnx", "--network", "nope"],
    ["prepare", "{model}", "-o", "{tmp}/p.onnx", "--tolerance", "inf"],
    ["sparsify", "{model}", "-o", "{tmp}/s.onnx", "--mode", "random"],
    ["sparsify", "{model}", "-o", "{tmp}/s.onnx", "--min-gain", "nan"],
    ["sparsify", "{model}", "-o", "{tmp}/s.onnx", "--num-samples", "0", "--compare", "{data}"],
    ["sparsify", "{model}", "-o", "{tmp}/s.onnx", "--compare-int8"],
    ["zoo", "build", "resnet50", "-o", "{tmp}/z.onnx", "--batch", "0"],
    ["zoo", "build", "resnet50", "-o", "{tmp}/z.onnx", "--batch", "4294967297"],
    ["zoo", "build", "resnet50", "-o", "{tmp}/z.onnx", "--form", "weird"],
    ["zoo", "build", "resnet50", "-o", "{tmp}/z.onnx", "--seed", "-1"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--scale", "0"],
    ["quantize", "{model}", "--calib", "{data}", "-o", "{tmp}/q", "--mean", "inf"],
    ["trtexec", "{model}", "--core", "-1"],
    ["trtexec", "{model}", "--core", "7"],
    ["compare", "{model}"],
    ["compare", "{model}", "--log", "{data}", "--power-mode", "nope"],
    ["report", "{model}", "-o", "{tmp}/r.html", "--precision", "int3"],
]


@pytest.mark.parametrize("argv", ARGUMENTS, ids=[" ".join(a[:1] + a[2:])[:60] for a in ARGUMENTS])
def test_bad_arguments(argv: list[str], quantized: tuple[Path, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DLAKIT_PROFILE_DIR", str(tmp_path / "profiles"))
    model, cache = quantized
    data = model.parent / "ok.npy"
    args = [a.format(model=model, data=data, tmp=tmp_path, cache=cache) for a in argv]
    result = run(*args)
    assert "Traceback" not in result.stderr, result.stderr[-1500:]
    assert result.returncode == 2, (result.returncode, result.stdout[-500:])
    assert result.stderr.strip(), "a refusal says why"
