"""fix's guard prices time: a rewrite is kept only if estimate's images/s do not drop (--objective latency), or
only if check's placement does not get worse (--objective dla-share). Each rewrite is also run in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from dlakit.model import load_model
from dlakit.rewrite import FixOptions, random_inputs, verify

pytest.importorskip("dlakit.check")
from dlakit.analysis import fix_model, images_per_second

F32 = np.float32
RNG = np.random.default_rng(3)


def init(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def model_of(nodes, inputs, inits, output="y"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, 1, s) for n, s in inputs],
                              [helper.make_empty_tensor_value_info(output)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def target():
    from dlakit.targets import resolve_target

    return resolve_target(None, None)


def ocr_recogniser(seq=24, hidden=64, ch=64):
    """CNN + LSTM text recogniser: the convolutions on DLA, one LSTM on the GPU (unrolling makes hundreds of ops)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4, name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[8, 1], strides=[8, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Reshape", ["r2", "shape"], ["s"], name="flat"),
             helper.make_node("Transpose", ["s"], ["t"], perm=[2, 0, 1], name="to_sequence"),
             helper.make_node("LSTM", ["t", "W", "R", "B"], ["h", "hn", "cn"], hidden_size=hidden, name="lstm"),
             helper.make_node("Reshape", ["h", "shape2"], ["y"], name="out")]
    inits = [init("w1", RNG.standard_normal((ch, 3, 3, 3)).astype(F32) * 0.2),
             init("w2", RNG.standard_normal((ch, ch, 8, 1)).astype(F32) * 0.05),
             init("shape", np.array([1, ch, seq], np.int64)), init("shape2", np.array([seq, hidden], np.int64)),
             init("W", RNG.standard_normal((1, 4 * hidden, ch)).astype(F32) * 0.1),
             init("R", RNG.standard_normal((1, 4 * hidden, hidden)).astype(F32) * 0.1),
             init("B", RNG.standard_normal((1, 8 * hidden)).astype(F32) * 0.1)]
    return model_of(nodes, [("x", [1, 3, 8, seq])], inits)


