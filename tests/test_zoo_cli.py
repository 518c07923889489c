"""``dlakit zoo list`` and ``dlakit zoo build``: tables, JSON, atomic writes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from dlakit import zoo
from dlakit.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_shows_every_network(capsys):
    code, out, _ = _run(["zoo", "list"], capsys)
    assert code == 0
    for name in zoo.NETWORKS:
        assert name in out
    assert "1200x1200" in out and "NMS" in out and "25.53M" in out


def test_list_json_is_machine_readable():
    proc = subprocess.run([sys.executable, "-m", "dlakit", "zoo", "list", "--format", "json"],
                          capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout)
    by_name = {n["name"]: n for n in data["networks"]}
    assert list(by_name) == list(zoo.NETWORKS)
    r34 = by_name["ssd-resnet34"]
    assert r34["input"] == {"name": "input", "shape": [1, 3, 1200, 1200]}
    assert r34["cut_points"]["head.0"] == ["loc.0", "conf.0"]
    assert r34["published_gmacs_per_image"] == 216.5 and r34["params"] == zoo.NETWORKS["ssd-resnet34"].measured_params
    assert {"batch", "gmacs_per_image", "postprocess_on_gpu", "assumptions", "published_source"} <= set(r34)


def test_build_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "sub" / "ssd.onnx"
    code, stdout, _ = _run(["zoo", "build", "ssd-mobilenetv1", "-o", str(out), "--form", "published",
                            "--batch", "1"], capsys)
    assert code == 0 and "wrote" in stdout and "published" in stdout
    model = onnx.load(str(out))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 300, 300]
    assert {o.name for o in model.graph.output} == {"boxes", "scores", "selected_indices"}
    assert list(tmp_path.joinpath("sub").iterdir()) == [out]  # no temporary file left behind


def test_build_with_weights_and_json_record(tmp_path, capsys):
    shapes = zoo.parameter_shapes("resnet34-backbone")
    weights = tmp_path / "w.npz"
    np.savez(weights, **{k: np.full(s, 0.01, np.float32) for k, s in shapes.items()})
    out = tmp_path / "backbone.onnx"
    code, stdout, _ = _run(["zoo", "build", "resnet34-backbone", "-o", str(out), "--weights", str(weights),
                            "--format", "json"], capsys)
    assert code == 0
    record = json.loads(stdout)
    assert record["form"] == "prepared" and record["outputs"] == ["layer4.2_relu"]
    assert record["input"]["shape"] == [1, 3, 768, 1280] and record["weights"] == str(weights)
    assert out.stat().st_size == record["bytes"]


@pytest.mark.parametrize(("args", "message"), [
    (["zoo", "build", "resnet", "-o", "{tmp}/x.onnx"],
     "unknown zoo network 'resnet' (did you mean resnet50?); known networks: resnet50"),
    (["zoo", "build", "resnet50", "-o", "{tmp}/x.onnx", "--form", "raw"], "--form: 'raw' is not one of"),
    (["zoo", "build", "resnet50", "-o", "{tmp}/x.onnx", "--batch", "0"], "(--batch): 0 is not a positive"),
    (["zoo", "build", "resnet50", "-o", "{tmp}/x.onnx", "--weights", "{tmp}/none.npz"], "no such weights file"),
    (["zoo", "build", "resnet50", "-o", "{tmp}"], "is a directory"),
    (["zoo", "list", "--format", "xml"], "--format: 'xml' is not one of table, json"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    code, _, err = _run([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


def test_failed_write_leaves_no_file(tmp_path, capsys, monkeypatch):
    target = tmp_path / "r.onnx"
    target.write_bytes(b"previous")

    def broken_save(model, path):
        with open(path, "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        main(["zoo", "build", "resnet34-backbone", "-o", str(target)])
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["r.onnx"]
