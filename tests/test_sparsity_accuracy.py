"""Accuracy cost of 2:4 pruning on a real network (EfficientNet-Lite0, ImageNet weights) and real photos."""

from __future__ import annotations

import numpy as np
import pytest

from dlakit.check import check_model
from dlakit.model import load_model
from dlakit.sparsity import sparsify_model
from dlakit.sparsity.accuracy import add_int8_effect, compare, fp32_effect, layer_sensitivity
from dlakit.targets import resolve_target
from tests.test_quant_support import CALIB_PHOTOS, EVAL_PHOTOS, lite0_model, photo_set


@pytest.fixture(scope="module")
def lite0():
    dense = lite0_model()
    return dense, check_model(load_model(dense), resolve_target(None, None))


@pytest.fixture(scope="module")
def eval_batches():
    _, images = photo_set(EVAL_PHOTOS[:6], 2)
    return [({"input": images[i:i + 1]}, 1) for i in range(len(images))]


def test_compare_metrics():
    ref = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])
    same = compare(ref, ref, "same")
    assert same.top1_agreement == 1.0 and same.max_abs_diff == 0.0 and same.as_dict()["sqnr_db"] is None
    noisy = compare(ref, ref + 0.1, "noisy")
    assert noisy.sqnr_db == pytest.approx(10 * np.log10((ref**2).sum() / (0.01 * 6)))
    assert compare(ref, -ref, "negated").top1_agreement == 0.0


def test_one_shot_pruning_of_every_eligible_layer_costs_accuracy(lite0, eval_batches):
    """The real effect: all 26 eligible layers of Lite0 pruned without fine-tuning lose the prediction; the least
    sensitive layer alone keeps it. This is why dlakit says fine-tuning is needed and offers --per-layer."""
    dense, report = lite0
    everything = sparsify_model(dense, report)
    assert len(everything.pruned) == 26
    all_effect = fp32_effect(dense, everything.model, eval_batches).rows[0]
    assert all_effect.sqnr_db < 10

    def prune_one(name: str):
        return sparsify_model(dense, report, layers=[name]).model

    one = layer_sensitivity(dense, prune_one, ["block6_expand", "block15_project"], eval_batches)
    assert one[0].sqnr_db > 15 and one[0].top1_agreement >= 0.8  # a robust expansion layer
    assert one[1].sqnr_db < one[0].sqnr_db - 10  # the last linear projection is far more sensitive
    assert all_effect.sqnr_db < one[1].sqnr_db


def test_int8_through_the_emulator(lite0, eval_batches, tmp_path):
    from dlakit.quantize.data import open_source

    dense, report = lite0
    _, calib = photo_set(CALIB_PHOTOS[:4], 2)
    np.save(tmp_path / "calib.npy", calib)
    source = open_source(tmp_path / "calib.npy", {"input": (3, 224, 224)})
    sparse = sparsify_model(dense, report, layers=["block6_expand"]).model
    effect = fp32_effect(dense, sparse, eval_batches)
    add_int8_effect(effect, dense, sparse, source, eval_batches, method="max")
    rows = {r.variant: r for r in effect.rows}
    assert set(rows) == {"sparse FP32", "dense INT8 (emulated)", "sparse INT8 (emulated)"}
    # pruning one robust layer barely moves the INT8 result: quantization dominates
    assert abs(rows["sparse INT8 (emulated)"].sqnr_db - rows["dense INT8 (emulated)"].sqnr_db) < 3
