"""The GPU model against hand-computed cases, its data file, the stored calibration, and GPU fallback in estimate."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

import numpy as np
import pytest

from dlakit.perf import gpu
from dlakit.perf.hardware import load_perf_data
from dlakit.perf.ops import DlaOp, Tensor
from tests.assets import shared_file

SPEC = load_perf_data().spec(2)
ARCH = gpu.load_gpu_data().platform("agx-orin-64gb").arch


def conv(name: str, cin: int, cout: int, hw: int, src: Tensor, *, groups: int = 1, kind: str = "conv",
         out_name: str | None = None, graph_output: bool = False) -> DlaOp:
    n = src.dims[0]
    out = Tensor(out_name or f"{name}.out", (n, cout, hw, hw), graph_output=graph_output)
    macs = n * hw * hw * cout * (cin // groups) * 9
    return DlaOp(name, kind, "gpu", [name], macs=macs, inputs=[src], output=out, weight_elems=cout * cin // groups * 9,
                 in_c=cin, out_c=cout, groups=groups, kernel=(3, 3), out_pixels=n * hw * hw)


def cond(batch: int = 1, sparse: bool = False, precision: str = "int8") -> gpu.GpuConditions:
    return gpu.GpuConditions(sms=16, mhz=1000.0, emc_mhz=3200.0, dram_gbps=200.0, precision=precision,
                             sparse=sparse, batch=batch)


X = Tensor("x", (1, 64, 56, 56), graph_input=True)


def test_tensor_core_cycles_are_macs_over_the_per_sm_rate():
    op = conv("c", 64, 64, 56, X)
    cycles, sparse = gpu.op_cycles(op, ARCH, cond(), 1.0)
    assert cycles == pytest.approx(56 * 56 * 64 * 64 * 9 / 2048) and not sparse


def test_channels_are_padded_to_the_tensor_core_vector():
    op = conv("c", 16, 64, 56, Tensor("x", (1, 16, 56, 56)))
    cycles, _ = gpu.op_cycles(op, ARCH, cond(), 1.0)
    assert cycles == pytest.approx(op.macs * 2 / 2048)  # 16 channels fill half of a 32-channel vector


def test_small_groups_take_the_cuda_cores_when_faster():
    op = conv("g", 128, 128, 28, Tensor("x", (1, 128, 28, 28)), groups=32)  # 4 channels per group
    cycles, _ = gpu.op_cycles(op, ARCH, cond(), 1.0)
    assert cycles == pytest.approx(op.macs / 512)  # tensor path would be macs x 64 / 2048


def test_depthwise_runs_at_the_depthwise_rate():
    op = conv("d", 64, 64, 56, X, groups=64, kind="depthwise")
    cycles, _ = gpu.op_cycles(op, ARCH, cond(), 1.0)
    assert cycles == pytest.approx(op.macs / ARCH.depthwise_macs_per_clk)


def test_sparse_halves_the_tensor_time_and_shrinks_weights():
    op = conv("c", 64, 64, 56, X, graph_output=True)
    dense = gpu.gpu_costs([op], ARCH, cond(), SPEC)
    sparse = gpu.gpu_costs([op], ARCH, cond(sparse=True), SPEC)
    assert sparse.cycles[0] == pytest.approx(dense.cycles[0] / 2) and sparse.sparse[0]
    act = 2 * 64 * 56 * 56  # graph input read + graph output written, INT8, 64 channels (= 2 x 32)
    assert dense.dram[0] == pytest.approx(act + 64 * 64 * 9)
    assert sparse.dram[0] == pytest.approx(act + 64 * 64 * 9 * 0.625)


def test_small_intermediate_tensors_stay_in_l2_until_the_batch_outgrows_it():
    a = conv("a", 64, 64, 56, X, out_name="mid")
    b = conv("b", 64, 64, 56, a.output, graph_output=True)
    one = gpu.gpu_costs([a, b], ARCH, cond(batch=1), SPEC)
    many = gpu.gpu_costs([a, b], ARCH, cond(batch=16), SPEC)
    mid = 64 * 56 * 56  # 200,704 B per image: resident at batch 1, 3.2 MB > the 2 MiB share at batch 16
    assert one.dram[0] == pytest.approx(mid + 64 * 64 * 9)  # reads x only
    assert many.dram[0] == pytest.approx(16 * 2 * mid + 64 * 64 * 9)  # reads x, writes mid; weights once per batch
    assert many.cycles[0] == pytest.approx(16 * one.cycles[0])


def test_times_are_a_per_op_roofline_plus_a_launch():
    op = conv("c", 64, 64, 56, X, graph_output=True)
    c = cond()
    costs = gpu.gpu_costs([op], ARCH, c, SPEC)
    t, compute, memory = gpu.gpu_times(costs, [0.5, 0.5, 10.0], c)
    assert compute[0] == pytest.approx(costs.cycles[0] / (16 * 1000e6 * 0.5))
    assert memory[0] == pytest.approx(costs.dram[0] / (200e9 * 0.5))
    launch = 10e-6 * gpu.REFERENCE_GPU_MHZ / 1000.0
    assert t[0] == pytest.approx(max(compute[0], memory[0]) + launch)
    est = gpu.estimate_gpu([op], SPEC, ARCH, c, [0.5, 0.5, 10.0])
    assert est.images_per_second == pytest.approx(1 / t[0]) and est.latency_ms == pytest.approx(t[0] * 1e3)


def test_data_file_is_sourced_and_validated():
    raw = tomllib.loads(resources.files("dlakit.data").joinpath("gpu.toml").read_text(encoding="utf-8"))
    data = gpu.parse_gpu_data(raw)
    assert data.platform("agx-orin-64gb").mode("maxn").sms == 16
    broken = copy.deepcopy(raw)
    del broken["arch"]["ampere"]["tensor_int8_macs_per_clk"]["source"]
    with pytest.raises(ValueError, match=r"gpu.toml: arch.ampere.tensor_int8_macs_per_clk"):
        gpu.parse_gpu_data(broken)
    broken = copy.deepcopy(raw)
    broken["platform"]["agx-orin-64gb"]["arch"] = "pascal"
    with pytest.raises(ValueError, match="arch 'pascal'"):
        gpu.parse_gpu_data(broken)


def test_stored_calibration_reproduces_its_residuals():
    rows = gpu.load_gpu_measurements(shared_file("data/orin_gpu_measured.csv"))
    calib = gpu.load_gpu_data().calibration
    assert len(rows) == calib.rows
    cases = gpu.build_gpu_cases(rows)
    stored = {(r["network"], r["batch"], r["platform"], r["mode"]): r["predicted"] for r in calib.residuals}
    for case in cases:
        key = (case.row.network, case.row.batch, case.row.platform, case.row.mode)
        assert case.images_per_second(calib.vector()) == pytest.approx(stored[key], rel=2e-3, abs=0.06)
    errs = np.abs(gpu.errors_pct(cases, calib.vector()))
    assert float(np.median(errs)) == pytest.approx(calib.median_abs_pct, abs=0.01)


def test_gpu_fallback_in_estimate_is_the_gpu_model():
    from dlakit import zoo
    from dlakit.model import load_model
    from dlakit.perf import conditions_for, evaluate, prepare
    from dlakit.targets import resolve_target

    target = resolve_target("agx-orin-64gb")
    loaded = load_model(zoo.build("resnet50", form="prepared"))
    dla = prepare(loaded, target, placement={})
    last = [op for op in dla.ops if op.kind != "free"][-1]
    placed = prepare(loaded, target, placement={n: "gpu" for n in last.nodes})
    cond, label = conditions_for(target, "30W")
    assert (cond.gpu_sms, cond.gpu_mhz) == (8, 624.75)
    est = evaluate(placed, cond, label)
    expected = gpu.fallback_times(placed.ops, SPEC, cond, "agx-orin-64gb").sum()
    assert est.split_ms["gpu"] == pytest.approx(expected * 1e3) and expected > 0
