"""The per-layer DLA model: data, fusion, MAC-array atoms, and the monotonic behaviour any DLA engineer expects."""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources

import numpy as np
import pytest

from dlakit.errors import DlakitError
from dlakit.model import load_model
from dlakit.perf import conditions_for, evaluate, load_perf_data, prepare
from dlakit.perf.band import extrapolations, widened
from dlakit.perf.cost import (
    Conditions,
    bank_rows,
    conv_cycles,
    conv_traffic,
    core_bandwidth,
    halo_factor,
    op_times,
    overhead_seconds,
    raw_costs,
    tensor_bytes,
    unit_cycles,
)
from dlakit.perf.hardware import parse_perf_data
from dlakit.perf.ops import build_ops
from dlakit.targets import resolve_target
from tests.test_perf_nets import mobilenet_v1, resnet, single_conv

ORIN = resolve_target("agx-orin-64gb", "jetpack-5.1.1")


@pytest.fixture(scope="module")
def r50():
    return prepare(load_model(resnet(50, batch=2)), ORIN, placement={})


@pytest.fixture(scope="module")
def r34():
    return prepare(load_model(resnet(34, (768, 1280), classes=None)), ORIN, placement={})


def run(prep, mode=None, **kw):
    calib = kw.pop("calib", None)
    cond, label = conditions_for(prep.target, mode, **kw)
    return evaluate(prep, cond, label, calib=calib)


def test_hardware_data_is_sourced_and_consistent():
    data = load_perf_data()
    orin, xavier = data.spec(2), data.spec(1)
    assert orin.int8_macs_per_clk == 8192 and xavier.int8_macs_per_clk == 2048
    assert orin.fp16_macs_per_clk < xavier.fp16_macs_per_clk  # NVIDIA: Orin traded FP16 for INT8
    assert orin.sram_bytes == 1 << 20 and orin.cbuf_bytes == 512 << 10
    for spec in (orin, xavier):
        assert all(p.source for p in spec.params.values())


def test_broken_perf_data_names_the_entry():
    raw = tomllib.loads(resources.files("dlakit.data").joinpath("perf.toml").read_text(encoding="utf-8"))
    raw["generation"]["2"]["atomic_k"] = {"value": 32}  # no source
    with pytest.raises(ValueError, match=r"generation\.2\.atomic_k"):
        parse_perf_data(raw)
    raw["generation"]["2"]["atomic_k"] = {"value": 64, "source": "x"}  # atoms no longer multiply to 8192
    with pytest.raises(ValueError, match="atomic_c x atomic_k"):
        parse_perf_data(raw)


def test_conv_bn_relu_residual_fuse_into_one_op(r50):
    convs = [op for op in r50.ops if op.kind in ("conv", "conv-image-input")]
    assert len(convs) == 53  # 1 stem + 16 blocks x 3 + 4 projections
    with_add = [op for op in convs if any(n.endswith("_add") for n in op.nodes)]
    assert len(with_add) == 16  # one residual add per bottleneck, fused with its ReLU
    assert all(len(op.inputs) == 2 for op in with_add)  # the skip tensor is read by the fused op
    assert sum(op.kind == "pool" for op in r50.ops) == 2


def test_depthwise_runs_on_its_own_unit():
    ops = build_ops(load_model(mobilenet_v1((224, 224))).graph)
    assert sum(op.kind == "depthwise" for op in ops) == 13
    assert all(op.unit == "dwp" for op in ops if op.kind == "depthwise")


def test_depthwise_rate_is_the_conv_core_block_diagonal_rate():
    """Depthwise is priced as the conv core with channels packed block-diagonally: atomic_k useful MACs per lane
    per cycle, the same cycles conv_cycles gives the equivalent grouped convolution. FP16: Orin's depth-wise
    processor halves its rate (element width, as the other side units); Xavier, without one, slows it like a conv."""
    spec = load_perf_data().spec(2)
    assert spec.depthwise_macs_per_clk == spec.atomic_k * spec.spatial_lanes
    op = next(op for op in build_ops(load_model(mobilenet_v1((224, 224))).graph) if op.kind == "depthwise")
    int8 = Conditions(1600, 3200, 204.8)
    grouped = dataclasses.replace(op, kind="conv")
    assert unit_cycles(op, spec, int8)[0] == pytest.approx(conv_cycles(grouped, spec, int8)[0], rel=0.02)
    fp16 = Conditions(1600, 3200, 204.8, precision="fp16")
    assert spec.depthwise_unit
    assert unit_cycles(op, spec, fp16)[0] == pytest.approx(2 * unit_cycles(op, spec, int8)[0])
    xavier = load_perf_data().spec(1)
    assert not xavier.depthwise_unit
    assert unit_cycles(op, xavier, fp16)[0] == pytest.approx(
        unit_cycles(op, xavier, int8)[0] * xavier.int8_macs_per_clk / xavier.fp16_macs_per_clk)


