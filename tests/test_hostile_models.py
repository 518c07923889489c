"""Every command that reads an ONNX model answers a malformed or hostile one (tests/hostile.py) with success or one
line and exit 2: never a traceback, a memory exhaustion or a hang.

The fast matrix runs every case through check, fix (which reads the protobuf before loading it) and quantize, and one
case per category through every command; the full matrix (every case × every command, ~2,300 runs) is marked slow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.model.validate import TENSOR_BYTES_LIMIT
from tests import hostile
from tests.cli import run

LOG = str(Path(__file__).parent / "data" / "trt85_build.log")
FAST = ("check", "fix", "quantize")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Labelled images (calibration and evaluation data) and a calibration cache of the valid base model."""
    from PIL import Image

    root = tmp_path_factory.mktemp("hostile")
    for label in ("0", "1"):
        (root / "data" / label).mkdir(parents=True)
        for i in range(2):
            pixels = np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "data" / label / f"{i}.png")
    base = hostile.save(hostile.base_model(), root)
    done = run("quantize", str(base), "-c", str(root / "data"), "-o", str(root / "base_q"), "--no-progress")
    assert done.returncode == 0, done.stderr
    return root


def commands(model: str, out: Path, root: Path) -> dict[str, list[str]]:
    data, cache = str(root / "data"), str(root / "base_q" / "model.cache")
    return {
        "check": ["check", model],
        "fix": ["fix", model, "-o", str(out / "fixed.onnx")],
        "prepare": ["prepare", model, "-o", str(out / "prepared.onnx")],
        "estimate": ["estimate", model],
        "estimate-vs-gpu": ["estimate", model, "--vs-gpu"],
        "plan": ["plan", model, model],
        "sweep": ["sweep", model, "-o", str(out / "sweep")],
        "sparsify": ["sparsify", model, "-o", str(out / "sparse.onnx")],
        "quantize": ["quantize", model, "-c", data, "-o", str(out / "q"), "--no-progress"],
        "recover": ["recover", model, "-c", data, "-o", str(out / "r")],
        "emulate": ["emulate", model, "-i", data, "--calib-cache", cache, "--no-progress"],
        "emulate-qdq": ["emulate", model, "-i", data, "--qdq", "--no-progress"],
        "eval": ["eval", model, "-d", data, "--calib-cache", cache, "--no-progress"],
        "qdq-translate": ["qdq-translate", model, "-o", str(out / "t")],
        "qdq-from-cache": ["qdq-translate", model, "-o", str(out / "tc"), "--calib-cache", cache],
        "report": ["report", model, "-o", str(out / "report.html")],
        "trtexec": ["trtexec", model],
        "compare": ["compare", model, "--log", LOG],
    }


def assert_clean(result, what: str) -> None:
    """Exit 0 (or check's 3), or exit 2 with exactly one line on stderr; never a traceback."""
    assert "Traceback" not in result.stderr, f"{what}: {result.stderr[-2000:]}"
    assert result.returncode in (0, 2, 3), f"{what}: exit {result.returncode}: {result.stderr[-500:]}"
    if result.returncode == 2:
        lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("warning")]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: {result.stderr!r}"
        assert "\x1b" not in lines[0] and len(lines[0]) < 1500, f"{what}: unsafe message {lines[0][:300]!r}"


def run_case(name: str, root: Path, only: tuple[str, ...] | None = None) -> None:
    folder = root / name.replace(".", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = hostile.CASES[name](folder)
    for command, args in commands(str(path), folder / "out", root).items():
        if only is None or command in only:
            assert_clean(run(*args), f"{name} × {command}")


def _representatives() -> list[str]:
    first: dict[str, str] = {}
    for name in hostile.CASES:
        first.setdefault(name.split(".")[0], name)
    return sorted(set(first.values()) | {n for n in hostile.CASES if n in ("valid.base", "valid.no_dla_layer")})


@pytest.mark.parametrize("name", sorted(hostile.CASES))
def test_case_through_loading_commands(name, workdir):
    run_case(name, workdir, FAST)


@pytest.mark.parametrize("name", _representatives())
def test_case_through_every_command(name, workdir):
    run_case(name, workdir)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(hostile.CASES))
