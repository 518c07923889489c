"""`estimate --sparse` prices the model's own 2:4 pattern; `--sparse-force` the what-if over every eligible conv."""

from __future__ import annotations

import json

import onnx

from tests.cli import run
from tests.graphs import conv_model


def _ips(*args: str) -> float:
    result = run("estimate", *args, "-f", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["images_per_second"]


def test_sparse_uses_the_pattern_and_force_is_the_what_if(tmp_path):
    dense = tmp_path / "dense.onnx"
    onnx.save(conv_model(c=128, k=128, hw=(56, 56), kernel=(3, 3), pads=[1, 1, 1, 1]), dense)
    pruned = tmp_path / "pruned.onnx"
    assert run("sparsify", str(dense), "-o", str(pruned), "-f", "json").returncode == 0
    base = _ips(str(dense), "-m", "15W")
    assert _ips(str(dense), "-m", "15W", "--sparse") == base  # dense weights: nothing runs sparse
    what_if = _ips(str(dense), "-m", "15W", "--sparse-force")
    assert what_if > base
    assert _ips(str(pruned), "-m", "15W", "--sparse") == what_if  # the pruned model holds the pattern everywhere