def _cycles(cin: int, cout: int = 64, precision: str = "int8", sparse: bool = False) -> float:
    op = next(op for op in build_ops(load_model(single_conv(cin, cout, 32)).graph) if not op.image_input)
    cond = Conditions(1600, 3200, 204.8, precision=precision, sparse=sparse)
    return conv_cycles(op, load_perf_data().spec(2), cond)[0]


def test_atomic_channel_groups_waste_lanes():
    assert _cycles(16) == _cycles(64)  # 16 channels fill a quarter of a 64-wide atom, same cycles
    assert _cycles(65) == 2 * _cycles(64)  # one channel over needs a second atom
    assert _cycles(64, 33) == 2 * _cycles(64, 32)
    spec = load_perf_data().spec(2)
    ratio = spec.int8_macs_per_clk / spec.fp16_macs_per_clk  # Orin FP16 conv rate (perf.toml, dla.md 3.6)
    assert ratio >= 32 and _cycles(256, precision="fp16") == pytest.approx(ratio * _cycles(256))
    assert _cycles(256, sparse=True) == _cycles(256) / 2
    assert _cycles(64, sparse=True) == _cycles(64)  # C must exceed 64 for DLA sparsity


def test_image_input_layer_uses_channel_extension(r50):
    stem = next(op for op in r50.ops if op.image_input)
    cond = Conditions(1600, 3200, 204.8)
    cycles, _ = conv_cycles(stem, load_perf_data().spec(2), cond)
    naive = stem.out_pixels / 4 * 49 * 2  # 7x7 taps, 1 C-atom, 2 K-atoms of 32, 4 spatial lanes
    ideal = stem.macs / 8192
    assert ideal < cycles < naive / 3


def test_lower_clocks_are_slower(r50):
    base = run(r50, "MAXN").images_per_second
    assert run(r50, "MAXN", dla_mhz=800).images_per_second < base
    assert run(r50, "MAXN", emc_mhz=1600).images_per_second < base
    modes = [run(r50, m).images_per_second for m in ("MAXN", "30W", "15W")]
    assert modes[0] > modes[1] > modes[2]


def test_two_cores_double_compute_bound_throughput(r34):
    roofline = dataclasses.replace(load_perf_data().calibration, overlap=1.0)
    two = run(r34, "15W", cores=2, calib=roofline)
    one = run(r34, "15W", cores=1, calib=roofline)
    assert 1.8 <= two.images_per_second / one.images_per_second <= 2.0
    assert one.out_of_region and "core" in " ".join(one.out_of_region)


def test_sparse_speeds_up_compute_bound_layers_only(r34):
    roofline = dataclasses.replace(load_perf_data().calibration, overlap=1.0)
    dense = run(r34, "MAXN", calib=roofline)
    sparse = run(r34, "MAXN", sparse=True, calib=roofline)
    assert sparse.images_per_second > dense.images_per_second
    for d, s in zip(dense.layers, sparse.layers, strict=True):
        assert s.time_us <= d.time_us + 1e-9
        # A CBUF-tiled layer's re-fetches add to its compute rather than hide it, so such a layer can be
        # memory-bound and still gain from sparsity; a layer without re-fetches gains only when compute-bound.
        if not s.sparse or (d.bound != "compute" and not d.refetch_bytes):
            assert s.time_us == pytest.approx(d.time_us)


def test_sparse_gain_grows_as_compute_gets_scarcer(r34):
    gains = []
    for mode in ("MAXN", "30W", "15W"):
        gains.append(run(r34, mode, sparse=True).images_per_second / run(r34, mode).images_per_second)
    assert gains[2] >= gains[0] - 1e-9
    assert all(g >= 1 for g in gains)


