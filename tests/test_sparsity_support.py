"""Small convolution chains for the sparsity tests: eligible and ineligible layers side by side."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from tests.graphs import make_model, tensor, weights

#: name -> (C in, K out, group); conv1 and conv3 are eligible on Orin INT8 (C > 64, group 1)
CHAIN = {"conv0": (3, 96, 1), "conv1": (96, 128, 1), "conv2": (128, 128, 128), "conv3": (128, 64, 1),
         "conv4": (64, 72, 1)}
ELIGIBLE = ("conv1", "conv3")


def chain_model(hw: int = 16, weight_kind: str = "initializer") -> onnx.ModelProto:
    """conv0 (C=3) → conv1 (C=96) → depthwise conv2 → conv3 (C=128) → conv4 (C=64), ReLU after each.

    ``weight_kind``: ``initializer`` or ``constant`` (weights in Constant nodes, as PaddlePaddle exports them).
    """
    nodes, inits = [], []
    prev = "x"
    for i, (name, (c, k, group)) in enumerate(CHAIN.items()):
        w = weights(f"{name}.weight", [k, c // group, 3, 3], seed=i)
        if weight_kind == "constant":
            nodes.append(helper.make_node("Constant", [], [w.name], value=w))
        else:
            inits.append(w)
        nodes.append(helper.make_node("Conv", [prev, w.name], [f"{name}.out"], name=name, kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1], group=group))
        nodes.append(helper.make_node("Relu", [f"{name}.out"], [f"{name}.relu"], name=f"{name}.act"))
        prev = f"{name}.relu"
    return make_model(nodes, [tensor("x", [1, 3, hw, hw])], [tensor(prev, None)], inits)


def shared_weight_model() -> onnx.ModelProto:
    """Two convolutions reading one weight through Identity nodes (PyTorch's export of tied weights)."""
    nodes = [
        helper.make_node("Identity", ["w"], ["w_a"], name="tie_a"),
        helper.make_node("Identity", ["w"], ["w_b"], name="tie_b"),
        helper.make_node("Conv", ["x", "w_a"], ["a"], name="conv_a", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["a", "w_b"], ["y"], name="conv_b", kernel_shape=[1, 1]),
    ]
    return make_model(nodes, [tensor("x", [1, 128, 8, 8])], [tensor("y", None)], [weights("w", [128, 128, 1, 1])])


def constant_of_shape_model() -> onnx.ModelProto:
    """Weights made at build time by ConstantOfShape (as in the ONNX zoo's light models)."""
    shape = onnx.numpy_helper.from_array(np.array([128, 128, 1, 1], np.int64), "wshape")
    nodes = [helper.make_node("ConstantOfShape", ["wshape"], ["w"], name="make_w",
                              value=helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [0.01])),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])]
    return make_model(nodes, [tensor("x", [1, 128, 8, 8])], [tensor("y", None)], [shape])
