"""Power per engine and mode, NVIDIA's perf/W table parser, the stored fit, and ``estimate --vs-gpu``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlakit.perf import power
from tests.assets import shared_file
from tests.cli import run

TABLE = """# facts
### 3.7 DLA performance per watt relative to the GPU (DLA-SW README, measured)

Network | Weight mask mode | Power mode: MAXN | Power mode: 50W | Power mode: 30W | Power mode: 15W |
---|---|---|---|---|---|
ResNet-34 backbone (1280x768, bs=1) | Sparse | 3.4x | 3.0x | 2.7x | 4.1x |
ResNet-50 (224x224, DLA bs=2, GPU bs=256) | Dense | 3.5x | 2.9x | 2.6x | 3.9x |

## 4. Next section
| Not | a row | 1x | 2x | 3x | 4x |
"""


def test_engine_power_by_hand():
    # at the reference clock and units: exactly the reference watts, whatever the shape parameters
    assert power.engine_power(20.0, 16, 1300.5, 16, 1300.5, 0.3, 0.7, 0.2) == pytest.approx(20.0)
    # half clock, floor 0.5 -> v = 0.75; static 0.5: 0.5 x 0.75 + 0.5 x 0.5 x 0.75^2 = 0.515625
    assert power.engine_power(20.0, 16, 1000.0, 16, 500.0, 0.5, 0.5) == pytest.approx(20 * 0.515625)
    assert power.engine_power(20.0, 16, 1000.0, 8, 500.0, 0.5, 0.5) == pytest.approx(10 * 0.515625)
    # the fixed share does not scale with the units left on
    assert power.engine_power(20.0, 16, 1000.0, 8, 1000.0, 0.5, 0.5, 0.25) == pytest.approx(20 * (0.25 + 0.75 / 2))


def test_seed_table_parses(tmp_path):
    path = tmp_path / "dla.md"
    path.write_text(TABLE)
    rows = power.load_seed_ratios(path)
    assert len(rows) == 8
    first = rows[0]
    assert (first.network, first.weights, first.power_mode, first.dla_batch, first.gpu_batch, first.ratio) == (
        "resnet34-backbone", "sparse", "MAXN", 1, 1, 3.4)
    r50 = [r for r in rows if r.network == "resnet50"]
    assert {(r.dla_batch, r.gpu_batch) for r in r50} == {(2, 256)}
    assert [r.ratio for r in r50] == [3.5, 2.9, 2.6, 3.9]


def test_seed_table_missing_section_is_an_error(tmp_path):
    path = tmp_path / "dla.md"
    path.write_text("# nothing here\n")
    with pytest.raises(power.DlakitError, match="no section"):
        power.load_seed_ratios(path)


def test_ratio_by_hand():
    row = power.SeedRatio("x", "dense", "MAXN", 1, 1, 4.0)
    case = power.PowerCase(row, dla_ips=100.0, gpu_ips=200.0, dla_mhz=1600.0, dla_cores=2, gpu_sms=16,
                           gpu_mhz=1300.5)
    params = [2.0, 0.5, 0.5, 0.0]  # 2 W per DLA core at 1600 MHz; GPU at its reference: ref_watts (20 W)
    assert case.ratio(params) == pytest.approx((100 / 4.0) / (200 / 20.0))


def test_real_table_has_every_row():
    rows = power.load_seed_ratios(shared_file("facts/dla.md"))
    assert len(rows) == 40 and {r.power_mode for r in rows} == set(power.MODES)
    assert len({r.network for r in rows}) == 6


@pytest.fixture(scope="module")
def cases():
    return power.build_power_cases(power.load_seed_ratios(shared_file("facts/dla.md")))


def test_stored_power_fit_reproduces_its_residuals(cases):
    calib = power.load_power_data().calibration
    assert calib.rows == len(cases)
    stored = {(r["network"], r["weights"], r["power_mode"]): r["predicted"] for r in calib.residuals}
    for case in cases:
        r = case.row
        assert case.ratio(calib.vector()) == pytest.approx(stored[(r.network, r.weights, r.power_mode)], rel=2e-3)
    errs = np.abs(power.errors_pct(cases, calib.vector()))
    assert float(np.median(errs)) == pytest.approx(calib.median_abs_pct, abs=0.01)


def test_vs_gpu_json_uses_the_tables_gpu_batch():
    result = run("estimate", "resnet50", "--vs-gpu", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    v = data["vs_gpu"]
    assert v["gpu_batch"] == 256
    ratio = (data["images_per_second"] / v["dla_watts"]) / (v["gpu_images_per_second"] / v["gpu_watts"])
    assert v["perf_per_watt_ratio"] == pytest.approx(ratio, rel=2e-3)
    assert {"gpu_images_per_second", "gpu_batch", "gpu_watts", "dla_watts", "perf_per_watt_ratio"} <= set(v)


def test_vs_gpu_all_power_modes_and_gpu_batch():
    result = run("estimate", "resnet50", "--vs-gpu", "--all-power-modes", "--gpu-batch", "8", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["estimates"]
    assert {(e["power_mode"], e["sparse"]) for e in rows} == {(m, s) for m in power.MODES for s in (False, True)}
    assert all(e["vs_gpu"]["gpu_batch"] == 8 for e in rows)
    table = run("estimate", "resnet50", "--vs-gpu", "--all-power-modes")
    assert table.returncode == 0 and "perf/W relative to the GPU" in table.stdout


def test_vs_gpu_errors_are_one_line():
    bad = run("estimate", "resnet50", "--vs-gpu", "--gpu-batch", "0")
    assert bad.returncode == 2 and "--gpu-batch" in bad.stderr and "Traceback" not in bad.stderr
    xavier = run("estimate", "resnet50", "--vs-gpu", "--platform", "agx-xavier")
    assert xavier.returncode == 2 and "Orin" in xavier.stderr


def test_dla_switching_power_follows_its_activity():
    """Leakage is paid whatever the DLA does; its switching power only while it computes or moves data, not while
    it waits in per-op setup or the launch of its loadable. A network that spends much of its time there
    (SSD-MobileNetV1 at batch 2) draws less than one that computes (SSD-ResNet-34)."""
    from dlakit import zoo
    from dlakit.model import load_model
    from dlakit.perf import conditions_for, evaluate, prepare
    from dlakit.targets import resolve_target

    full, half, idle = (power.dla_watts(2, 1600.0, activity=a) for a in (1.0, 0.5, 0.0))
    assert idle < half < full and half == pytest.approx((full + idle) / 2)
    target = resolve_target("agx-orin-64gb")
    activity = {}
    for name in ("ssd-mobilenetv1", "ssd-resnet34"):
        prep = prepare(load_model(zoo.build(name, form="prepared")), target, placement={})
        activity[name] = power.dla_activity(evaluate(prep, *conditions_for(target)))
    assert 0 < activity["ssd-mobilenetv1"] < 0.8 < activity["ssd-resnet34"] <= 1.0