def test_batch_runs_image_by_image():
    """The DLA runs a batch as one hardware op per image (per-op overhead and tiling per image), sharing the
    weight fetch where the tiling keeps weights and the one launch of the loadable, each image with the SRAM
    pool: apart from those, the time per image does not change with the batch, and latency grows about
    linearly."""
    one = prepare(load_model(resnet(50, batch=1)), ORIN, placement={})
    four = prepare(load_model(resnet(50, batch=4)), ORIN, placement={})
    r1, r4 = run(one), run(four)
    assert r1.split_ms["launch"] == pytest.approx(r4.split_ms["launch"]) and r1.split_ms["launch"] > 0
    per_image_1 = r1.latency_ms - r1.split_ms["launch"]
    per_image_4 = (r4.latency_ms - r4.split_ms["launch"]) / 4
    assert 0.6 * per_image_1 < per_image_4 <= per_image_1  # ResNet-50's late layers are weight-fetch bound
    assert r4.split_ms["compute"] == pytest.approx(4 * r1.split_ms["compute"], rel=0.02)  # FC: multi-batch
    assert r4.images_per_second >= r1.images_per_second  # weights and the launch shared, never more per image
    assert r4.latency_ms > 2.5 * r1.latency_ms
    assert r4.split_ms["overhead"] == pytest.approx(4 * r1.split_ms["overhead"], rel=0.03)  # FC: one op per batch
    assert "unseen_batch" in r4.assumptions["error_band_widened_for"]
    assert r4.error_band_pct > r1.error_band_pct


def test_fp16_and_xavier_are_flagged_outside_calibration(r50):
    fp16 = run(r50, precision="fp16")
    assert fp16.images_per_second < run(r50).images_per_second
    assert any("FP16" in r for r in fp16.out_of_region)
    data = load_perf_data()
    tags = fp16.assumptions["error_band_widened_for"]
    assert "fp16" in tags and "fp16" not in run(r50).assumptions["error_band_widened_for"]
    assert fp16.error_band_pct == widened(data.calibration.error_band_pct, tags, data)
    assert fp16.error_band_pct >= data.calibration.error_band_pct * data.band["fp16"].value - 0.1
    xavier = prepare(load_model(resnet(50, batch=2)), resolve_target("agx-xavier"), placement={})
    est = run(xavier)
    assert any("first-generation" in r for r in est.out_of_region)
    assert est.images_per_second < run(r50).images_per_second
    with pytest.raises(DlakitError, match="sparsity"):
        run(xavier, sparse=True)


def test_gpu_fallback_is_priced_apart(r50):
    gap = next(op.name for op in r50.ops if op.kind == "pool" and "gap" in op.name)
    placed = prepare(load_model(resnet(50, batch=2)), ORIN, placement={gap: "gpu"})
    est = run(placed)
    assert est.split_ms["gpu"] > 0 and est.split_ms["transitions"] > 0
    assert est.assumptions["transitions"] == 2
    assert any("GPU" in r for r in est.out_of_region)
    assert est.images_per_second < run(r50).images_per_second


def test_each_dla_loadable_pays_one_launch(r50):
    """A GPU layer in the middle splits the network into two DLA loadables, each launched once per inference (at
    the Falcon clock: a 15W launch costs 844.8 / 294.4 times the MAXN one); a whole-DLA network has one."""
    whole = run(r50)
    assert whole.assumptions["dla_loadables"] == 1 and whole.split_ms["launch"] > 0
    gap = next(op.name for op in r50.ops if op.kind == "pool" and "gap" in op.name)
    split = run(prepare(load_model(resnet(50, batch=2)), ORIN, placement={gap: "gpu"}))
    assert split.assumptions["dla_loadables"] == 2
    assert split.split_ms["launch"] == pytest.approx(2 * whole.split_ms["launch"])
    assert run(r50, "15W").split_ms["launch"] == pytest.approx(whole.split_ms["launch"] * 844.8 / 294.4)


def test_depthwise_efficiency_slows_only_the_depthwise_ops():
    """The fitted depthwise efficiency (perf.toml [calibration]) applies to depthwise ops, the compute efficiency
    to the others."""
    calib = load_perf_data().calibration
    assert 0 < calib.depthwise_efficiency < 1
    cycles, zeros, ones = np.array([1.6e6, 1.6e6]), np.zeros(2), np.ones(2)
    mask = np.array([True, False])
    _, compute, _ = op_times(cycles, zeros, ones, calib, 1600, 1e11, depthwise=mask)
    assert compute[0] == pytest.approx(1e-3 / calib.depthwise_efficiency)
    assert compute[1] == pytest.approx(1e-3 / calib.compute_efficiency)