def padded_deconv(between: str):
    """conv → X → padded ConvTranspose (GPU as it is) → X: X = Erf keeps the deconvolution between GPU ops, so
    moving it to the DLA adds two transitions; X = Relu keeps everything on the DLA."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1] * 4, name="conv"),
             helper.make_node(between, ["c"], ["e"], name="act1"),
             helper.make_node("ConvTranspose", ["e", "wt"], ["d"], kernel_shape=[4, 4], strides=[2, 2], pads=[1] * 4,
                              name="deconv"),
             helper.make_node(between, ["d"], ["y"], name="act2")]
    inits = [init("w", RNG.standard_normal((8, 8, 3, 3)).astype(F32)),
             init("wt", RNG.standard_normal((8, 8, 4, 4)).astype(F32))]
    return model_of(nodes, [("x", [1, 8, 16, 16])], inits)


def fixed(model, target, **options):
    loaded = load_model(model)
    result = fix_model(loaded, FixOptions(target=target, **options))
    assert verify(loaded, result.proto(), random_inputs(loaded), 1e-4).passed
    return result


def effect(result, rule):
    return next(e for e in result.effects if e.rule == rule)


def test_lstm_unrolling_that_only_adds_transitions_is_refused(target):
    unguarded = fixed(ocr_recogniser(), target, guard=False)
    assert "lstm-unroll" in {a.rule for a in unguarded.applied}
    result = fixed(ocr_recogniser(), target)
    assert result.objective == "latency" and "LSTM" in [n.op_type for n in result.proto().graph.node]
    unroll = effect(result, "lstm-unroll")
    assert not unroll.kept and unroll.with_rule < unroll.without / 2  # estimated many times slower with it
    assert result.guarded["lstm-unroll"].startswith("estimated ") and " img/s" in result.guarded["lstm-unroll"]
    share = fixed(ocr_recogniser(), target, objective="dla-share")  # the placement alone calls it no worse
    assert "LSTM" not in [n.op_type for n in share.proto().graph.node] and effect(share, "lstm-unroll").kept


def test_island_refused_for_latency_kept_for_dla_share(target):
    """The deconvolution moves to the DLA (MAC share 36% → 100%) but between two GPU ops: 1 → 3 transitions."""
    latency = fixed(padded_deconv("Erf"), target)
    assert latency.applied == [] and not effect(latency, "deconv-pad-to-crop").kept
    deconv = effect(latency, "deconv-pad-to-crop")
    assert deconv.with_rule < deconv.without
    share = fixed(padded_deconv("Erf"), target, objective="dla-share")
    assert [a.rule for a in share.applied] == ["deconv-pad-to-crop"] and effect(share, "deconv-pad-to-crop").kept
    assert "DLA MACs 100.0% (without: 36.0%)" in effect(share, "deconv-pad-to-crop").reason


def test_rewrite_that_helps_is_kept_with_its_gain(target):
    result = fixed(padded_deconv("Relu"), target)
    assert [a.rule for a in result.applied] == ["deconv-pad-to-crop"]
    deconv = effect(result, "deconv-pad-to-crop")
    assert deconv.kept and deconv.with_rule > deconv.without


def test_sibling_fusion_goes_through_the_guard(target):
    """Two 1x1 convolutions on one tensor: fused or not, whichever the estimate prices faster, never slower (a
    Concat reads them: a conv whose only reader is a residual Add or an activation is not fused with siblings)."""
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], kernel_shape=[1, 1], name="a"),
             helper.make_node("Conv", ["x", "wb"], ["b"], kernel_shape=[1, 1], name="b"),
             helper.make_node("Concat", ["a", "b"], ["y"], axis=1, name="cat")]
    model = model_of(nodes, [("x", [1, 64, 32, 32])], [init("wa", RNG.standard_normal((64, 64, 1, 1)).astype(F32)),
                                                       init("wb", RNG.standard_normal((64, 64, 1, 1)).astype(F32))])
    result = fixed(model, target)
    fusion = effect(result, "fuse-sibling-convs")
    assert fusion.kept == (fusion.without <= fusion.with_rule * (1 + 5e-3))
    after = images_per_second(result.model, target, "int8")
    assert after >= images_per_second(load_model(model), target, "int8") * (1 - 5e-3)


def test_unknown_objective_is_an_error(target):
    from dlakit.errors import DlakitError

    with pytest.raises(DlakitError, match="--objective"):
        fix_model(load_model(padded_deconv("Relu")), FixOptions(target=target, objective="speed"))


def test_a_model_with_no_dla_layer_is_priced_on_the_gpu(target):
    model = model_of([helper.make_node("Erf", ["x"], ["y"], name="erf")], [("x", [1, 4, 8, 8])], [])
    assert images_per_second(load_model(model), target, "int8") > 0


def scripted_guard(monkeypatch, scores):
    """The guard over rules whose estimated images/s per set of kept rules is given by ``scores``."""
    from dlakit.rewrite import engine
    from dlakit.rewrite import fix as fixmod

    def fake_fix(loaded, options):
        ids = [r for r in options.rules or [] if r != "constant-folding"]
        return fixmod.FixResult(model=frozenset(ids), applied=[engine.Applied(r, "n", "Op") for r in ids])

    monkeypatch.setattr(fixmod, "_fix_once", fake_fix)
    candidates = sorted({r for key in scores for r in key})
    full = fake_fix(None, FixOptions(rules=candidates))
    return fixmod.guard_rules(None, FixOptions(rules=[*candidates, "constant-folding"], target=object()), full,
                              lambda model, options: (scores[model],))


def test_rules_that_only_pay_off_together_stay(monkeypatch):
    """Unrolling alone is slower; with the fusion of its gate convolutions it wins: both stay."""
    scores = {frozenset(): 100.0, frozenset({"lstm-unroll"}): 90.0, frozenset({"fuse-sibling-convs"}): 100.0,
              frozenset({"lstm-unroll", "fuse-sibling-convs"}): 120.0}
    result = scripted_guard(monkeypatch, scores)
    assert sorted(a.rule for a in result.applied) == ["fuse-sibling-convs", "lstm-unroll"] and not result.guarded


def test_a_rule_judged_beside_a_loser_is_judged_again(monkeypatch):
    """identity-removal (judged first) looks fine while lift-to-4d (slow) is in; without lift-to-4d it is slower:
    it is judged again and goes too."""
    a, b = "identity-removal", "lift-to-4d"
    scores = {frozenset(): 100.0, frozenset({a}): 95.0, frozenset({b}): 80.0, frozenset({a, b}): 90.0}
    result = scripted_guard(monkeypatch, scores)
    assert result.applied == [] and set(result.guarded) == {a, b}
    assert result.guarded[a] == "estimated 100.0 → 95.0 img/s"


def test_nothing_at_all_wins_when_every_rule_looks_harmless_alone(monkeypatch):
    a, b = "reshape-merge", "lift-to-4d"
    scores = {frozenset(): 100.0, frozenset({a}): 90.0, frozenset({b}): 90.0, frozenset({a, b}): 90.0}
    result = scripted_guard(monkeypatch, scores)
    assert result.applied == [] and set(result.guarded) == {a, b}


def test_a_model_that_computes_nothing_has_no_price(target):
    model = model_of([helper.make_node("Identity", ["x"], ["y"], name="id")], [("x", [1, 4, 8, 8])], [])
    assert images_per_second(load_model(model), target, "int8") is None
