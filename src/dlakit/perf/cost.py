"""Raw cost of each operation: ideal unit cycles and DRAM bytes, before the calibrated parameters apply.

Splitting the model this way keeps calibration cheap and honest: everything here is fixed by the hardware data and
the graph (MAC-array atoms, buffer sizes, which tensors stay in SRAM), and only :func:`op_times` combines it with
the few fitted parameters (compute efficiency, DRAM efficiency, per-op overhead, compute/memory overlap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dlakit.perf.hardware import Calibration, DlaSpec, PerfData
from dlakit.perf.ops import ChannelPart, DlaOp, Tensor
from dlakit.targets import FALCON_PER_DLA_CLOCK, REFERENCE_FALCON_MHZ
from dlakit.vocab import Device, Precision


@dataclass(frozen=True)
class Conditions:
    """Where and how the network runs: clocks, DRAM, cores sharing it, precision, sparse weights."""

    dla_mhz: float
    emc_mhz: float
    dram_gbps: float
    cores: int = 2
    precision: str = Precision.INT8
    sparse: bool = False
    gpu_mhz: float = 612.0
    #: SMs the power mode leaves on (data/gpu.toml); GPU fallback layers run on them
    gpu_sms: int = 8
    #: With ``sparse``: only the convolutions among these nodes run sparse (the model's actual 2:4 pattern);
    #: None = every eligible convolution (the what-if of trtexec --sparsity=force).
    sparse_nodes: frozenset[str] | None = None
    #: DLA Falcon (scheduling microcontroller) clock; 0 = derived from the core clock (dlakit.targets.PowerMode)
    falcon_mhz: float = 0.0

    @property
    def falcon(self) -> float:
        return self.falcon_mhz or self.dla_mhz * FALCON_PER_DLA_CLOCK

    @property
    def bytes_per_element(self) -> int:
        return 1 if self.precision == Precision.INT8 else 2


@dataclass(frozen=True)
class RawCost:
    """An op's work before efficiencies: cycles of its unit at 100% and bytes moved to or from DRAM."""

    cycles: float
    dram_bytes: float
    sparse_applied: bool = False
    #: Hardware operations issued: one per image for a batch-N convolution, pooling or SDP op (the DLA runs a batch
    #: image by image, see :func:`launches`), 1 for a fully connected layer, 0 for free ops (reshape, in-place
    #: concat). Each pays the per-op overhead. (Named ``counted`` for compatibility: it was a bool.)
    counted: float = 1.0
    #: Part of ``dram_bytes`` fetched again because the op does not fit the CBUF (see :func:`conv_traffic`).
    refetch_bytes: float = 0.0


