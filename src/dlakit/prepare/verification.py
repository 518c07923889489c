"""Prove a prepared model: each output equals the original model's tensors at its cut point.

``dlakit.rewrite.verify`` compares outputs by name. A prepared model's outputs are that and a little more: a fused
head's output is the channel concatenation of the original heads (``loc.0`` and ``conf.0`` → ``loc.0+conf.0``) and
a classifier's logits are 4-D ``(N, C, 1, 1)`` where the original has ``(N, C)``. So the reference is assembled
from the original tensors (reshaped to ``(N, -1, H, W)`` and concatenated on channels) before the comparison,
which is :func:`dlakit.rewrite.verify.compare`'s, with the same tolerance rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from dlakit.model import LoadedModel
from dlakit.rewrite.verify import DEFAULT_TOLERANCE, Verification, compare, run, with_outputs


def assemble(parts: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """The original tensors in the prepared output's layout (left as is when they cannot take it)."""
    if len(parts) == 1:
        part = parts[0]
        return part.reshape(shape) if part.size == int(np.prod(shape)) else part
    if len(shape) < 2 or any(p.shape[0] != shape[0] or p.size % (shape[0] * int(np.prod(shape[2:]))) for p in parts):
        return np.concatenate([p.reshape(-1) for p in parts])
    joined = np.concatenate([p.reshape(shape[0], -1, *shape[2:]) for p in parts], axis=1)
    return joined.reshape(shape) if joined.size == int(np.prod(shape)) else joined


def verify_cut_points(original: LoadedModel, prepared: onnx.ModelProto, sources: Mapping[str, list[str]],
                      feeds: Mapping[str, np.ndarray], tolerance: float = DEFAULT_TOLERANCE,
                      inputs_label: str = "random, seed 0") -> Verification:
    """Run both models on ``feeds``; output ``o`` of ``prepared`` must equal ``sources[o]`` of ``original``."""
    names = [o.name for o in prepared.graph.output]
    wanted = list(dict.fromkeys(t for name in names for t in sources.get(name, [name])))
    reference = run(with_outputs(original, wanted), feeds, "original model")
    candidate = run(prepared, feeds, "prepared model")
    result = Verification(tolerance=tolerance, inputs=inputs_label)
    for name in names:
        actual = np.asarray(candidate[name])
        expected = assemble([np.asarray(reference[t]) for t in sources.get(name, [name])], actual.shape)
        result.outputs.append(compare(actual, expected, tolerance, name))
    return result
