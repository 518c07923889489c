"""norm-decompose: LayerNorm / InstanceNorm / GroupNorm written out, then means turned into pools/convs."""

from __future__ import annotations

import numpy as np
import pytest

from dlakit.rewrite.testing import one_op_model, run_rules

F32 = np.float32
RNG = np.random.default_rng(4)


@pytest.mark.parametrize(("shape", "axis"), [((2, 8), -1), ((2, 5, 16), -1), ((2, 5, 16), 1), ((1, 4, 6, 6), 1),
                                             ((1, 4, 6, 6), 2)])
def test_layer_norm(shape, axis):
    param = shape[axis % len(shape):]
    model = one_op_model("LayerNormalization", {"x": (shape, F32)},
                         {"s": RNG.uniform(0.5, 1.5, param).astype(F32), "b": RNG.standard_normal(param).astype(F32)},
                         axis=axis, epsilon=1e-5)
    run = run_rules(model, ["norm-decompose", "reduce-to-pool"], tolerance=1e-4)
    assert "norm-decompose" in run.applied and "LayerNormalization" not in run.ops
    assert "ReduceMean" not in run.ops  # the means became pools or convolutions
    assert run.verification.passed, run.verification.outputs


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 4, 5, 7)])
def test_instance_norm(shape):
    c = shape[1]
    model = one_op_model("InstanceNormalization", {"x": (shape, F32)},
                         {"s": RNG.uniform(0.5, 1.5, c).astype(F32), "b": RNG.standard_normal(c).astype(F32)})
    run = run_rules(model, ["norm-decompose", "reduce-to-pool"], tolerance=1e-4)
    assert "InstanceNormalization" not in run.ops and run.verification.passed


@pytest.mark.parametrize(("groups", "opset", "param"), [(2, 18, 2), (4, 21, 8), (8, 21, 8)])
def test_group_norm(groups, opset, param):
    model = one_op_model("GroupNormalization", {"x": ((2, 8, 4, 4), F32)},
                         {"s": RNG.uniform(0.5, 1.5, param).astype(F32), "b": RNG.standard_normal(param).astype(F32)},
                         opset=opset, num_groups=groups)
    run = run_rules(model, ["norm-decompose", "reduce-to-pool"], tolerance=1e-4)
    assert "GroupNormalization" not in run.ops and run.verification.passed
    assert "stays on the GPU" in run.result.applied[0].note


def test_layer_norm_over_batch_is_refused():
    model = one_op_model("LayerNormalization", {"x": ((2, 3), F32)}, {"s": np.ones((2, 3), F32)}, axis=0)
    run = run_rules(model, ["norm-decompose"])
    assert run.applied == [] and "batch axis" in run.reasons[0]