def test_full_matrix(name, workdir):
    run_case(name, workdir)


# --- the messages say what is wrong, where, and what to do ------------------------------------------------------
def _error(tmp_path: Path, name: str, *args: str) -> str:
    path = hostile.CASES[name](tmp_path)
    result = run(args[0] if args else "check", str(path), *args[1:])
    assert_clean(result, name)
    assert result.returncode == 2, result.stdout
    return result.stderr.strip()


@pytest.mark.parametrize("name, fragments", [
    ("graph.cycle", ("is on a cycle", "first")),
    ("graph.self_loop", ("node 'loop'", "cycle")),
    ("graph.dangling_input", ("node 'add'", "'ghost'", "no node, weight or graph input")),
    ("graph.two_producers", ("'y' is produced twice", "node 'two'")),
    ("graph.no_outputs", ("no outputs",)),
    ("tensor.raw_data_short", ("weight 'w'", "holds 7 bytes", "needs 432")),
    ("external.outside_folder", ("outside the model's folder", "onnx refuses")),
    ("external.symlink", ("symbolic link", "onnx refuses")),
    ("external.past_end", ("tensor 'w'", "weights.bin")),
    ("attr.conv_kernel_floats", ("node 'conv'", "kernel_shape", "FLOATS", "INTS")),
    ("attr.conv_group_zero", ("group 0",)),
    ("attr.conv_strides_empty", ("strides has 0 values",)),
    ("attr.conv_pads_short", ("pads has 2 values",)),
    ("attr.gather_axis_range", ("node 'gather_node'", "axis")),
    ("attr.softmax_axis_range", ("node 'softmax_node'", "axis", "9")),
    ("attr.pool_kernel_missing", ("lacks its required attribute 'kernel_shape'",)),
    ("ir.zero", ("IR version 0",)),
    ("opset.zero", ("opset 0",)),
    ("input.sequence", ("input 'x' is a sequence",)),
    ("dims.batch_2_31", ("2,147,483,648", "32-bit")),
    ("bomb.constant_of_shape_2d", ("node 'fill'", "2.0 GiB limit")),
    ("bomb.range", ("node 'range'", "limit per tensor")),
    ("bomb.tile", ("2.0 GiB",)),
    ("names.same_node_names", ("both named 'same'",)),
])
def test_message_names_the_problem(tmp_path, name, fragments):
    line = _error(tmp_path, name)
    for fragment in fragments:
        assert fragment in line, line


def test_hostile_names_are_escaped(tmp_path):
    # estimate refuses a dynamic input (check places its layers on the GPU instead, with the same hint as a note)
    line = _error(tmp_path, "names.dynamic_hostile_input", "estimate")
    assert "\x1b" not in line and "\\x1b" in line
    assert len(line) < 700  # a 5000-character name is shortened
    shown = run("check", str(hostile.CASES["names.dynamic_hostile_input"](tmp_path)))
    assert shown.returncode == 0 and "\x1b" not in shown.stdout and "\\x1b" in shown.stdout


def test_no_dla_layer_int8_commands_say_so(tmp_path, workdir):
    path = hostile.CASES["valid.no_dla_layer"](tmp_path)
    for command in ("quantize", "recover"):
        result = run(command, str(path), "-c", str(workdir / "data"), "-o", str(tmp_path / command))
        assert_clean(result, command)
        assert result.returncode == 2 and "no layer runs on the DLA in INT8" in result.stderr


def test_folding_refuses_before_allocating(tmp_path):
    """A 2^31-element ConstantOfShape is refused from its shape: nothing of that size is ever allocated."""
    import tracemalloc

    proto = onnx.load(hostile.CASES["bomb.constant_of_shape"](tmp_path))
    tracemalloc.start()
    with pytest.raises(DlakitError, match="limit per tensor"):
        load_model(proto)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < TENSOR_BYTES_LIMIT // 64


def test_loading_leaves_the_proto_untouched(tmp_path):
    proto = onnx.load(hostile.CASES["graph.cycle"](tmp_path))
    before = proto.SerializeToString()
    with pytest.raises(DlakitError):
        load_model(proto)
    assert proto.SerializeToString() == before