def test_bad_inputs_give_one_line_errors(r50):
    with pytest.raises(DlakitError, match="not a power mode"):
        run(r50, "42W")
    with pytest.raises(DlakitError, match="--cores"):
        run(r50, cores=3)
    with pytest.raises(DlakitError, match="no DLA"):
        resolve_target("orin-nano")
    with pytest.raises(DlakitError, match="--precision"):
        prepare(load_model(resnet(18, (64, 64))), ORIN, precision="fp32")


def test_cbuf_tiled_convolutions_pay_for_their_refetches():
    """A conv whose weights and input overflow the CBUF re-reads weights or input (and halo rows) from DRAM, and
    those re-fetches add to its time; one that fits is a plain roofline of compute and streamed traffic."""
    data = load_perf_data()
    spec = data.spec(2)
    cond = Conditions(1600, 3200, 204.8)

    def priced(cin, cout, hw, k):
        graph = load_model(single_conv(cin, cout, hw, k)).graph
        ops = build_ops(graph)
        index = next(i for i, op in enumerate(ops) if op.kind == "conv" and not op.image_input)
        raws = raw_costs(ops, data, spec, cond)
        return ops[index], raws[index]

    _, small = priced(64, 64, 32, 3)
    assert small.refetch_bytes == 0
    big_op, big = priced(256, 256, 150, 3)  # SSD-ResNet-34's conv4_x: 576 KiB of weights, 5.8 MB of input
    assert 0 < big.refetch_bytes < big.dram_bytes
    assert halo_factor(big_op, tensor_bytes(big_op.inputs[0], cond, spec), spec.cbuf_bytes / 2) > 1.0
    one_by_one, _ = priced(256, 256, 150, 1)
    assert halo_factor(one_by_one, tensor_bytes(one_by_one.inputs[0], cond, spec), spec.cbuf_bytes / 2) == 1.0
    calib = load_perf_data().calibration
    time, compute, memory = op_times(np.array([big.cycles]), np.array([big.dram_bytes]), np.array([1.0]), calib,
                                     1600, core_bandwidth(spec, cond), 3200, np.array([big.refetch_bytes]))
    roofline, _, _ = op_times(np.array([big.cycles]), np.array([big.dram_bytes]), np.array([1.0]), calib, 1600,
                              core_bandwidth(spec, cond), 3200)
    assert time[0] > roofline[0]
    streamed = memory[0] * (1 - big.refetch_bytes / big.dram_bytes)
    assert time[0] == pytest.approx(max(compute[0], streamed) + memory[0] - streamed
                                    + overhead_seconds(calib.op_overhead_us, 3200))


def test_band_widens_per_extrapolation():
    data = load_perf_data()
    base = dict(generation=2, fit_platform=True, precision="int8", cores=2, batch=1, kinds=["conv"])
    assert extrapolations(**base) == []
    assert widened(10.0, [], data) == 10.0
    tags = extrapolations(**{**base, "generation": 1, "precision": "fp16", "batch": 16, "kinds": ["depthwise"]})
    assert set(tags) == {"xavier", "fp16", "unseen_batch", "depthwise"}
    assert widened(10.0, ["depthwise"], data) > 10.0
    assert widened(10.0, tags, data) <= 90.0  # capped: a band past -90% says nothing more
    raw = tomllib.loads(resources.files("dlakit.data").joinpath("perf.toml").read_text(encoding="utf-8"))
    raw["band"]["fp16"] = {"value": 0.5, "source": "x"}
    with pytest.raises(ValueError, match=r"band\.fp16"):
        parse_perf_data(raw)


def test_orin_fp16_is_an_order_of_magnitude_slower_than_int8():
    """NVIDIA measured ResNet-50 on one DRIVE Orin DLA at 13.7x slower in FP16 than INT8 (dla.md 3.6); half the INT8
    rate (the pre-issue-21 guess gave ~4.5x overall) is far off."""
    drive = resolve_target("drive-orin")
    int8 = prepare(load_model(resnet(50, batch=1)), drive, placement={})
    fp16 = prepare(load_model(resnet(50, batch=1)), drive, "fp16", placement={})
    ratio = (evaluate(fp16, *conditions_for(drive, cores=1, precision="fp16")).latency_ms
             / evaluate(int8, *conditions_for(drive, cores=1)).latency_ms)
    assert 11.0 <= ratio <= 17.0


