"""Output guarantees: no output replaces an input (same path, symbolic link, hard link, or a file a multi-file
output would put in a folder), and a failing or interrupted run (exception, Ctrl-C, SIGTERM) leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from dlakit.atomic import atomic_path, transaction, write_text
from dlakit.errors import DlakitError
from tests.cli import run
from tests.test_quant_plan import small_model


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden temporaries included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    model = tmp_path / "small.onnx"
    onnx.save(small_model(), model)
    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(0).normal(size=(4, 3, 8, 8)).astype(np.float32))
    assert run("quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q"), "--no-progress").returncode == 0
    return model, data, tmp_path / "q" / "small.cache"


def _single_output_commands(model: Path, data: Path, cache: Path, out: Path) -> list[list[str]]:
    return [["fix", str(model), "-o", str(out)],
            ["prepare", str(model), "-o", str(out)],
            ["sparsify", str(model), "-o", str(out)],
            ["report", str(model), "-o", str(out)],
            ["emulate", str(model), "--calib-cache", str(cache), "-i", str(data), "--no-progress",
             "--save-emulated", str(out)]]


@pytest.mark.parametrize("how", ["same-path", "other-spelling", "symlink", "hardlink"])
def test_an_output_naming_the_input_model_is_refused(files, how: str) -> None:
    model, data, cache = files
    out = {"same-path": model, "other-spelling": model.parent / "." / "q" / ".." / model.name,
           "symlink": model.parent / "link.onnx", "hardlink": model.parent / "hard.onnx"}[how]
    if how == "symlink":
        out.symlink_to(model)
    if how == "hardlink":
        os.link(model, out)
    before = _digest(model), _digest(data), _digest(cache)
    for command in _single_output_commands(model, data, cache, out):
        result = run(*command)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (command, result.stderr)
        assert "refusing to overwrite the input model" in lines[0], lines[0]
    assert (_digest(model), _digest(data), _digest(cache)) == before
    if how == "symlink":
        assert out.is_symlink()


def test_an_output_naming_an_input_data_file_is_refused(files) -> None:
    model, data, cache = files
    before = _digest(data), _digest(cache)
    for command in (["emulate", str(model), "--calib-cache", str(cache), "-i", str(data), "--no-progress",
                     "--save-emulated", str(data)],
                    ["report", str(model), "--calib", str(data), "-o", str(data)],
                    ["emulate", str(model), "--calib-cache", str(cache), "-i", str(data), "--no-progress",
                     f"--save-emulated={cache}"]):
        result = run(*command)
        assert result.returncode == 2 and "refusing to overwrite the input file" in result.stderr, result.stderr
    assert (_digest(data), _digest(cache)) == before


def test_a_multi_file_output_folder_never_overwrites_an_input_inside_it(files, tmp_path: Path) -> None:
    """quantize -o DIR writes DIR/small_scales.json; here that name is a hard link of the calibration data."""
    model, data, cache = files
    before = _digest(data)
    for command, name in ((["quantize", str(model), "--calib", str(data), "-o"], "small_scales.json"),
                          (["recover", str(model), "--calib", str(data), "--no-range-search", "-o"],
                           "small_recovery.json")):
        out = tmp_path / command[0]
        out.mkdir()
        os.link(data, out / name)
        result = run(*command, str(out))
        assert result.returncode == 2 and "refusing to overwrite the input file" in result.stderr, result.stderr
        assert _tree(out) == [name], _tree(out)  # nothing else written, not even the first files
    assert _digest(data) == before
    # qdq-translate into the folder of its input cache: the cache it would write is the input
    result = run("qdq-translate", str(model), "--calib-cache", str(cache), "-o", str(cache.parent))
    assert result.returncode == 2 and "input" in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["quantize", "recover", "qdq-translate"])
def test_a_multi_file_run_failing_at_its_last_file_leaves_nothing(files, tmp_path: Path, command: str) -> None:
    """The last file cannot be written (a folder is in its way): the files staged before it are removed too."""
    model, data, cache = files
    out = tmp_path / "out"
    last = {"quantize": "small_scales.json", "recover": "small_recovery.json", "qdq-translate": "small_scales.json"}
    (out / last[command]).mkdir(parents=True)
    argv = {"quantize": ["quantize", str(model), "--calib", str(data), "-o", str(out), "--no-progress"],
            "recover": ["recover", str(model), "--calib", str(data), "-o", str(out), "--no-range-search"],
            "qdq-translate": ["qdq-translate", str(model), "--calib-cache", str(cache), "-o", str(out)]}[command]
    result = run(*argv)
    assert result.returncode == 2 and "is a directory" in result.stderr, result.stderr
    assert _tree(out) == [last[command]], _tree(out)


def test_a_failing_run_removes_the_folders_it_created(files, tmp_path: Path) -> None:
    model, _, _ = files
    out = tmp_path / "new" / "deeper"
    (tmp_path / "blocker").mkdir()
    result = run("quantize", str(model), "--calib", str(tmp_path / "blocker"), "-o", str(out), "--no-progress")
    assert result.returncode == 2
    assert not (tmp_path / "new").exists()


def _interrupting_save(exception: type[BaseException]):
    real = onnx.save_model

    def save(proto, f, *args, **kwargs):  # half a file, then the interrupt
        Path(f).write_bytes(proto.SerializeToString()[:10])
        raise exception()
    return real, save


@pytest.mark.parametrize("command", ["fix", "prepare", "sparsify", "zoo", "quantize", "recover", "emulate"])
def test_an_interrupt_while_writing_leaves_nothing(files, tmp_path: Path, monkeypatch, command: str) -> None:
    model, data, cache = files
    out = tmp_path / "out"
    out.mkdir()
    argv = {"fix": ["fix", str(model), "-o", str(out / "m.onnx")],
            "prepare": ["prepare", str(model), "-o", str(out / "m.onnx")],
            "sparsify": ["sparsify", str(model), "-o", str(out / "m.onnx")],
            "zoo": ["zoo", "build", "resnet34-backbone", "-o", str(out / "m.onnx")],
            "quantize": ["quantize", str(model), "--calib", str(data), "-o", str(out), "--no-progress"],
            "recover": ["recover", str(model), "--calib", str(data), "-o", str(out), "--no-range-search"],
            "emulate": ["emulate", str(model), "--calib-cache", str(cache), "-i", str(data), "--no-progress",
                        "--save-emulated", str(out / "m.onnx")]}[command]
    _, save = _interrupting_save(KeyboardInterrupt)
    monkeypatch.setattr(onnx, "save_model", save)
    monkeypatch.setattr(onnx, "save", save)
    result = run(*argv)
    assert result.returncode == 130 and result.stderr.strip() == "interrupted", result.stderr
    assert _tree(out) == [], _tree(out)


def test_an_exception_in_a_writer_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and _tree(tmp_path) == ["a.txt"]


def test_a_transaction_commits_all_files_or_none(tmp_path: Path) -> None:
    with pytest.raises(DlakitError), transaction():
        write_text(tmp_path / "one.txt", "1")
        write_text(tmp_path / "sub" / "two.txt", "2")
        assert _tree(tmp_path) != [] and not (tmp_path / "one.txt").exists()  # staged, not yet in place
        raise DlakitError("a later step failed")
    assert _tree(tmp_path) == []
    with transaction():
        write_text(tmp_path / "one.txt", "1")
        write_text(tmp_path / "one.txt", "1 again")  # the last writer wins
        write_text(tmp_path / "sub" / "two.txt", "2")
    assert (tmp_path / "one.txt").read_text() == "1 again" and (tmp_path / "sub" / "two.txt").read_text() == "2"
    assert _tree(tmp_path) == ["one.txt", "sub", "sub/two.txt"]


def test_side_files_are_staged_with_their_model(tmp_path: Path) -> None:
    """External data written next to the temporary model moves with it (and never appears if the run fails)."""
    proto = small_model()
    target = tmp_path / "big.onnx"
    with pytest.raises(KeyboardInterrupt), transaction():
        with atomic_path(target) as tmp:
            onnx.save_model(proto, str(tmp), save_as_external_data=True, location="big.onnx.data",
                            size_threshold=0)
        raise KeyboardInterrupt
    assert _tree(tmp_path) == []
    with atomic_path(target) as tmp:  # a fresh proto: saving with external data rewrites the one given
        onnx.save_model(small_model(), str(tmp), save_as_external_data=True, location="big.onnx.data",
                        size_threshold=0)
    assert _tree(tmp_path) == ["big.onnx", "big.onnx.data"]
    loaded = onnx.load(str(target))  # reads big.onnx.data from the target's folder
    assert [t.name for t in loaded.graph.initializer] == [t.name for t in small_model().graph.initializer]
    assert onnx.numpy_helper.to_array(loaded.graph.initializer[0]).shape == (4, 3, 3, 3)


def test_sigterm_during_a_write_exits_143_and_leaves_nothing(files, tmp_path: Path) -> None:
    model, _, _ = files
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "writing"
    script = f"""
import sys, time
from pathlib import Path
import onnx
def slow_save(proto, f, *args, **kwargs):
    Path(f).write_bytes(b"half")
    Path({str(marker)!r}).touch()
    time.sleep(60)
onnx.save_model = onnx.save = slow_save
from dlakit.cli import main
main(["fix", {str(model)!r}, "-o", {str(out / "m.onnx")!r}])
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        for _ in range(600):  # wait for the writer to start (at most 60 s; no timing is asserted)
            if marker.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), process.communicate()[1]
        assert _tree(out) != []  # the temporary is there while writing
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143 and err.strip() == "terminated", err
    assert _tree(out) == [], _tree(out)
