"""The reference-network zoo: published figures, DLA-only prepared graphs, published == prepared at the cut points.

Full-size networks are built only to count parameters and MACs (``dlakit.model``); everything that runs with
ONNX Runtime uses a reduced input size (and a reduced width for the detectors) so the file stays fast.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from dlakit import zoo
from dlakit.errors import DlakitError
from dlakit.model import load_model, model_params, node_macs, static_dims

NAMES = ("resnet50", "ssd-resnet34", "ssd-mobilenetv1", "retinanet-resnext50", "retinanet-resnet34",
         "resnet34-backbone")
DLA_OPS = {"Conv", "Relu", "Clip", "Add", "MaxPool", "AveragePool", "Resize", "Concat"}


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _session(model: onnx.ModelProto, extra_outputs: list[str] = ()) -> ort.InferenceSession:
    """A CPU session without graph optimisations (so no fusion blurs the comparison), exposing extra tensors."""
    model = onnx.ModelProto.FromString(model.SerializeToString()) if extra_outputs else model
    have = {o.name for o in model.graph.output}
    for name in extra_outputs:
        if name not in have:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _reduced(name: str) -> dict:
    spec = zoo.NETWORKS[name]
    return {"batch": 1, "input_size": spec.small_hw, "width": 1.0 if name == "resnet50" else 0.25}


# -- registry ---------------------------------------------------------------------------------------------------
def test_registry_names_and_fields():
    assert tuple(zoo.NETWORKS) == NAMES
    for spec in zoo.NETWORKS.values():
        assert spec.input_name == "input" and len(spec.input_shape) == 4
        assert spec.postprocess and spec.cut_points and spec.matches and spec.published_source
    assert zoo.NETWORKS["resnet50"].default_batch == 2 and zoo.NETWORKS["ssd-mobilenetv1"].default_batch == 2
    assert zoo.NETWORKS["retinanet-resnet34"].input_hw == (768, 1280)


def test_zoo_names_are_recognised_loosely_and_unknown_names_list_the_known():
    assert zoo.is_zoo_name("resnet50") and zoo.is_zoo_name("SSD_MobileNetV1")
    assert not zoo.is_zoo_name("resnet51") and not zoo.is_zoo_name(None)
    with pytest.raises(DlakitError, match="known networks: resnet50, ssd-resnet34"):
        zoo.build("resnet51")


# -- full size: counts and DLA-only structure ---------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_full_size_prepared_counts_match_registry_and_run_only_on_dla(name):
    spec = zoo.NETWORKS[name]
    model = zoo.build(name, batch=1)
    loaded = load_model(model)
    assert model_params(loaded.graph) == spec.measured_params
    macs = sum(node_macs(n) for n in loaded.graph)
    assert macs / 1e9 == pytest.approx(spec.measured_gmacs, abs=6e-4)
    assert {o.name for o in model.graph.output} == set(spec.cut_points)
    for node in model.graph.node:
        assert node.op_type in DLA_OPS, node.name
        if node.op_type == "Conv":
            kernel, strides = _attr(node, "kernel_shape"), _attr(node, "strides", [1, 1])
            pads = _attr(node, "pads", [0] * 4)
            assert max(kernel) <= 32 and max(strides) <= 8 and all(p < min(kernel) for p in pads), node.name
        elif node.op_type in ("MaxPool", "AveragePool"):
            assert max(_attr(node, "kernel_shape")) <= 8 and max(_attr(node, "strides", [1])) <= 16
            assert max(_attr(node, "pads", [0])) <= 7
        elif node.op_type == "Resize":
            assert node.input[3:] == [] and _attr(node, "mode") == b"nearest"
            scales = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == node.input[2]))
            assert np.all(scales == np.round(scales)), node.name
        elif node.op_type == "Concat":
            assert _attr(node, "axis") == 1
    assert all(len(static_dims(v)) == 4 for n in loaded.graph for v in n.outputs), "prepared tensors are 4-D"
    if importlib.util.find_spec("dlakit.check") is not None:  # and dlakit's own placement agrees
        from dlakit.check import check_model
        from dlakit.targets import resolve_target

        report = check_model(loaded, resolve_target(None, None), "int8")
        assert [(n.name, n.placement) for n in report.nodes if n.placement != "dla"] == []
        assert len(report.subgraphs) == 1


def test_resnet50_matches_mlperf_figures():
    spec = zoo.NETWORKS["resnet50"]
    assert spec.measured_params / 1e6 == pytest.approx(25.6, rel=0.02)
    assert 3.9 <= spec.measured_gmacs <= 4.1


def test_ssd_mobilenetv1_matches_mlperf_figures():
    spec = zoo.NETWORKS["ssd-mobilenetv1"]
    assert spec.measured_params / 1e6 == pytest.approx(6.9, rel=0.10)
    assert spec.measured_gmacs == pytest.approx(2.47 / 2, rel=0.10)


def test_ssd_resnet34_matches_mlperf_macs():
    assert zoo.NETWORKS["ssd-resnet34"].measured_gmacs == pytest.approx(433 / 2, rel=0.10)


@pytest.mark.xfail(strict=True, reason="the graph whose MACs match 433 GOPs has 20.0 M parameters, not 36.3 M; "
                                      "see the registry's assumptions")
def test_ssd_resnet34_matches_mlperf_params():
    assert zoo.NETWORKS["ssd-resnet34"].measured_params / 1e6 == pytest.approx(36.3, rel=0.10)


def test_retinanet_resnext50_params_close_to_mlperf():
    # 37.09 M prepared (37.13 M torchvision-style) against the 37.97 M figure: within 3%, not exact
    assert zoo.NETWORKS["retinanet-resnext50"].measured_params / 1e6 == pytest.approx(37.97, rel=0.03)


@pytest.mark.parametrize(("name", "boxes", "classes"), [("ssd-resnet34", 15130, 81), ("ssd-mobilenetv1", 1917, 91),
                                                        ("retinanet-resnext50", 120087, 264)])
def test_published_detectors_predict_the_reference_box_counts(name, boxes, classes):
    model = zoo.build(name, "published", batch=1)
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert shapes["boxes"] == [1, boxes, 4] and shapes["scores"] == [1, boxes, classes]
    assert any(n.op_type == "NonMaxSuppression" for n in model.graph.node)


def test_ssd_resnet34_prepared_heads_have_the_mlperf_grids():
    model = zoo.build("ssd-resnet34")
    dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert [d[2] for d in dims] == [50, 25, 13, 7, 3, 3]
    assert [d[1] // 85 for d in dims] == [4, 6, 6, 6, 4, 4]
    assert sum(d[1] // 85 * d[2] * d[3] for d in dims) == 15130


def test_published_form_keeps_bn_and_post_processing():
    ops = {n.op_type for n in zoo.build("resnet50", "published", input_size=(64, 64)).graph.node}
    assert {"BatchNormalization", "ReduceMean", "Flatten", "Gemm", "Softmax", "TopK", "ArgMax"} <= ops
    ops = {n.op_type for n in zoo.build("retinanet-resnet34", "published", **_reduced("retinanet-resnet34")).graph.node}
    assert {"BatchNormalization", "Resize", "Reshape", "Transpose", "Sigmoid", "Exp", "NonMaxSuppression"} <= ops


# -- numerics at reduced size -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_prepared_equals_published_at_cut_points(name):
    """Every tensor name the two forms share holds the same values; prepared outputs equal the registry's
    published tensors (concatenated on channels when heads were fused)."""
    spec = zoo.NETWORKS[name]
    kwargs = _reduced(name)
    published, prepared = zoo.build(name, "published", **kwargs), zoo.build(name, "prepared", **kwargs)
    pub_tensors = {o for n in published.graph.node for o in n.output}
    shared = [o for n in prepared.graph.node for o in n.output if o in pub_tensors]
    cut = [t for tensors in spec.cut_points.values() for t in tensors]
    x = np.random.default_rng(7).standard_normal((1, 3, *spec.small_hw), dtype=np.float32)
    pub_names = list(dict.fromkeys(shared + cut))
    pub = dict(zip(pub_names, _session(published, pub_names).run(pub_names, {"input": x}), strict=True))
    prep_names = list(dict.fromkeys(shared + list(spec.cut_points)))
    prep = dict(zip(prep_names, _session(prepared, prep_names).run(prep_names, {"input": x}), strict=True))
    for out, tensors in spec.cut_points.items():
        expected = np.concatenate([pub[t].reshape(pub[t].shape[0], -1, *prep[out].shape[2:]) for t in tensors],
                                  axis=1)
        np.testing.assert_allclose(prep[out], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert len(shared) > 50
    for name_ in shared:
        a, b = pub[name_].reshape(prep[name_].shape), prep[name_]
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * max(np.abs(a).max(), 1e-6), err_msg=name_)


def test_activations_neither_explode_nor_vanish_through_resnet50():
    model = zoo.build("resnet50", "prepared", batch=1, input_size=(64, 64))
    relus = [n.output[0] for n in model.graph.node if n.op_type == "Relu"]
    assert len(relus) == 49
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)
    outputs = _session(model, relus).run([*relus, "logits"], {"input": x})
    stds = [float(o.std()) for o in outputs[:-1]]
    assert min(stds) > 0.1 and max(stds) < 20, (min(stds), max(stds))
    assert all(np.isfinite(o).all() for o in outputs)
    assert 0.05 < float(outputs[-1].std()) < 50


def test_published_classifier_and_detector_run_end_to_end():
    resnet = zoo.build("resnet50", "published", batch=2, input_size=(64, 64))
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64), dtype=np.float32)
    probs, top_v, top_i, argmax = _session(resnet).run(None, {"input": x})
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert top_i.shape == (2, 5) and (top_i[:, 0] == argmax).all() and (np.diff(top_v, axis=1) <= 0).all()
    ssd = zoo.build("ssd-mobilenetv1", "published", batch=2, width=0.25)
    x = np.random.default_rng(4).standard_normal((2, 3, 300, 300), dtype=np.float32)
    boxes, scores, selected = _session(ssd).run(None, {"input": x})
    assert boxes.shape == (2, 1917, 4) and scores.shape == (2, 1917, 91)
    assert ((scores >= 0) & (scores <= 1)).all() and np.isfinite(boxes).all()
    assert (boxes[..., 2] >= boxes[..., 0]).all()  # corners: min before max
    assert selected.ndim == 2 and selected.shape[1] == 3 and (selected[:, 2] < 1917).all()


def test_reduced_models_pass_the_onnx_checker():
    for form in zoo.FORMS:
        onnx.checker.check_model(zoo.build("retinanet-resnext50", form, **_reduced("retinanet-resnext50")),
                                 full_check=True)
        onnx.checker.check_model(zoo.build("ssd-resnet34", form, **_reduced("ssd-resnet34")), full_check=True)


# -- determinism, batch, weights ----------------------------------------------------------------------------------
def test_builds_are_deterministic_and_seeded():
    a = zoo.build("resnet34-backbone", **_reduced("resnet34-backbone"))
    b = zoo.build("resnet34-backbone", **_reduced("resnet34-backbone"))
    c = zoo.build("resnet34-backbone", seed=1, **_reduced("resnet34-backbone"))
    assert a.SerializeToString() == b.SerializeToString()
    assert a.graph.initializer[0].raw_data != c.graph.initializer[0].raw_data
    assert a.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_batch_sets_the_static_input_shape():
    model = zoo.build("ssd-mobilenetv1", batch=3, width=0.25)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [3, 3, 300, 300]
    assert zoo.build("resnet50").graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_user_weights_are_used_and_folded(tmp_path):
    shapes = zoo.parameter_shapes("resnet34-backbone", width=0.25)
    assert shapes["conv1.weight"] == (16, 3, 7, 7) and "layer4.2.bn2.running_var" in shapes
    rng = np.random.default_rng(5)
    tensors = {k: rng.uniform(0.5, 1.5, s).astype(np.float32) for k, s in shapes.items()}
    path = tmp_path / "w.npz"
    np.savez(path, **tensors)
    kwargs = _reduced("resnet34-backbone")
    published = zoo.build("resnet34-backbone", "published", weights=path, **kwargs)
    inits = {i.name: numpy_helper.to_array(i) for i in published.graph.initializer}
    np.testing.assert_array_equal(inits["layer1.0.bn1.running_var"], tensors["layer1.0.bn1.running_var"])
    prepared = zoo.build("resnet34-backbone", "prepared", weights=str(path), **kwargs)
    x = np.random.default_rng(6).standard_normal((1, 3, *kwargs["input_size"]), dtype=np.float32)
    out_pub = _session(published).run(None, {"input": x})[0]
    out_prep = _session(prepared).run(None, {"input": x})[0]
    np.testing.assert_allclose(out_prep, out_pub, rtol=1e-4, atol=1e-4 * np.abs(out_pub).max())


def test_bad_user_weights_get_one_line_errors(tmp_path):
    shapes = zoo.parameter_shapes("resnet34-backbone", width=0.25)
    tensors = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    kwargs = _reduced("resnet34-backbone")
    missing = dict(tensors)
    del missing["layer2.0.downsample.0.weight"]
    with pytest.raises(DlakitError, match=r"no tensor 'layer2\.0\.downsample\.0\.weight' \(shape 32x16x1x1\)"):
        zoo.build("resnet34-backbone", weights=missing, **kwargs)
    wrong = dict(tensors, **{"conv1.weight": np.zeros((16, 3, 3, 3), np.float32)})
    with pytest.raises(DlakitError, match=r"'conv1\.weight' has shape 16x3x3x3 but resnet34-backbone needs 16x3x7x7"):
        zoo.build("resnet34-backbone", weights=wrong, **kwargs)
    extra = dict(tensors, **{"fc.weight": np.zeros((10, 512), np.float32)})
    with pytest.raises(DlakitError, match=r"'fc\.weight' is not a parameter of resnet34-backbone"):
        zoo.build("resnet34-backbone", weights=extra, **kwargs)
    with pytest.raises(DlakitError, match="no such weights file"):
        zoo.build("resnet34-backbone", weights=tmp_path / "absent.npz", **kwargs)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(DlakitError, match=r"not a readable \.npz") as info:
        zoo.build("resnet34-backbone", weights=junk, **kwargs)
    assert "\n" not in str(info.value)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DlakitError, match="single array"):
        zoo.build("resnet34-backbone", weights=single, **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"form": "onnx"}, "not one of prepared, published"),
    ({"batch": 0}, "--batch"),
    ({"width": 0.0}, "width"),
    ({"input_size": (224,)}, "input_size"),
    ({"input_size": (64, 64), "name": "ssd-resnet34"}, "feature map vanishes"),
    ({"input_size": (200, 200), "name": "retinanet-resnet34"}, "not an integer upsampling"),
])
def test_bad_build_arguments_get_one_line_errors(kwargs, message):
    name = kwargs.pop("name", "resnet50")
    with pytest.raises(DlakitError, match=message):
        zoo.build(name, **kwargs)


# -- resolve: zoo names wherever a model path is accepted ---------------------------------------------------------
def test_resolve_builds_zoo_names_and_passes_paths_through(tmp_path):
    model = zoo.resolve("ssd-mobilenetv1")
    assert isinstance(model, onnx.ModelProto)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert not any(n.op_type == "NonMaxSuppression" for n in model.graph.node)
    assert zoo.resolve(model) is model
    path = tmp_path / "m.onnx"
    path.write_bytes(b"")
    assert zoo.resolve(path) == str(path)
    assert zoo.resolve("missing/model.onnx") == "missing/model.onnx"
    with pytest.raises(DlakitError, match=r"neither a file nor a zoo network \(did you mean resnet50\?\); "
                                          r"zoo networks: resnet50"):
        zoo.resolve("resnet")
    loaded = load_model(zoo.resolve("resnet34-backbone"))
    assert math.isclose(sum(node_macs(n) for n in loaded.graph) / 1e9,
                        zoo.NETWORKS["resnet34-backbone"].measured_gmacs, rel_tol=1e-3)