def channel_vector(spec: DlaSpec, cond: Conditions) -> int:
    """Channels per feature-data atom in the DLA's native layout: 32 in INT8 (CHW32), 16 in FP16 (CHW16)."""
    return max(1, int(spec.feature_atom_bytes) // cond.bytes_per_element)


def tensor_bytes(t: Tensor, cond: Conditions, spec: DlaSpec) -> float:
    """Bytes in the DLA's native layout: channels padded to 32 (INT8, CHW32) or 16 (FP16, CHW16); image input HWC4."""
    n, c, h, w = t.dims
    bpe = cond.bytes_per_element
    if t.graph_input and c <= spec.image_input_max_channels:
        c = int(spec.image_input_max_channels)
    else:
        vec = int(spec.params["feature_atom_bytes"].value) // bpe or 1  # channel_vector, inlined (hot)
        c = -(-c // vec) * vec
    return float(n * c * h * w * bpe)


def sparse_eligible(op: DlaOp, spec: DlaSpec, cond: Conditions) -> bool:
    """2:4 sparsity runs only on Orin, INT8, dense (group 1) convolutions with more than 64 input channels —
    the same rule as :mod:`dlakit.sparsity` — and, when the model's pattern is known, only where it holds."""
    if cond.sparse_nodes is not None and not any(node in cond.sparse_nodes for node in op.nodes):
        return False
    return (cond.sparse and bool(spec.sparse) and cond.precision == Precision.INT8 and op.kind in ("conv", "fc")
            and op.groups == 1 and op.in_c > spec.sparse_min_channels)


def conv_cycles(op: DlaOp, spec: DlaSpec, cond: Conditions) -> tuple[float, bool]:
    """Cycles of the MAC array: atoms of ``atomic_c`` input x ``atomic_k`` output channels per kernel tap.

    Under-filled atoms waste lanes (a 3-channel or 16-channel input fills 3 or 16 of 64), except for the image
    input, where NVDLA folds the kernel width (pre-extension) and 2-4 kernel rows (post-extension) into channels.
    Small groups are packed block-diagonally into one atom. Sparse 2:4 halves the channels an atom has to cover.
    """
    atom_c, atom_k = int(spec.atomic_c), int(spec.atomic_k)
    kh, kw = op.kernel
    groups = max(1, op.groups)
    cin_g = max(1, op.in_c // groups)
    k_g = max(1, op.out_c // groups)
    sparse = sparse_eligible(op, spec, cond)
    if op.image_input and op.in_c <= spec.image_input_max_channels:
        pre = int(spec.image_input_max_channels) * kw
        lines = 1
        for candidate in (4, 2):
            if candidate <= spec.post_extension_lines and candidate <= kh and pre * candidate <= atom_c:
                lines = candidate
                break
        c_eff, taps = pre * lines, math.ceil(kh / lines)
    else:
        c_eff, taps = (math.ceil(cin_g / 2) if sparse else cin_g), kh * kw
    pack = min(groups, max(1, atom_c // c_eff)) if groups > 1 else 1
    steps = math.ceil(groups / pack) * math.ceil(c_eff * pack / atom_c) * math.ceil(k_g * pack / atom_k) * taps
    cycles = math.ceil(op.out_pixels / spec.spatial_lanes) * steps
    if cond.precision != Precision.INT8:
        cycles *= spec.int8_macs_per_clk / spec.fp16_macs_per_clk
    return float(cycles), sparse


def launches(op: DlaOp) -> float:
    """Hardware operations the DLA issues for ``op``: one per image of the batch, except fully connected layers.

    Why per image: NVDLA's convolution pipeline walks one image's surface per hardware layer; its multi-batch mode
    exists for fully connected (inner-product) layers only ([NVDLA] hwarch.rst feature table, dla.md 3.3b), so a
    batch-N convolution is N hardware ops, each with its own setup (whether they share the weight fetch follows from
    the CBUF tiling, :func:`conv_traffic`). This makes images/s nearly flat in batch, as measured (issue 21: one
    detector at batch 1, 4 and 16). UNSURE that TensorRT's DLA compiler does the same; it is the only reading
    that keeps img/s flat in batch.
    """
    if op.kind == "free":
        return 0.0
    if op.kind == "fc":
        return 1.0
    n = op.output.dims[0] if op.output is not None else 1
    return float(max(1, n))


def unit_cycles(op: DlaOp, spec: DlaSpec, cond: Conditions) -> tuple[float, bool]:
    """Cycles of the op's unit at full rate (FP16 halves the element rate of the side units)."""
    if op.kind in ("conv", "fc", "deconv"):
        return conv_cycles(op, spec, cond)
    width = 1.0 if cond.precision == Precision.INT8 else 2.0
    if op.kind == "depthwise":
        # depthwise_macs_per_clk (perf.toml). FP16: on a generation with its own depth-wise processor (Orin) the
        # unit's element width halves its rate like the other side units; without one (Xavier) depthwise runs on
        # the conv core and slows by its FP16/INT8 MAC ratio
        conv_ratio = spec.int8_macs_per_clk / spec.fp16_macs_per_clk
        fp16 = 1.0 if cond.precision == Precision.INT8 else (width if spec.depthwise_unit else conv_ratio)
        return op.macs / spec.depthwise_macs_per_clk * fp16, False
    out_elems = op.output.elements if op.output else 0
    in_elems = sum(t.elements for t in op.inputs)
    if op.kind == "pool":
        return in_elems / spec.pdp_elems_per_clk * width, False
    if op.kind == "lrn":
        return in_elems / spec.cdp_elems_per_clk * width, False
    if op.kind in ("move", "resize", "slice", "concat"):
        return out_elems * cond.bytes_per_element / spec.dma_bytes_per_clk, False
    if op.kind == "free":
        return 0.0, False
    return max(in_elems, out_elems) / spec.sdp_elems_per_clk * width, False


def aligned(part: ChannelPart, total: int, vec: int) -> bool:
    """Whether ``part`` covers whole channel atoms of the buffer: it starts on an atom boundary and ends on one
    (or at the buffer's last channel, where the atom's padding is the buffer's own)."""
    end = part.offset + part.channels
    return part.offset % vec == 0 and (end % vec == 0 or end == total)


@dataclass
class Layout:
    """How Split / Slice and Concat ops use memory: which tensors share a buffer, and what each op copies.

    A channel Split / Slice part that covers whole channel atoms (:func:`aligned`) is a view into its input (same
    buffer, a channel-surface offset); a channel Concat input that does is written in place by its producer into the
    output buffer. Anything else is copied by the op ([model] channel_views in perf.toml says why and how sure).
    """

    #: pairs of tensors that live in one buffer (view, its source) / (concat output, an input written in place)
    links: list[tuple[str, str]] = field(default_factory=list)
    #: per op index, the tensors a slice / concat copies: the outputs of a slice, the inputs of a concat
    copies: dict[int, list[Tensor]] = field(default_factory=dict)


def channel_layout(ops: Sequence[DlaOp], data: PerfData, spec: DlaSpec, cond: Conditions) -> Layout:
    """Decide, op by op, which slice / concat parts are views or written in place and which are copied.

    A concat input is written in place only when a DLA op writes it (not a graph input, a GPU tensor, a view of
    another buffer or an input already placed in an earlier concat); a slice part only when it stays on the DLA (a
    graph output goes to its own binding). Other ops' kinds "free" (reshapes) alias their input.
    """
    views = bool(data.model["channel_views"].value)
    vec = channel_vector(spec, cond)
    layout = Layout()
    written: set[str] = set()  # tensors a DLA op writes into a buffer of its own (may be placed in a concat)
    claimed: set[str] = set()
    for index, op in enumerate(ops):
        on_dla = op.device == Device.DLA
        if op.kind == "free":
            layout.links += [(t.name, src.name) for t in op.outputs for src in op.inputs[:1]]
            continue
        if op.kind == "slice":
            src = op.inputs[0] if op.inputs else None
            parts = {p.name: p for p in op.parts}
            moved = []
            for t in op.outputs:
                part = parts.get(t.name)
                if (views and on_dla and src is not None and part is not None and not t.graph_output
                        and aligned(part, op.total_channels, vec)):
                    layout.links.append((t.name, src.name))
                else:
                    moved.append(t)
                    if on_dla:
                        written.add(t.name)
            layout.copies[index] = moved
            continue
        if op.kind == "concat":
            by_name = {t.name: t for t in op.inputs}
            placed = {p.name for p in op.parts if p.name in by_name and views and on_dla
                      and p.name in written and p.name not in claimed and not by_name[p.name].graph_input
                      and aligned(p, op.total_channels, vec)}
            claimed |= placed
            layout.copies[index] = [t for t in op.inputs if t.name not in placed]
            if op.output is not None:
                layout.links += [(op.output.name, name) for name in sorted(placed)]
                if not placed and on_dla:
                    written.add(op.output.name)
            continue
        if on_dla:
            written.update(t.name for t in op.outputs)
    return layout


class Residency:
    """Which tensors stay in the core's managed SRAM, so that writing and reading them costs no DRAM traffic.

    The SRAM pool is handed out first come, first served in execution order, like a cache: an op's output stays
    on chip when it fits beside every resident tensor still waiting for a reader (the op's own inputs
    included), and its space is freed after the last reader of its buffer. Tensors that share a buffer
    (:class:`Layout`: reshapes, slice views, a concat and the inputs written in place into it) share the
    buffer's lifetime; a view is resident when its source is, a concat output when every input written in
    place is resident and its copied part fits. A buffer any part of which is read by the GPU or leaves the
    network goes to DRAM. With ``[model] sram_per_image`` each image of a batch has the whole pool: a batch-N
    network gets N times the pool for its batch-N tensors (perf.toml says why).
    """

    def __init__(self, ops: Sequence[DlaOp], data: PerfData, spec: DlaSpec, cond: Conditions,
                 layout: Layout | None = None) -> None:
        layout = layout or channel_layout(ops, data, spec, cond)
        limit = spec.sram_bytes * data.model["sram_activation_share"].value
        if data.model["sram_per_image"].value:  # the batch: the leading dim of the network's input
            limit *= max(1, next((t.dims[0] for op in ops for t in op.inputs if t.graph_input), 1))
        parent: dict[str, str] = {}

        def root(name: str) -> str:
            while parent.get(name, name) != name:
                parent[name] = parent.get(parent[name], parent[name])
                name = parent[name]
            return name

        for a, b in layout.links:
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[ra] = rb
        find = root if parent else str  # most networks alias nothing: skip the lookups
        outputs = [op.outputs for op in ops]
        last_use: dict[str, int] = {}
        pinned: set[str] = set()
        for index, op in enumerate(ops):
            for t in op.inputs:
                last_use[find(t.name)] = index
                if op.device != Device.DLA or t.graph_input:
                    pinned.add(find(t.name))
            for t in outputs[index]:
                last_use.setdefault(find(t.name), index)
                if t.graph_output:
                    pinned.add(find(t.name))
        sources: dict[str, list[str]] = {}
        for a, b in layout.links:
            sources.setdefault(a, []).append(b)
        self.resident: set[str] = set()
        # the live tensors' total and, per op index, those freed after it: O(1) per op however many are live
        # (sizes are whole bytes, so the running total is exact)
        used = 0.0
        frees: dict[int, list[float]] = {}

        def allocate(size: float, name: str, index: int) -> bool:
            nonlocal used
            if size + used > limit:
                return False
            used += size
            frees.setdefault(max(last_use.get(find(name), -1), index), []).append(size)
            return True

        for index, op in enumerate(ops):
            if op.device == Device.DLA:
                copied = {t.name for t in layout.copies.get(index, ())} if op.kind == "slice" else ()
                for out in outputs[index]:
                    if find(out.name) in pinned:
                        continue
                    if out.name in sources and out.name not in copied:
                        # a view, or a concat whose copied inputs must fit beside the parts written in place
                        extra = (sum(tensor_bytes(t, cond, spec) for t in layout.copies.get(index, ()))
                                 if op.kind == "concat" else 0.0)
                        if (all(s in self.resident for s in sources[out.name])
                                and (extra == 0 or allocate(extra, out.name, index))):
                            self.resident.add(out.name)
                    elif allocate(tensor_bytes(out, cond, spec), out.name, index):
                        self.resident.add(out.name)
            for size in frees.pop(index, ()):
                used -= size

    def dram(self, t: Tensor) -> bool:
        return t.name not in self.resident


def raw_costs(ops: Sequence[DlaOp], data: PerfData, spec: DlaSpec, cond: Conditions) -> list[RawCost]:
    """Ideal cycles and DRAM bytes of every op (GPU ops get their DRAM bytes; their cycles are priced apart)."""
    layout = channel_layout(ops, data, spec, cond)
    residency = Residency(ops, data, spec, cond, layout)
    aligned_rows = bool(data.model["cbuf_rows_bank_aligned"].value)
    weight_banks = max(1, min(int(spec.cbuf_banks) - 1, round(spec.cbuf_banks * data.model["cbuf_weight_share"].value)))
    costs = []
    for index, op in enumerate(ops):
        if op.kind == "free":
            costs.append(RawCost(0.0, 0.0, counted=False))
            continue
        if op.kind in ("slice", "concat"):
            costs.append(copy_cost(op, layout.copies.get(index, []), residency, spec, cond))
            continue
        cycles, sparse = unit_cycles(op, spec, cond)
        out_bytes = tensor_bytes(op.output, cond, spec) if op.output else 0.0
        write = out_bytes if (op.output is None or residency.dram(op.output)) else 0.0
        reads = [(tensor_bytes(t, cond, spec), residency.dram(t)) for t in op.inputs]
        refetch = 0.0
        n = launches(op)
        w_bytes = op.weight_elems * cond.bytes_per_element
        if op.weight_elems and op.kind != "depthwise":
            # CBUF tiling of the whole batch, image by image (each image is its own hardware op, :func:`launches`):
            # whether the batch shares one weight fetch follows from the tiling the compiler picks (conv_traffic)
            main, main_dram = reads[0] if reads else (0.0, False)
            rest = sum(b for b, d in reads[1:] if d)
            moved, refetch = conv_traffic(op, w_bytes, main / n, main_dram, n, spec, weight_banks, aligned_rows)
            dram = moved + rest + write
        else:
            dram = sum(b for b, d in reads if d) + write + w_bytes
        costs.append(RawCost(cycles, dram, sparse, counted=n, refetch_bytes=refetch))
    return costs


def copy_cost(op: DlaOp, moved: Sequence[Tensor], residency: Residency, spec: DlaSpec, cond: Conditions) -> RawCost:
    """A slice / concat: nothing for the parts that are views or written in place; each copied part is read and
    written once by the data-movement engine (``dma_bytes_per_clk``) as its own hardware op (TensorRT's parser
    turns a Split into one Slice per output, dla.md 1.2; a concat input copied into place is one transfer)."""
    if not moved:
        return RawCost(0.0, 0.0, counted=0.0)
    sizes = [tensor_bytes(t, cond, spec) for t in moved]
    if op.kind == "slice":
        src_dram = bool(op.inputs) and residency.dram(op.inputs[0])
        dram = sum(sizes) * src_dram + sum(b for b, t in zip(sizes, moved, strict=True) if residency.dram(t))
    else:
        out_dram = op.output is None or residency.dram(op.output)
        dram = sum(b for b, t in zip(sizes, moved, strict=True) if residency.dram(t)) + sum(sizes) * out_dram
    return RawCost(sum(sizes) / spec.dma_bytes_per_clk, dram, counted=launches(op) * len(moved))


def conv_traffic(op: DlaOp, w_bytes: float, main: float, main_dram: bool, images: float, spec: DlaSpec,
                 weight_banks: int, aligned: bool = True) -> tuple[float, float]:
    """DRAM bytes of a convolution's weights and main input over a batch of ``images`` (``main``: one image's
    bytes), and the part of them that is fetched again.

    When weights and one image's input fit the CBUF together, each is read once and the weights stay for the next
    image (NVDLA's CSC keeps CBUF-resident weights for the next hardware op: weight_reuse / skip_weight_rls,
    [NVDLA] unit_description.rst). Otherwise the compiler tiles the op, splitting the CBUF's banks between a
    weight chunk and an input stripe as TensorRT's CBUF check allots ``wtBanks + dataBanks <= 16`` ([model]
    cbuf_weight_share of the banks for weights). The stripe holds whole rows, at least the kernel height
    (dla.md 1.2), aligned to banks with [model] cbuf_rows_bank_aligned (:func:`bank_rows`). The compiler keeps a
    weight chunk and streams every image's input once per chunk (weight-stationary: the batch shares the weight
    fetch), or keeps an input stripe and streams all the weights once per stripe of every image
    (input-stationary: nothing to share), whichever moves fewer DRAM bytes. A stripe of a KxK convolution also
    re-reads the K - stride halo rows its neighbour already read.

    Why the re-fetched part is returned apart: a tiled op has filled its CBUF banks with the current pass (weight
    chunk or stripe), so the next pass's copy of the data can only be loaded into banks the running pass has
    released: these transfers cannot be prefetched behind the compute as a single streaming pass can. Measured
    support: split into a DLA-clocked and an EMC-clocked part (benchmarks/bench_estimate.py, clock split),
    SSD-ResNet-34 (12 convs of 256 channels at 150x150 that fit neither CBUF nor SRAM) has ~6 ms of EMC-clocked
    time at 3200 MHz that a per-op roofline hides behind its compute, the ResNet-34 backbone (the same layers at
    48x80: inputs a sixth the size, half of them resident in SRAM) ~1.3 ms. Priced this way the re-fetches add to
    the op's time (:func:`op_times`). UNSURE: the DLA compiler's real tiling is not published; this is NVDLA's
    (full-weight split-H or full-input partial-weight) reasoning with TensorRT's bank sizes.
    """
    main_d = main if main_dram else 0.0
    if w_bytes + main <= spec.cbuf_bytes:
        return w_bytes + main_d * images, 0.0
    banks = int(spec.cbuf_banks)
    bank = spec.cbuf_bytes / banks
    w_cap, d_cap = weight_banks * bank, (banks - weight_banks) * bank
    stripes, halo = stripe_geometry(op, main, d_cap, bank if aligned else 0.0)
    passes = math.ceil(w_bytes / w_cap)
    weight_stationary = (w_bytes + main_d * images * halo * passes, main_d * images * (halo * passes - 1.0))
    input_stationary = (w_bytes * images * stripes + main_d * images * halo,
                        w_bytes * (images * stripes - 1) + main_d * images * (halo - 1.0))
    return weight_stationary if weight_stationary[0] <= input_stationary[0] else input_stationary


def bank_rows(row: float, d_cap: float, bank: float) -> int:
    """Whole input rows that ``d_cap`` bytes of data banks hold; with ``bank`` > 0 no row straddles a bank
    boundary, so a row wider than a bank takes whole banks (a 150-pixel row of 256 INT8 channels, 37.5 KiB, takes
    two 32 KiB banks: 4 rows in 8 banks instead of 6)."""
    if bank <= 0:
        return int(d_cap // row)
    banks = int(d_cap // bank)
    if row <= bank:
        return banks * int(bank // row)
    return banks // math.ceil(row / bank)


def stripe_geometry(op: DlaOp, main: float, d_cap: float, bank: float = 0.0) -> tuple[int, float]:
    """Stripes per image and input rows read / input rows, when a convolution's input (``main`` bytes for one
    image) is tiled by rows through ``d_cap`` bytes of CBUF data banks (row alignment: :func:`bank_rows`).

    A stripe holds as many whole input rows (all channels, native layout) as fit, at least the kernel height;
    it yields ``(rows - K) // stride + 1`` output rows, and the next stripe starts ``stride`` rows after the
    last output row's first input row, so ``K - stride`` rows are read twice.
    """
    if op.kind != "conv" or not op.inputs or op.output is None or op.inputs[0].dims[2] <= 1:
        return max(1, math.ceil(main / d_cap)), 1.0
    h, out_h = op.inputs[0].dims[2], op.output.dims[2]
    kh = op.kernel[0]
    stride = max(1, round(h / max(1, out_h)))
    rows = max(kh, bank_rows(main / h, d_cap, bank))
    if rows >= h:
        return 1, 1.0
    out_rows = max(1, (rows - kh) // stride + 1)
    stripes = math.ceil(out_h / out_rows)
    return stripes, (h + (stripes - 1) * max(0, kh - stride)) / h


def halo_factor(op: DlaOp, main: float, d_cap: float, bank: float = 0.0) -> float:
    """Input rows read / input rows of a row-tiled convolution (see :func:`stripe_geometry`)."""
    return stripe_geometry(op, main, d_cap, bank)[1]


def core_bandwidth(spec: DlaSpec, cond: Conditions) -> float:
    """Peak DRAM bytes/s one core can draw: its share of the bus when all cores stream, capped by its port."""
    return cond.dram_gbps * 1e9 * min(1.0 / max(1, cond.cores), spec.core_bus_share)


#: EMC clock at which the per-op overhead is stated (AGX Orin's uncapped LPDDR5 clock).
REFERENCE_EMC_MHZ = 3200.0


def overhead_seconds(overhead_us: float, emc_mhz: float) -> float:
    """Fixed cost of launching one DLA op, scaled with the DRAM clock.

    Why the DRAM clock and not the DLA clock: fitting each measured network as ``a / f_dla + b / f_emc`` leaves
    ``a`` equal to the modelled MAC-array cycles (within 13%) for every network, so no part of the DLA-clocked
    time is left for a per-op cost; the rest scales with the EMC clock. We read it as per-op setup bound by DRAM
    latency (descriptor and first weight / data fetches before the pipeline fills).
    """
    return overhead_us * 1e-6 * REFERENCE_EMC_MHZ / emc_mhz


def loadable_seconds(launch_us: float, falcon_mhz: float) -> float:
    """Fixed cost of one inference of one DLA loadable (a task), scaled with the DLA's Falcon clock.

    What it stands for: the Falcon microcontroller schedules the loadable's task, once per inference however many
    images the batch holds (dla.md 3.1: DLA core for math, Falcon for scheduling; its clock has its own nvpmodel
    cap). Why the Falcon clock: fitted as a free parameter, a per-inference cost on the EMC clock or on no clock
    leaves ResNet-50's 15W row 7% too fast; on the Falcon (or core) clock the four power modes fit within 1%
    (issue 21). Why it exists at all: it is what makes a batch-1 network slower per image than batch 2 (NVIDIA's
    ResNet-50 at batch 1 on one DRIVE Orin DLA, dla.md 3.6), a few percent of a large detector's time; the
    per-op overhead (:func:`overhead_seconds`) is paid per image. A network split by GPU fallback runs one
    loadable per DLA subgraph, each launched in turn.
    """
    return launch_us * 1e-6 * REFERENCE_FALCON_MHZ / falcon_mhz


def dla_loadables(ops: Sequence[DlaOp]) -> int:
    """DLA loadables one inference launches: runs of DLA ops between GPU ops, in execution order (TensorRT builds
    one DLA subgraph per run; the reshapes of kind "free" belong to no engine)."""
    count, on_dla = 0, False
    for op in ops:
        if op.kind == "free":
            continue
        if op.device == Device.DLA and not on_dla:
            count += 1
        on_dla = op.device == Device.DLA
    return count


def depthwise_ops(ops: Sequence[DlaOp]) -> np.ndarray:
    """Which ops run on the depthwise path (the calibration's depthwise efficiency applies to them)."""
    return np.array([op.kind == "depthwise" for op in ops], dtype=bool)


def op_parts(
    cycles: np.ndarray, dram_bytes: np.ndarray, calib: Calibration | Sequence[float], dla_mhz: float,
    bandwidth: float, refetch_bytes: np.ndarray | None = None, depthwise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds per op of compute (the MAC array's efficiency, or the depthwise path's for the ops marked in
    ``depthwise``), of all of ``dram_bytes`` and of its CBUF re-fetches (``refetch_bytes``, see
    :func:`conv_traffic`): the streamed traffic is the second minus the third. ``calib`` as in :func:`op_times`."""
    eff_c, eff_m, _, _, eff_dw = calib.vector() if isinstance(calib, Calibration) else calib
    if depthwise is not None and eff_dw != eff_c:
        eff_c = np.where(depthwise, eff_dw, eff_c)
    compute = cycles / (eff_c * dla_mhz * 1e6)
    memory = dram_bytes / (eff_m * bandwidth)
    serial = np.zeros_like(memory) if refetch_bytes is None else refetch_bytes / (eff_m * bandwidth)
    return compute, memory, serial


def op_times(
    cycles: np.ndarray, dram_bytes: np.ndarray, counted: np.ndarray, calib: Calibration | Sequence[float],
    dla_mhz: float, bandwidth: float, emc_mhz: float = REFERENCE_EMC_MHZ, refetch_bytes: np.ndarray | None = None,
    depthwise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds per op: compute and the streamed memory traffic overlap by ``overlap`` (1 = perfect roofline max,
    0 = they add up); the CBUF re-fetches of a tiled op (``refetch_bytes``, part of ``dram_bytes``) add to it,
    see :func:`conv_traffic`; plus the per-op overhead. The ops marked in ``depthwise`` run at the depthwise
    path's own efficiency instead of the MAC array's (``calib``: compute, DRAM and depthwise efficiency, per-op
    overhead, overlap; :meth:`~dlakit.perf.hardware.Calibration.vector`).

    Returns (time, compute seconds, memory seconds of all of ``dram_bytes``).
    """
    _, _, overhead, overlap, _ = calib.vector() if isinstance(calib, Calibration) else calib
    compute, memory, serial = op_parts(cycles, dram_bytes, calib, dla_mhz, bandwidth, refetch_bytes, depthwise)
    streamed = memory - serial
    time = np.maximum(compute, streamed) + (1.0 - overlap) * np.minimum(compute, streamed) + serial
    time = time + counted * overhead_seconds(overhead, emc_mhz)
    return time, compute, memory
