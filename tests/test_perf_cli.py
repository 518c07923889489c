"""``dlakit estimate`` on the command line: table, JSON fields, power-mode table, one-line errors."""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest
from typer.testing import CliRunner

from dlakit.cli import app, main
from tests.test_perf_nets import resnet

runner = CliRunner()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("perf") / "r18.onnx"
    onnx.save(resnet(18, (128, 128), batch=1), str(path))
    return str(path)


def invoke(*args: str):
    result = runner.invoke(app, ["estimate", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_json_has_the_documented_fields(model_path):
    data = json.loads(invoke(model_path, "--format", "json", "--release", "jp5"))
    for key in ("images_per_second", "latency_ms", "cores", "batch", "power_mode", "layers", "assumptions",
                "error_band"):
        assert key in data
    assert data["cores"] == 2 and data["batch"] == 1 and data["power_mode"] == "MAXN"
    layer = data["layers"][0]
    assert {"name", "device", "time_us", "bound", "macs", "bytes"} <= set(layer)
    assert data["assumptions"]["dla_mhz"] == 1600.0
    assert data["assumptions"]["calibration"]["version"]
    assert data["error_band"]["pct"] > 0
    split = data["split_ms"]
    total_us = sum(x["time_us"] for x in data["layers"]) + (split["transitions"] + split["launch"]) * 1e3
    assert total_us == pytest.approx(data["latency_ms"] * 1e3, rel=1e-3)
    # each DLA loadable (DLA subgraph) launched once per inference at the mode's Falcon clock
    from dlakit.perf.cost import loadable_seconds

    calib = data["assumptions"]["calibration"]
    loadables = data["assumptions"]["dla_loadables"]
    assert loadables >= 1 and data["assumptions"]["falcon_mhz"] == 844.8
    assert split["launch"] == pytest.approx(loadables * loadable_seconds(calib["launch_us_at_falcon_844_8"], 844.8)
                                            * 1e3, rel=1e-3)


def test_batch_cores_and_clock_overrides(model_path):
    base = json.loads(invoke(model_path, "--format", "json"))
    batched = json.loads(invoke(model_path, "--format", "json", "--batch", "4", "--cores", "1"))
    assert batched["batch"] == 4 and batched["cores"] == 1
    slow = json.loads(invoke(model_path, "--format", "json", "--dla-mhz", "400", "--emc-mhz", "1000"))
    assert slow["images_per_second"] < base["images_per_second"]
    assert "custom" in slow["power_mode"]
    assert slow["error_band"]["out_of_region"]


def test_table_and_all_power_modes(model_path):
    out = invoke(model_path, "--top", "5")
    assert "images/s" in out and "Per layer" in out and "Calibration" in out
    modes = invoke(model_path, "--all-power-modes")
    for mode in ("MAXN", "50W", "30W", "15W", "sparse", "dense"):
        assert mode in modes
    data = json.loads(invoke(model_path, "--all-power-modes", "--format", "json"))
    assert len(data["estimates"]) == 8  # 4 modes x dense/sparse


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--power-mode", "99W"], "not a power mode"),
        (["--platform", "orin-nano"], "no DLA"),
        (["--cores", "3"], "--cores"),
        (["--precision", "fp32"], "--precision"),
        (["--platform", "agx-xavier", "--sparse"], "sparsity"),
        (["--all-power-modes", "--power-mode", "15W"], "cannot be combined"),
        (["--format", "xml"], "--format"),
    ],
)
def test_bad_options_are_one_line_errors(model_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["estimate", model_path, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_model_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        main(["estimate", "no-such-model.onnx"])
    assert "no such file" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("dlakit.zoo") is None, reason="dlakit.zoo not available")
def test_zoo_name_estimates_with_batch():
    data = json.loads(invoke("resnet50", "--format", "json", "--batch", "2", "--release", "jp5"))
    assert data["batch"] == 2 and data["images_per_second"] > 0
    assert data["measured_images_per_second"] == 2037  # NVIDIA's MAXN figure: this case is a calibration row
    assert data["error_band"]["calibrated"]
    low, high = data["error_band"]["images_per_second_low"], data["error_band"]["images_per_second_high"]
    assert low <= 2037 <= high
    other = json.loads(invoke("resnet50", "--format", "json", "--batch", "4"))
    assert other["measured_images_per_second"] is None and not other["error_band"]["calibrated"]
