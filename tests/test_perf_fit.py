"""Calibration: the stored fit is re-derived from the measurements and the zoo networks, not trusted as written."""

from __future__ import annotations

import importlib.util
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from dlakit.errors import DlakitError
from dlakit.perf import calibrate, load_perf_data
from dlakit.perf.hardware import parse_perf_data
from tests.assets import shared_file

CSV = "data/orin_dla_measured.csv"


def test_measurements_parse():
    rows = calibrate.load_measurements(shared_file(CSV))
    assert len(rows) >= 20
    assert {r.power_mode for r in rows} >= {"MAXN", "50W", "30W", "15W"}
    assert {r.weights for r in rows} == {"dense", "sparse"}
    assert all(r.cores == 2 and r.images_per_second > 0 for r in rows)


def test_missing_measurement_file_is_an_error(tmp_path):
    with pytest.raises(DlakitError, match="no such measurement file"):
        calibrate.load_measurements(tmp_path / "none.csv")


def test_nelder_mead_finds_a_known_minimum():
    target = np.array([1.0, -2.0, 0.5])
    x, value = calibrate.nelder_mead(lambda x: float(((x - target) ** 2).sum()), np.zeros(3))
    assert np.allclose(x, target, atol=1e-3) and value < 1e-6


def test_parameter_transform_round_trips():
    params = [0.8, 0.45, 12.5, calibrate.OVERLAP, 0.7, 150.0]
    assert np.allclose(calibrate._to_params(calibrate._from_params(params, depthwise=True)), params)
    # without a depthwise network among the rows the depthwise rate is not searched: it stays as derived
    assert calibrate._to_params(calibrate._from_params(params, depthwise=False))[4] == 1.0
    # and it never exceeds the derived rate
    assert calibrate._to_params(np.log([0.8, 0.45, 12.5, 150.0, 3.0]))[4] == 1.0


@pytest.fixture(scope="module")
def cases():
    if importlib.util.find_spec("dlakit.zoo") is None:
        pytest.skip("dlakit.zoo not available")
    from dlakit import zoo

    if not hasattr(zoo, "build"):
        pytest.skip("dlakit.zoo.build not available")
    return calibrate.build_cases(calibrate.load_measurements(shared_file(CSV)))


def test_stored_calibration_reproduces_its_residuals(cases):
    """perf.toml's residuals must be what the current code predicts with perf.toml's parameters."""
    calib = load_perf_data().calibration
    params = calibrate.stored_params(calib)
    errs = calibrate.errors_pct(cases, params)
    assert calib.rows == len(cases)
    stored = {(r["network"], r["weights"], r["power_mode"]): r["error_pct"] for r in calib.residuals}
    for case, err in zip(cases, errs, strict=True):
        assert err == pytest.approx(stored[(case.row.network, case.row.weights, case.row.power_mode)], abs=0.05)
    assert float(np.median(np.abs(errs))) == pytest.approx(calib.median_abs_pct, abs=0.01)


def test_fit_quality_meets_the_targets(cases):
    params, _ = calibrate.fit(cases)
    errs = np.abs(calibrate.errors_pct(cases, params))
    assert np.median(errs) <= 5.0
    stored = calibrate.stored_params()
    assert calibrate.loss(cases, params) <= calibrate.loss(cases, stored) + 1e-3  # stored fit is (near) optimal


def test_leave_one_network_out_is_what_perf_toml_reports(cases):
    """The cross-validation behind the error band, recomputed, against issue 5's target of a 10% median (the
    model gets about 7% since CBUF re-fetches add to an op's time; see benchmarks/bench_estimate.py)."""
    lono = calibrate.leave_one_network_out(cases)
    held = np.abs(np.concatenate([e for _, e in lono.values()]))
    calib = load_perf_data().calibration
    assert float(np.median(held)) == pytest.approx(calib.lono_median_abs_pct, abs=0.5)
    assert np.median(held) <= 10.0
    assert calib.error_band_pct >= np.percentile(held, 90) - 1.0


def test_write_calibration_keeps_the_hardware_data(tmp_path):
    source = Path(str(resources.files("dlakit.data").joinpath("perf.toml")))
    copy = tmp_path / "perf.toml"
    copy.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    generated = source.read_text(encoding="utf-8").split(calibrate.MARKER)[1]
    section = generated.replace("version = ", 'version = "x"\n#', 1)
    calibrate.write_calibration(section, copy)
    data = parse_perf_data(tomllib.loads(copy.read_text(encoding="utf-8")))
    assert data.calibration.version == "x" and data.spec(2).int8_macs_per_clk == 8192
    (tmp_path / "bad.toml").write_text("[calibration]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="marker"):
        calibrate.write_calibration(section, tmp_path / "bad.toml")


def test_nested_cv_never_fits_on_the_held_out_network(cases):
    """Each outer fold's parameters are a fit without the held-out network, its structure chosen without it, and
    its band comes from its inner cross-validation alone (small subset: three networks, two candidates)."""
    keep = {"resnet50", "retinanet-resnext50", "resnet34-backbone"}
    subset = [c for c in cases if c.row.network in keep and c.row.power_mode in ("MAXN", "15W")]
    structures = ({"cbuf_rows_bank_aligned": 1}, {"cbuf_rows_bank_aligned": 1})
    folds = calibrate.nested_cv([subset, subset], structures)
    assert [f.network for f in folds] == list(dict.fromkeys(c.row.network for c in subset))
    for fold in folds:
        train = [c for c in subset if c.row.network != fold.network]
        params, _ = calibrate.fit(train)
        assert np.allclose(fold.params, params)
        assert {c.row.network for c in fold.cases} == {fold.network}
        assert fold.band_pct > 0 and len(calibrate.fold_coverage(fold)) == len(fold.cases)


def test_stored_band_is_the_nested_cv_quantile():
    calib = load_perf_data().calibration
    assert 0 < calib.nested_median_abs_pct <= calib.nested_max_abs_pct
    assert calib.band_coverage_pct >= 100 * calibrate.BAND_COVERAGE
    assert calib.error_band_pct >= calib.nested_median_abs_pct


def test_a_fold_without_a_depthwise_network_keeps_the_derived_depthwise_rate(cases):
    """The depthwise efficiency is fitted only from depthwise rows: leaving SSD-MobileNetV1 out must leave it at 1
    (the derived rate), so that network's held-out error is out of sample; with it, the fit moves it."""
    without = [c for c in cases if not c.has_depthwise and c.row.power_mode in ("MAXN", "15W")]
    assert without and calibrate.fit(without)[0][4] == 1.0
    assert any(c.has_depthwise for c in cases)
    assert load_perf_data().calibration.depthwise_efficiency < 1.0


def test_launch_cost_follows_the_falcon_clock(cases):
    """The per-inference launch of the loadable is a fitted cost on the Falcon clock: the same case at 15W
    (Falcon 294.4 MHz) pays 844.8 / 294.4 times the MAXN launch."""
    params = calibrate.stored_params()
    maxn = next(c for c in cases if c.row.network == "resnet50" and c.row.power_mode == "MAXN")
    low = next(c for c in cases if c.row.network == "resnet50" and c.row.power_mode == "15W")
    assert (maxn.falcon_mhz, low.falcon_mhz) == (844.8, 294.4)
    no_launch = [*params[:5], 0.0]
    assert maxn.seconds(params) - maxn.seconds(no_launch) == pytest.approx(params[5] * 1e-6)
    assert low.seconds(params) - low.seconds(no_launch) == pytest.approx(params[5] * 1e-6 * 844.8 / 294.4)