def test_cbuf_stripes_hold_bank_aligned_rows():
    """A row just over a 32 KiB bank wide takes two banks: SSD-ResNet-34's 150-pixel, 256-channel INT8 rows fit 4 to
    eight data banks (6 packed), so its 3x3 convolutions read more halo rows and re-fetch more."""
    spec = load_perf_data().spec(2)
    bank = spec.cbuf_bytes / spec.cbuf_banks
    row = 256 * 150.0
    assert bank_rows(row, 8 * bank, bank) == 4
    assert bank_rows(row, 8 * bank, 0.0) == 6
    assert bank_rows(20 * 1024.0, 8 * bank, bank) == 8  # one row per bank below a bank's width
    graph = load_model(single_conv(256, 256, 150, 3)).graph
    op = next(o for o in build_ops(graph) if o.kind == "conv" and not o.image_input)
    main = 256 * 150 * 150.0
    aligned = conv_traffic(op, 589824.0, main, True, 1, spec, 8, aligned=True)
    packed = conv_traffic(op, 589824.0, main, True, 1, spec, 8, aligned=False)
    assert aligned[1] > packed[1] > 0
    assert halo_factor(op, main, 8 * bank, bank) > halo_factor(op, main, 8 * bank)


def test_batch_shares_the_weight_fetch_only_where_the_tiling_keeps_weights():
    """Images of a batch are separate hardware ops: weights resident in the CBUF (or the stationary chunk) serve all
    of them, while an input-stationary tiling re-streams every weight for each stripe of each image."""
    spec = load_perf_data().spec(2)
    graph = load_model(single_conv(64, 64, 32, 3)).graph
    small = next(o for o in build_ops(graph) if o.kind == "conv" and not o.image_input)
    w = 64 * 64 * 9.0
    one = conv_traffic(small, w, 64 * 32 * 32.0, True, 1, spec, 8)
    two = conv_traffic(small, w, 64 * 32 * 32.0, True, 2, spec, 8)
    assert two[0] - one[0] == pytest.approx(64 * 32 * 32.0)  # second image: input only, no second weight fetch
    graph = load_model(single_conv(256, 256, 150, 3)).graph
    big = next(o for o in build_ops(graph) if o.kind == "conv" and not o.image_input)
    w, main = 589824.0, 256 * 150 * 150.0
    one = conv_traffic(big, w, main, False, 1, spec, 8)  # input resident in SRAM: weight-stationary, weights once
    two = conv_traffic(big, w, main, False, 2, spec, 8)
    assert one[0] == two[0] == w
    heavy, small_input = 16 * 589824.0, 600 * 1024.0  # input-stationary: a few stripes, weights per stripe per image
    one = conv_traffic(big, heavy, small_input, True, 1, spec, 8)
    two = conv_traffic(big, heavy, small_input, True, 2, spec, 8)
    assert one[0] > 2 * heavy and two[0] - one[0] > heavy  # the second image does not ride on the first's weights


def test_each_image_of_a_batch_has_the_sram_pool():
    """[model] sram_per_image (perf.toml, chosen by the fit's two batch-2 networks): a batch-4 network keeps on chip
    what the batch-1 one does, so its DRAM traffic per image is no more than at batch 1 (weights are shared);
    with one pool for the whole batch its batch-4 tensors spill to DRAM."""
    from dlakit.perf.calibrate import with_model

    data = load_perf_data()
    assert data.model["sram_per_image"].value == 1
    one = prepare(load_model(resnet(50, batch=1)), ORIN, placement={})
    four = prepare(load_model(resnet(50, batch=4)), ORIN, placement={})

    def dram_per_image(prep, batch, per_image):
        variant = with_model(data, {"sram_per_image": per_image})
        est = evaluate(prep, *conditions_for(ORIN), data=variant)
        return sum(layer.bytes for layer in est.layers) / batch

    assert dram_per_image(four, 4, 1) <= dram_per_image(one, 1, 1)
    assert dram_per_image(four, 4, 0) > 1.2 * dram_per_image(four, 4, 1)
    assert dram_per_image(one, 1, 0) == dram_per_image(one, 1, 1)  # batch 1: the switch changes nothing


def test_falcon_clock_comes_from_the_power_mode_or_the_core_clock():
    """nvpmodel caps the Falcon per mode (targets.toml); an overridden core clock, or a mode without a Falcon cap,
    derives it from the core clock at AGX Orin's MAXN ratio (844.8 / 1600)."""
    cond, _ = conditions_for(ORIN, "15W")
    assert cond.falcon == 294.4
    custom, _ = conditions_for(ORIN, "15W", dla_mhz=800.0)
    assert custom.falcon == pytest.approx(800.0 * 844.8 / 1600.0)
    drive, _ = conditions_for(resolve_target("drive-orin"))
    assert drive.falcon == pytest.approx(1369.6 * 844.8 / 1600.0)
