"""Branchy topologies in the DLA model: Res2Net's channel split / merge and Inception's concatenation.

A channel Split / Slice or Concat is a view (or written in place) when its parts cover whole 32-byte channel atoms
(32 INT8 / 16 FP16 channels) and a copy priced by its bytes otherwise; every branch convolution pays its own per-op
overhead (perf.toml [model] channel_views, dlakit.perf.cost.channel_layout).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from dlakit.model import load_model
from dlakit.perf import conditions_for, evaluate, load_perf_data, prepare
from dlakit.perf.cost import Residency, channel_layout, raw_costs, tensor_bytes
from dlakit.perf.gpu import FREE_KINDS
from dlakit.perf.hardware import Param
from dlakit.targets import resolve_target
from tests.test_perf_nets import NetBuilder

ORIN = resolve_target("agx-orin-64gb", "jetpack-5.1.1")


def res2net(width: int, scales: int = 4, hw: int = 28, batch: int = 1) -> onnx.ModelProto:
    """A Res2Net bottleneck: 1x1 conv to ``width * scales`` channels, a Split into ``scales`` chunks, chunk 1 passed
    through, chunk i > 1 added to the previous branch and run through a 3x3 conv, the chunks concatenated, 1x1 conv."""
    net = NetBuilder((batch, 3, hw, hw))
    x = net.conv("input", 3, 64, 3)
    x = net.conv(x, 64, width * scales, 1)
    chunks = [f"split.{i}" for i in range(scales)]
    sizes = numpy_helper.from_array(np.full(scales, width, np.int64), "split.sizes")
    net.inits.append(sizes)
    net.nodes.append(helper.make_node("Split", [x, sizes.name], chunks, name="split", axis=1))
    merged, prev = [chunks[0]], None
    for chunk in chunks[1:]:
        y = chunk
        if prev is not None:
            net.nodes.append(helper.make_node("Add", [chunk, prev], [f"{chunk}.sum"], name=f"{chunk}_sum"))
            y = f"{chunk}.sum"
        prev = net.conv(y, width, width, 3)
        merged.append(prev)
    net.nodes.append(helper.make_node("Concat", merged, ["cat.y"], name="cat", axis=1))
    return net.model(net.conv("cat.y", width * scales, 256, 1))


def inception(branches: tuple[int, int, int, int], hw: int = 28) -> onnx.ModelProto:
    """An Inception block: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3; maxpool -> 1x1; concatenated along channels."""
    net = NetBuilder((1, 3, hw, hw))
    x = net.conv("input", 3, 192, 3)
    a, b, c, d = branches
    one = net.conv(x, 192, a, 1)
    three = net.conv(net.conv(x, 192, 96, 1), 96, b, 3)
    five = net.conv(net.conv(net.conv(x, 192, 16, 1), 16, 32, 3), 32, c, 3)
    net.nodes.append(helper.make_node("MaxPool", [x], ["pool.y"], name="pool", kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1]))
    proj = net.conv("pool.y", 192, d, 1)
    net.nodes.append(helper.make_node("Concat", [one, three, five, proj], ["cat.y"], name="cat", axis=1))
    return net.model(net.conv("cat.y", sum(branches), 256, 1))


def priced(model: onnx.ModelProto, precision: str = "int8", data=None):
    prep = prepare(load_model(model), ORIN, precision, placement={})
    data = data or load_perf_data()
    cond, _ = conditions_for(ORIN, precision=precision)
    raws = raw_costs(prep.ops, data, data.spec(2), cond)
    return prep, {op.name: (op, raw) for op, raw in zip(prep.ops, raws, strict=True)}, cond


def with_views(on: bool):
    data = load_perf_data()
    model = dict(data.model)
    model["channel_views"] = Param(1.0 if on else 0.0, "test", "low")
    return dataclasses.replace(data, model=model)


def test_split_carries_every_output():
    _, ops, _ = priced(res2net(32))
    split, _ = ops["split"]
    assert split.kind == "slice" and [t.name for t in split.outputs] == [f"split.{i}" for i in range(4)]
    assert [(p.offset, p.channels) for p in split.parts] == [(0, 32), (32, 32), (64, 32), (96, 32)]
    assert split.total_channels == 128
    concat, _ = ops["cat"]
    assert concat.kind == "concat" and [p.offset for p in concat.parts] == [0, 32, 64, 96]


def test_aligned_split_is_a_free_view_and_concat_copies_only_the_passed_through_chunk():
    prep, ops, cond = priced(res2net(32))  # 32-channel chunks: whole INT8 channel atoms
    data, spec = load_perf_data(), load_perf_data().spec(2)
    _, raw = ops["split"]
    assert (raw.cycles, raw.dram_bytes, raw.counted) == (0.0, 0.0, 0.0)
    # the branch convs write y2..y4 in place; the chunk passed through (x1) is a view of the split's buffer, so it
    # cannot be written in place and the concat copies it, and only it
    layout = channel_layout(prep.ops, data, spec, cond)
    index = next(i for i, op in enumerate(prep.ops) if op.name == "cat")
    assert [t.name for t in layout.copies[index]] == ["split.0"]
    op, raw = ops["cat"]
    x1 = next(t for t in op.inputs if t.name == "split.0")
    assert raw.counted == 1 and raw.cycles == pytest.approx(tensor_bytes(x1, cond, spec) / spec.dma_bytes_per_clk)
    assert [lay.name for lay in evaluate(prep, cond).layers if lay.name in ("split", "cat")] == ["cat"]


def test_inception_concat_of_aligned_branches_is_free():
    prep, ops, cond = priced(inception((64, 128, 32, 32)))
    _, raw = ops["cat"]
    assert (raw.cycles, raw.dram_bytes, raw.counted) == (0.0, 0.0, 0.0)
    assert "cat" not in [lay.name for lay in evaluate(prep, cond).layers]


def test_misaligned_split_costs_a_copy_proportional_to_bytes():
    spec = load_perf_data().spec(2)
    costs = {}
    for hw in (28, 56):
        # Res2Net-50's 26w x 4s: every chunk starts or ends inside a 32-channel atom (chunk 0 ends at 26)
        _, ops, cond = priced(res2net(26, hw=hw))
        split, raw = ops["split"]
        copied = sum(tensor_bytes(t, cond, spec) for t in split.outputs)
        assert raw.cycles == pytest.approx(copied / spec.dma_bytes_per_clk)
        assert raw.counted == 4  # one Slice layer per copied output, each with the per-op overhead
        costs[hw] = raw
    assert costs[56].cycles == pytest.approx(4 * costs[28].cycles)  # 4x the pixels, 4x the bytes
    _, ops, _ = priced(res2net(26, hw=56, batch=1), data=with_views(False))
    assert ops["split"][1].cycles == pytest.approx(costs[56].cycles)  # a copy is a copy, switch or not


def test_misaligned_concat_copies_only_the_misaligned_inputs():
    spec = load_perf_data().spec(2)
    prep, ops, cond = priced(inception((64, 128, 24, 40)))  # 3rd input ends at 216, 4th starts there
    op, raw = ops["cat"]
    moved = [t for t in op.inputs if t.dims[1] in (24, 40)]
    assert len(moved) == 2 and raw.counted == 2
    assert raw.cycles == pytest.approx(sum(tensor_bytes(t, cond, spec) for t in moved) / spec.dma_bytes_per_clk)
    bigger = priced(inception((64, 128, 24, 40), hw=56))[1]["cat"][1]
    assert bigger.cycles == pytest.approx(4 * raw.cycles)
    est = evaluate(prep, cond)
    assert any(lay.name == "cat" and lay.time_us > 0 for lay in est.layers)


def test_alignment_follows_the_precision_atom():
    # 16-channel chunks are whole FP16 atoms (CHW16) but half an INT8 atom (CHW32)
    _, int8, _ = priced(res2net(16))
    _, fp16, _ = priced(res2net(16), "fp16")
    assert int8["split"][1].counted > 0
    assert fp16["split"][1].counted == 0


def test_channel_views_switch_copies_everything():
    _, ops, _ = priced(res2net(32), data=with_views(False))
    assert ops["split"][1].counted == 4 and ops["cat"][1].counted == 4
    assert ops["split"][1].cycles > 0 and ops["cat"][1].cycles > 0


def test_views_share_their_source_buffer_in_sram():
    prep, _, cond = priced(res2net(32))
    data = load_perf_data()
    residency = Residency(prep.ops, data, data.spec(2), cond)
    split = next(op for op in prep.ops if op.name == "split")
    assert split.inputs[0].name in residency.resident  # 28x28x128 INT8 fits the 1 MiB SRAM
    assert all(t.name in residency.resident for t in split.outputs)  # views of a resident buffer


def test_every_branch_convolution_pays_its_own_overhead():
    # Inception: 7 convolutions in the block (+ stem and output conv), the concat free; a single conv with the
    # block's MACs would pay one overhead, the branches pay one each
    _, ops, _ = priced(inception((64, 128, 32, 32)))
    convs = [raw for op, raw in ops.values() if op.kind == "conv"]
    assert len(convs) == 9 and all(raw.counted == 1 for raw in convs)
    prep, _, cond = priced(res2net(26))
    est = evaluate(prep, cond)
    assert est.split_ms["overhead"] > 0
    # narrow branch convs under-fill the 64 x 32 atoms: 26 of 64 input lanes, 26 of 32 kernels
    branch = next(op for op in prep.ops if op.kind == "conv" and op.in_c == 26)
    _, raw = priced(res2net(26))[1][branch.name]
    assert raw.cycles == pytest.approx(np.ceil(branch.out_pixels / 4) * 9)


def test_branchy_estimates_are_flagged_outside_the_fit():
    prep, _, cond = priced(res2net(26))
    assert {"slice", "concat"} <= prep.kinds
    est = evaluate(prep, cond)
    assert any("slice" in r and "concat" in r for r in est.out_of_region)


def test_gpu_model_keeps_concat_free_and_prices_every_split_output():
    from dlakit.perf.gpu import gpu_conditions, gpu_costs, load_gpu_data

    prep, _, _ = priced(res2net(26))
    gplat = load_gpu_data().platform(ORIN.platform.key)
    gcond = gpu_conditions(ORIN.platform, "MAXN", "int8", False, 1)
    costs = gpu_costs(prep.ops, gplat.arch, gcond, load_perf_data().spec(2))
    index = {op.name: i for i, op in enumerate(prep.ops)}
    assert "concat" in FREE_KINDS and costs.cycles[index["cat"]] == 0 and costs.launches[index["cat"]] == 0
    split = prep.ops[index["split"]]
    assert costs.cycles[index["split"]] > 0 and len(split.outputs) == 4


def sliced(starts: list[int], ends: list[int], axes: list[int], channels: int) -> onnx.ModelProto:
    """conv (64 channels) -> Slice -> conv: the Slice reads the first conv's buffer."""
    net = NetBuilder((1, 3, 32, 32))
    x = net.conv(net.conv("input", 3, 64, 3), 64, 64, 1)
    for name, values in (("starts", starts), ("ends", ends), ("axes", axes)):
        net.inits.append(numpy_helper.from_array(np.array(values, np.int64), f"slice.{name}"))
    net.nodes.append(helper.make_node("Slice", [x, "slice.starts", "slice.ends", "slice.axes"], ["slice.y"],
                                      name="slice"))
    return net.model(net.conv("slice.y", channels, 64, 1))


@pytest.mark.parametrize(("starts", "ends", "axes", "channels", "free"), [
    ([32], [64], [1], 32, True),  # channels 32..63: one whole INT8 atom
    ([0], [32], [1], 32, True),
    ([8], [40], [1], 32, False),  # starts inside an atom
    ([-32], [2**62], [-3], 32, True),  # negative axis and start, end past the dimension
    ([0], [16], [2], 64, False),  # rows, not channels: a copy
])
def test_slice_is_a_view_only_on_whole_channel_atoms(starts, ends, axes, channels, free):
    _, ops, cond = priced(sliced(starts, ends, axes, channels))
    op, raw = ops["slice"]
    spec = load_perf_data().spec(2)
    assert bool(op.parts) == (axes in ([1], [-3]))
    if free:
        assert (raw.cycles, raw.counted) == (0.0, 0.0)
    else:
        assert raw.counted == 1
        assert raw.cycles == pytest.approx(tensor_bytes(op.output, cond, spec) / spec.dma_bytes_per_clk)
