"""``--workers`` / ``--ray`` (dlakit.scale) and ``dlakit sweep``: sharded runs equal the serial run bit for bit on a
local two-worker Ray cluster; without Ray the flags say how to install it. Skipped where Ray is not installed
(``pip install dlakit[ray]``), except the tests of what happens without it."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from dlakit.cli import main
from dlakit.scale import batch_ranges
from dlakit.scale.sweep import without_wall_times
from tests.test_quant_cli import run

BATCH = 4


def classifier() -> onnx.ModelProto:
    """Conv → ReLU → Conv → global pool → Gemm: 10 logits, static batch 4 (so shards end in padded batches)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n) for n, s in
             (("w1", (8, 3, 3, 3)), ("b1", (8,)), ("w2", (8, 8, 3, 3)), ("fc", (8, 10)), ("fb", (10,)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "cls", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [BATCH, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module: 2 CPUs (two workers), a small object store, no dashboard. The
    commands find it running and use it rather than starting their own."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 << 20, logging_level=logging.ERROR,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The classifier, a calibration cache for it, 3 classes × 5 images, and tensors split over two .npy files."""
    tmp = tmp_path_factory.mktemp("scale")
    model = tmp / "cls.onnx"
    onnx.save(classifier(), model)
    rng = np.random.default_rng(1)
    tensors = tmp / "tensors"
    tensors.mkdir()
    np.save(tensors / "a.npy", rng.normal(size=(5, 3, 16, 16)).astype(np.float32))
    np.save(tensors / "b.npy", rng.normal(size=(6, 3, 16, 16)).astype(np.float32))
    for label in ("0", "3", "7"):
        (tmp / "val" / label).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp / "val" / label / f"{i}.png")
    try:
        main(["quantize", str(model), "--calib", str(tensors), "-o", str(tmp / "q"), "--no-progress", "-f", "json"])
    except SystemExit as exc:
        assert not exc.code
    return model, tmp


def test_batch_ranges_are_whole_batches():
    assert batch_ranges(15, 4, 2) == [(0, 8), (8, 15)]
    assert batch_ranges(15, 4, 8) == [(0, 4), (4, 8), (8, 12), (12, 15)]
    assert batch_ranges(3, 4, 4) == [(0, 3)]


def test_eval_with_workers_equals_serial(cluster, files, capsys):
    model, tmp = files
    args = ["eval", str(model), "--data", str(tmp / "val"), "--calib-cache", str(tmp / "q" / "cls.cache"),
            "--preset", "unit", "--no-progress", "-f", "json"]
    code, serial, err = run(capsys, *args)
    assert code == 0, err
    code, sharded, err = run(capsys, *args, "--workers", "2")
    assert code == 0, err
    assert json.loads(sharded) == json.loads(serial)
    assert json.loads(serial)["samples"] == 15


def test_eval_logits_with_workers_are_bit_identical(cluster, files):
    from dlakit.emulation import emulation_of
    from dlakit.quantize.data import make_preset
    from dlakit.quantize.emulate import join_outputs
    from dlakit.quantize.evaluate import labelled_images, logits
    from dlakit.scale import Pool, run_shards
    from dlakit.scale.data import DataSource, EvalJob, _eval_shard, shards_of
    from dlakit.targets import resolve_target

    model, tmp = files
    _, emulation = emulation_of(str(model), None, str(tmp / "q" / "cls.cache"), False, resolve_target(None, None))
    images, _ = labelled_images(tmp / "val")
    preset = make_preset("unit", None, None, None, None, None)
    fp32, int8 = logits(emulation.model, emulation.emulated.model, images, "x", (3, 16, 16), preset, BATCH, False)
    source = DataSource(images[0].parent, {"x": (3, 16, 16)}, images, "images", preset)
    where = Pool(cluster, 2)
    shards = shards_of(source, BATCH, where)
    assert len(shards) > 2 and all((s.payload.count % BATCH == 0) for s in shards[:-1])
    parts = run_shards(_eval_shard, EvalJob(emulation.model, emulation.emulated.model, BATCH), shards, where,
                       progress=False)
    assert np.array_equal(join_outputs([[b for p in parts for b in p[0]]])[0], fp32)
    assert np.array_equal(join_outputs([[b for p in parts for b in p[1]]])[0], int8)


def test_emulate_compare_with_workers_equals_serial(cluster, files, capsys):
    from dlakit.emulation import emulation_of
    from dlakit.quantize.data import open_source
    from dlakit.quantize.emulate import compare_layers
    from dlakit.scale import Pool
    from dlakit.scale.data import emulate_sharded
    from dlakit.targets import resolve_target

    model, tmp = files
    args = ["emulate", str(model), "--calib-cache", str(tmp / "q" / "cls.cache"), "--inputs", str(tmp / "tensors"),
            "--compare", "--no-progress", "-f", "json"]
    code, serial, err = run(capsys, *args)
    assert code == 0, err
    code, sharded, err = run(capsys, *args, "--workers", "2")
    assert code == 0, err
    assert json.loads(sharded) == json.loads(serial) and json.loads(serial)["samples"] == 11
    # the accumulated floats themselves, not only their rounded dB: shards cross the boundary of the two files
    _, emulation = emulation_of(str(model), None, str(tmp / "q" / "cls.cache"), False, resolve_target(None, None))
    source = open_source(tmp / "tensors", {"x": (3, 16, 16)})
    reference = compare_layers(emulation.model, emulation.emulated, source, BATCH, progress=False)
    _, layers = emulate_sharded(emulation, source, BATCH, True, Pool(cluster, 2), progress=False)
    assert [vars(e) for e in layers] == [vars(e) for e in reference]


def test_slice_source_reads_the_samples_of_its_range(files):
    from dlakit.quantize.data import open_source
    from dlakit.scale.data import slice_source

    _, tmp = files
    source = open_source(tmp / "tensors", {"x": (3, 16, 16)})
    every = [s["x"] for s in source.samples()]
    for start, stop in ((0, 4), (4, 8), (3, 6), (8, 11), (5, 6)):
        part = slice_source(source, start, stop)
        got = [s["x"] for s in part.samples()]
        assert len(part) == stop - start == len(got)
        assert all(np.array_equal(a, b) for a, b in zip(got, every[start:stop], strict=True))


SWEEP = ["--platform", "agx-orin-64gb", "--platform", "agx-xavier", "--release", "jetpack-6.2", "--release",
         "jetpack-5.1.1", "--power-mode", "MAXN", "--power-mode", "15W", "--no-progress"]


def test_sweep_with_workers_equals_serial_and_writes_csv_json_html(cluster, files, capsys):
    model, tmp = files
    code, serial, err = run(capsys, "sweep", str(model), "resnet50", *SWEEP, "-f", "json")
    assert code == 0, err
    code, sharded, err = run(capsys, "sweep", str(model), "resnet50", *SWEEP, "-f", "json", "--workers", "2",
                             "-o", str(tmp / "sweep"))
    assert code == 0, err
    a, b = json.loads(serial), json.loads(sharded)
    assert without_wall_times(a) == without_wall_times(b)
    # 2 models × (orin: 2 releases, xavier: jetpack-5.1.1 only) × 2 power modes
    assert a["combinations"] == 12 and len(a["rows"]) == 12
    assert [s["reason"] for s in a["skipped"]] == ["JetPack 6.2 does not support DLA on Jetson AGX Xavier"]
    assert [(r["model"], r["platform"], r["release"], r["power_mode"]) for r in a["rows"][:3]] == [
        (str(model), "agx-orin-64gb", "jetpack-6.2", "MAXN"), (str(model), "agx-orin-64gb", "jetpack-6.2", "15W"),
        (str(model), "agx-orin-64gb", "jetpack-5.1.1", "MAXN")]
    assert all(r["images_per_second"] > 0 for r in a["rows"])
    written = json.loads((tmp / "sweep" / "sweep.json").read_text())
    assert without_wall_times(written) == without_wall_times(a)
    csv = (tmp / "sweep" / "sweep.csv").read_text().splitlines()
    assert csv[0].startswith("model,platform,release,tensorrt,power_mode") and len(csv) == 13
    html = (tmp / "sweep" / "sweep.html").read_text()
    assert html.startswith("<!doctype html>") and "resnet50" in html and "Skipped combinations" in html
    assert not list((tmp / "sweep").glob(".*.tmp"))


def test_worker_failure_names_the_shard_and_the_file(cluster, files, capsys, tmp_path):
    model, _ = files
    for label in ("0", "1"):
        (tmp_path / label).mkdir()
        for i in range(6):
            Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "1" / "3.png").write_bytes(b"not a png")
    code, _, err = run(capsys, "eval", str(model), "--data", str(tmp_path), "--preset", "unit", "--no-progress",
                       "--workers", "2")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: shard ") and "failed" in lines[0] and "3.png: cannot read this image" in lines[0]


def test_sweep_names_unknown_inputs(capsys):
    for args, fragment in ((["resnet5"], "resnet5: no such file or zoo network"),
                           (["resnet50", "--power-mode", "99W"], "--power-mode: '99w' is not a power mode"),
                           (["resnet50", "--platform", "orin-nano"], "orin-nano"),
                           (["resnet50", "--format", "xml"], "--format")):
        code, _, err = run(capsys, "sweep", *args, "--no-progress")
        assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err


def test_without_ray_the_flags_say_how_to_install_it(files, capsys, monkeypatch):
    model, tmp = files
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    for args in (["sweep", str(model), "--workers", "2"], ["sweep", str(model), "--ray", "auto"],
                 ["eval", str(model), "--data", str(tmp / "val"), "--preset", "unit", "--workers", "2"]):
        code, _, err = run(capsys, *args, "--no-progress")
        assert code == 2 and err.strip().splitlines() == [err.strip()], err
        assert "needs Ray, which is not installed: pip install dlakit[ray]" in err
    code, out, err = run(capsys, "sweep", str(model), "--no-progress", "-f", "json")  # the serial path works
    assert code == 0 and json.loads(out)["combinations"] == 1, err


def test_workers_and_ray_are_exclusive_and_positive(files, capsys):
    model, _ = files
    for args, fragment in ((["--workers", "2", "--ray", "auto"], "give only one of them"),
                           (["--workers", "0"], "--workers: 0 must be at least 1")):
        code, _, err = run(capsys, "sweep", str(model), *args, "--no-progress")
        assert code == 2 and fragment in err, err


def test_recover_sensitivity_and_noise_budget_with_workers_equal_serial(cluster):
    from dlakit.model import load_model
    from dlakit.recover.observe import ArraySource
    from dlakit.recover.pipeline import RecoverOptions, recover
    from dlakit.scale import Pool
    from dlakit.scale.trials import sharder
    from tests.photos import _image, variants
    from tests.test_recover_pipeline import SIZE, _net

    photos = np.stack([v for i, n in enumerate(("astronaut", "coffee", "rocket", "chelsea"))
                       for v in variants(_image(n), 6, i, size=SIZE)])

    def run_recover(where):
        options = RecoverOptions(max_fp16_macs=0.3, noise_budget=True, timings=False, progress=False)
        options.trial_runner = sharder(where)
        return recover(load_model(_net()), ArraySource({"x": photos}), options)

    serial, sharded = run_recover(None), run_recover(Pool(cluster, 2))
    assert serial.mixed.measured  # the screening and measuring runs did happen
    assert [(c.tensor, c.sqnr_fp16_db) for c in sharded.mixed.measured] == [
        (c.tensor, c.sqnr_fp16_db) for c in serial.mixed.measured]
    assert sharded.mixed.fp16_nodes == serial.mixed.fp16_nodes and sharded.mixed.sqnr_db == serial.mixed.sqnr_db
    assert [(g.tensor, g.share) for g in sharded.budget.groups] == [(g.tensor, g.share) for g in serial.budget.groups]
    assert sharded.amax == serial.amax
    assert sharded.model.SerializeToString() == serial.model.SerializeToString()


def test_sweep_quantize_with_workers_equals_serial(cluster, files, capsys):
    model, tmp = files
    args = ["sweep", str(model), "--release", "jp6.2", "--release", "jp5.1.1", "--quantize", str(tmp / "tensors"),
            "--no-progress", "-f", "json"]
    code, serial, err = run(capsys, *args)
    assert code == 0, err
    code, sharded, err = run(capsys, *args, "--workers", "2")
    assert code == 0, err
    a = json.loads(serial)
    assert without_wall_times(json.loads(sharded)) == without_wall_times(a)
    assert [r["calibration_samples"] for r in a["rows"]] == [11, 11] and all(r["int8_tensors"] for r in a["rows"])


def test_ray_address_connects_to_a_running_cluster(cluster, files, capsys):
    """``--ray ADDRESS`` from another process (a second driver on the module's cluster); bad addresses are one
    line at once, not Ray's minutes of retries."""
    from tests.cli import run_subprocess

    model, _ = files
    address = cluster.get_runtime_context().gcs_address
    code, serial, err = run(capsys, "sweep", str(model), "--no-progress", "-f", "json")
    assert code == 0, err
    done = run_subprocess("sweep", str(model), "--no-progress", "-f", "json", "--ray", address, timeout=300)
    assert done.returncode == 0, done.stderr
    assert without_wall_times(json.loads(done.stdout)) == without_wall_times(json.loads(serial))
    done = run_subprocess("sweep", str(model), "--no-progress", "--ray", "127.0.0.1:1")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --ray 127.0.0.1:1: cannot reach the Ray cluster (Connection refused); check that it runs (ray start "
        "--head) and the address, or run without --ray"]


def wide_model() -> onnx.ModelProto:
    """Conv 3→10 on 67x67 (179,560 values a batch: sampled for the histogram, weight 2.9999...) → ReLU → Conv."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n) for n, s in
             (("w1", (10, 3, 3, 3)), ("w2", (4, 10, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, 3, 67, 67])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 4, 67, 67])
    graph = helper.make_graph(nodes, "wide", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("method", "first", "count"), [("entropy", 0.01, 4), ("percentile", 0.01, 4),
                                                        ("max", 0.01, 4), ("entropy", 0.0, 4), ("entropy", 0.0, 20)])
def test_quantize_with_workers_writes_the_serial_files(cluster, files, tmp_path, capsys, method, first, count):
    """The calibration cache and the scales are the serial run's byte for byte, on data whose maximum grows by a
    factor 10,000 after a small first batch (histogram ranges doubled many times, differently in each shard), or
    whose first batch (or first five: more than the driver measures for starting ranges) is all zeros (the wide
    model has no biases: no tensor has a starting range from them, and shards that start their own are measured
    again)."""
    model, tmp = files
    wide = tmp_path / "wide.onnx"
    onnx.save(wide_model(), wide)
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    data.mkdir()
    for i, (scale, n) in enumerate(zip((first, 1.0, 100.0, 0.5, 3.0), (count, 6, 6, 6, 5), strict=True)):
        np.save(data / f"{i}.npy", (rng.normal(size=(n, 3, 67, 67)) * scale).astype(np.float32))  # the last batch 3
    for path, calib in ((model, tmp / "tensors"), (wide, data)):
        written = []
        for extra in ([], ["--workers", "2"]):
            out = tmp_path / f"{path.stem}-{method}-{len(extra)}"
            code, _, err = run(capsys, "quantize", str(path), "--calib", str(calib), "-o", str(out), "-m", method,
                               "--no-progress", "-f", "json", *extra)
            assert code == 0, err
            scales = json.loads((out / f"{path.stem}_scales.json").read_text())
            scales.pop("calibration_seconds")
            scales.pop("files")
            written.append(((out / f"{path.stem}.cache").read_bytes(), scales))
        assert written[0] == written[1]


def _second_shard_bad_option(shared, payload):
    from dlakit.errors import OptionError

    if payload == 1:
        raise OptionError("{max_fp16_macs}: 2.0 is not a fraction of the MACs", "max_fp16_macs")
    return payload


def test_a_parameter_error_in_a_shard_still_names_the_flag():
    """A shard's OptionError stays one: the command line shows the flag, with the shard that failed."""
    from dlakit.cli import error_line
    from dlakit.errors import OptionError
    from dlakit.scale import Shard, _fail, _worker_run, run_shards

    shards = [Shard(i, f"samples {i}", i) for i in range(2)]
    with pytest.raises(OptionError) as serial:
        run_shards(_second_shard_bad_option, None, shards, None, progress=False)
    line = error_line(serial.value)
    assert line.startswith("shard 2/2 (samples 1) failed: --max-fp16-macs: 2.0") and "max_fp16_macs" not in line
    status, value = _worker_run(_second_shard_bad_option, None, 1, 0)  # what a Ray worker sends back
    assert status == "option"
    assert error_line(_fail(shards[1], 2, *value)) == line
