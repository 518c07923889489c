"""benchmarks/proxy_nets.py builds public architectures as ONNX models for cross-checking the performance model:
they run in ONNX Runtime with the expected output shapes, and dlakit places all of YOLOv5s on the DLA."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from dlakit.check import DLA, check_model
from dlakit.model import load_model
from dlakit.targets import resolve_target

SPEC = importlib.util.spec_from_file_location(
    "proxy_nets", Path(__file__).resolve().parents[1] / "benchmarks" / "proxy_nets.py")
proxy_nets = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(proxy_nets)


def run(model: onnx.ModelProto) -> list[tuple[int, ...]]:
    onnx.checker.check_model(model, full_check=True)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": np.random.default_rng(0).standard_normal(dims, dtype=np.float32)})
    assert all(np.isfinite(o).all() for o in outputs)
    return [o.shape for o in outputs]


def test_yolov5s_ends_at_three_detect_convs_and_runs_on_the_dla():
    model = proxy_nets.yolov5s(batch=2, size=128)
    assert run(model) == [(2, 255, 16, 16), (2, 255, 8, 8), (2, 255, 4, 4)]
    report = check_model(load_model(model), resolve_target("agx-orin-64gb"), "int8")
    assert [(n.name, n.op, n.placement) for n in report.nodes if n.placement != DLA] == []


def test_mobilenetv2_classifies_into_1000_logits():
    model = proxy_nets.mobilenetv2()
    assert run(model) == [(1, 1000, 1, 1)]
    assert sum(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
               for n in model.graph.node) == 17  # one depthwise conv per inverted residual
