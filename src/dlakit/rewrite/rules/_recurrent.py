"""Unrolling ONNX GRU / LSTM / RNN into DLA layers: per-time-step 1x1 convolutions and element-wise gates.

DLA has no recurrent layer, but with constant weights every gate is a fully-connected layer (a 1x1 convolution)
plus Sigmoid/Tanh activations and element-wise Sum/Prod — all DLA layers. The sequence is laid out as
``[batch, input, 1, seq]`` and each step takes its column x_t with a Slice along W (a CHW slice, which DLA allows).
The hidden state is ``[batch, hidden, 1, 1]``; each gate and step is one 1x1 convolution over ``[x_t; H]`` (a
channel Concat) with the gate's ``[W | R]``, its activation fused behind it, so a step costs one DLA operation per
gate plus the cell's element-wise arithmetic. Outputs are concatenated along channels and reshaped back to ONNX's
layouts. This is NVIDIA's GRU recipe, generalised to LSTM and RNN and to both directions.

The unrolled graph stays small and in one piece:

* **one initializer per weight**: every step's convolution of a gate (and every peephole, bias and constant)
  references the same initializer, so the model's size does not grow with the sequence length (W is stored a
  second time alone, for the first step, whose zero initial state leaves no R term);
* **Concats within DLA's limit**: the hidden states of all steps are joined in Concats of at most
  ``general.dims`` channels (``rules.toml``), so the per-step states stay inside the DLA subgraph and only a few
  chunk tensors cross to the GPU, where they are joined along the sequence; a recurrence for which no split
  stays within the limits is refused with a reason naming the limit;
* **no needless transitions**: when the model made the sequence out of a ``[N, C, 1, W]`` feature map
  (Squeeze/Reshape + Transpose, as CNN+RNN recognisers do) the unrolled cell reads that feature map directly,
  so the CNN and the recurrence form one DLA subgraph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import RuleContext
from dlakit.rewrite.rules._common import const_of, dims, need_float, numpy_dtype, reshape, slice_
from dlakit.rewrite.rules._limits import conv_input_channels_max, conv_output_maps_max, dims_max

ACTIVATIONS = {"Sigmoid", "Tanh", "Relu"}
MAX_STEPS = 256  # beyond this the unrolled graph is too large to be useful (and too slow to build)


@dataclass
class Recurrence:
    """Everything a cell needs, read from the node and checked."""

    seq: int
    batch: int
    hidden: int
    directions: list[str]  # "forward"/"reverse" per direction index
    weights: np.ndarray  # [dirs, gates*H, input]
    recurrence: np.ndarray  # [dirs, gates*H, H]
    bias: np.ndarray  # [dirs, 2*gates*H]
    activations: list[str]
    layout: int
    dtype: np.dtype


def plan(node: ir.Node, gates: int, default_activations: list[str]) -> Recurrence | str:
    x = node.inputs[0]
    reason = need_float(x)
    if reason:
        return reason
    shape = dims(x)
    if shape is None or len(shape) != 3:
        return "the input sequence is not a static 3-D tensor (give --shapes)"
    layout = node.attributes.get_int("layout", 0)
    seq, batch = (shape[0], shape[1]) if layout == 0 else (shape[1], shape[0])
    if seq > MAX_STEPS:
        return f"{seq} time steps: unrolling beyond {MAX_STEPS} would make a graph too large to be useful"
    weights, recurrence = const_of(node.inputs[1]), const_of(node.inputs[2])
    if weights is None or recurrence is None:
        return "the weights W/R are not build-time constants"
    inputs = list(node.inputs) + [None] * 8
    bias = const_of(inputs[3]) if inputs[3] is not None else None
    if inputs[3] is not None and bias is None:
        return "the bias B is not a build-time constant"
    hidden = node.attributes.get_int("hidden_size", recurrence.shape[-1])
    lens = inputs[4]
    if lens is not None:
        array = const_of(lens)
        if array is None or np.any(array != seq):
            return "sequence_lens is given and not every sequence is full-length"
    reason = _channel_limits(seq, hidden, int(weights.shape[-1]))
    if reason:
        return reason
    if "clip" in node.attributes:
        return "the cell clips its pre-activations (clip attribute), which DLA's activations cannot express"
    direction = node.attributes.get_string("direction", "forward")
    directions = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    names = node.attributes.get_strings("activations", default_activations * len(directions))
    if any(name not in ACTIVATIONS for name in names):
        return f"activations {names}: only {sorted(ACTIVATIONS)} run on DLA"
    if "activation_alpha" in node.attributes or "activation_beta" in node.attributes:
        return "the activations take alpha/beta parameters"
    if bias is None:
        bias = np.zeros((len(directions), 2 * gates * hidden), dtype=weights.dtype)
    return Recurrence(seq, batch, hidden, directions, weights, recurrence, bias, list(names), layout,
                      numpy_dtype(x))


def _channel_limits(seq: int, hidden: int, inputs: int) -> str | None:
    """Why no unrolled form fits DLA's channel limits (``rules.toml``), or None.

    A step's state is ``hidden`` channels, a step's projection reads ``inputs`` channels, and the sequence output
    is ``[batch, seq, 1, hidden]`` however the Concats are split, so each of the three must be within the limits.
    """
    if hidden > conv_output_maps_max():
        return (f"hidden size {hidden} exceeds DLA's {conv_output_maps_max()} output maps per convolution "
                "(conv.output-maps): no unrolled form keeps a step's state on DLA")
    if max(inputs, hidden) > conv_input_channels_max():
        return (f"input size {inputs} / hidden size {hidden}: over DLA's {conv_input_channels_max()} input "
                "channels per convolution (conv.input-channels)")
    if seq > dims_max() or hidden > dims_max():
        return (f"the sequence output [batch, {seq}, 1, {hidden}] has a dimension over DLA's {dims_max()} "
                "(general.dims): no split of its Concat stays within the limit")
    return None


def _already_laid_out(x: ir.Value, perm: list[int], layout: list[int]) -> ir.Value | None:
    """The tensor ``[batch, input, 1, seq]`` that ``x`` was made from, if the model built ``x`` out of it.

    A CNN+RNN recogniser turns the feature map ``[N, C, 1, W]`` into the sequence by Squeeze/Reshape and Transpose;
    unrolling wants that feature map back. Reading it directly (rather than transposing ``x`` back) keeps the CNN
    and the recurrence in one DLA subgraph instead of a round trip through the GPU's shuffles.
    """
    node = x.producer()
    if node is None or node.op_type != "Transpose" or node.inputs[0] is None:
        return None
    inner = node.attributes.get_ints("perm", None)
    if inner is None or [inner[i] for i in perm] != list(range(len(perm))):
        return None
    source = node.inputs[0]  # [batch, input, seq]
    made = source.producer()
    if (made is not None and made.op_type in ("Squeeze", "Reshape") and made.inputs[0] is not None
            and dims(made.inputs[0]) == tuple(layout)):
        return made.inputs[0]
    return None


def chunks(count: int, width: int, limit: int) -> list[range]:
    """Consecutive groups of ``count`` items of ``width`` channels each, every group at most ``limit`` channels."""
    per = max(1, limit // width)
    return [range(start, min(start + per, count)) for start in range(0, count, per)]


class Unroller:
    """Emits the shared parts: the sequence layout, step slices, gate convolutions, outputs."""

    def __init__(self, ctx: RuleContext, node: ir.Node, rec: Recurrence, gates: int) -> None:
        self.ctx, self.node, self.rec, self.gates = ctx, node, rec, gates
        self._shared: dict[tuple, ir.Value] = {}
        self._steps: dict[int, ir.Value] = {}
        self._joined: dict[tuple[int, ir.Value], ir.Value] = {}
        self._zeros: set[ir.Value] = set()  # initial states the model leaves out (all zero)
        x = node.inputs[0]
        perm = [1, 2, 0] if rec.layout == 0 else [0, 2, 1]
        layout = [rec.batch, rec.weights.shape[-1], 1, rec.seq]
        self.sequence = _already_laid_out(x, perm, layout) or reshape(
            ctx, ctx.op("Transpose", [x], {"perm": perm}), layout)

    def shared(self, key: tuple, make: Callable[[], np.ndarray], hint: str) -> ir.Value:
        """The one initializer for ``key`` (a gate's weight, a bias, a constant), made on first use.

        Every time step references it, so unrolling over T steps stores each weight once, not T times.
        """
        if key not in self._shared:
            self._shared[key] = self.ctx.const(np.asarray(make()).astype(self.rec.dtype), hint)
        return self._shared[key]

    def conv(self, x: ir.Value, key: tuple, weight: Callable[[], np.ndarray],
             bias: Callable[[], np.ndarray] | None = None, bias_key: tuple = ()) -> ir.Value:
        def kernel() -> np.ndarray:
            matrix = weight()
            return matrix.reshape(*matrix.shape, 1, 1)

        inputs = [x, self.shared(("weight", *key), kernel, "weight")]
        if bias is not None:
            inputs.append(self.shared(("bias", *bias_key), bias, "bias"))
        return self.ctx.op("Conv", inputs, {"kernel_shape": [1, 1]})

    def gate_rows(self, matrix: np.ndarray, gate: int) -> np.ndarray:
        h = self.rec.hidden
        return matrix[gate * h:(gate + 1) * h]

    def x_step(self, t: int) -> ir.Value:
        """x_t as ``[batch, input, 1, 1]``: one Slice per time step, shared by both directions and every gate."""
        if t not in self._steps:
            self._steps[t] = slice_(self.ctx, self.sequence, [t], [t + 1], [3])
        return self._steps[t]

    def gate(self, d: int, gate: int, t: int, state: ir.Value | None, recurrent_bias: bool = True) -> ir.Value:
        """``W_g·x_t + R_g·state + Wb_g (+ Rb_g)``, the gate's pre-activation at step t (no R term if state is None).

        One 1x1 convolution over ``[x_t; state]`` with the gate's ``[W_g | R_g]`` (one initializer for all steps)
        when the joined channels fit DLA's input-channel limit, else a convolution per operand summed by an Add.
        Either way the gate's activation (and an added peephole) ride in the convolution's SDP stage: one DLA
        operation per gate and step.
        """
        rec, h = self.rec, self.rec.hidden
        w_bias, r_bias = rec.bias[d, :self.gates * h], rec.bias[d, self.gates * h:]
        bias = self.gate_rows(w_bias, gate) + (self.gate_rows(r_bias, gate) if recurrent_bias else 0)
        bias_key = (d, gate, recurrent_bias)
        x_t = self.x_step(t)
        if state is None or state in self._zeros:
            return self.conv(x_t, ("input", d, gate), lambda: self.gate_rows(rec.weights[d], gate),
                             lambda: bias, bias_key)
        if rec.weights.shape[-1] + h <= conv_input_channels_max():
            key = (t, state)
            if key not in self._joined:
                self._joined[key] = self.ctx.op("Concat", [x_t, state], {"axis": 1})
            return self.conv(self._joined[key], ("joint", d, gate),
                             lambda: np.concatenate([self.gate_rows(rec.weights[d], gate),
                                                     self.gate_rows(rec.recurrence[d], gate)], axis=1),
                             lambda: bias, bias_key)
        projected = self.conv(x_t, ("input", d, gate), lambda: self.gate_rows(rec.weights[d], gate),
                              lambda: bias, bias_key)
        return self.add(self.recurrent(d, gate, state), projected)

    def recurrent(self, d: int, gate: int, state: ir.Value, bias: bool = False) -> ir.Value:
        """``R_g·state (+ Rb_g)`` alone (GRU's linear_before_reset candidate)."""
        r_bias = self.rec.bias[d, self.gates * self.rec.hidden:]
        return self.conv(state, ("recurrent", d, gate), lambda: self.gate_rows(self.rec.recurrence[d], gate),
                         (lambda: self.gate_rows(r_bias, gate)) if bias else None, ("recurrent", d, gate))

    def is_zero(self, state: ir.Value) -> bool:
        return state in self._zeros

    def initial(self, index: int, d: int) -> ir.Value:
        """The initial state (initial_h / initial_c) of direction d as [batch, H, 1, 1]."""
        inputs = list(self.node.inputs) + [None] * 8
        value = inputs[index]
        shape = [self.rec.batch, self.rec.hidden, 1, 1]
        if value is None:
            zeros = self.shared(("zeros", index, d), lambda: np.zeros(shape), "initial_state")
            self._zeros.add(zeros)
            return zeros
        picked = slice_(self.ctx, value, [d], [d + 1], [0]) if len(self.rec.directions) > 1 else value
        return reshape(self.ctx, picked, shape)

    def act(self, name: str, x: ir.Value) -> ir.Value:
        return self.ctx.op(name, [x])

    def add(self, *values: ir.Value) -> ir.Value:
        total = values[0]
        for value in values[1:]:
            total = self.ctx.op("Add", [total, value])
        return total

    def mul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.ctx.op("Mul", [a, b])

    def one_minus(self, x: ir.Value) -> ir.Value:
        negated = self.ctx.op("Mul", [x, self.shared(("scalar", -1), lambda: np.array(-1), "minus_one")])
        return self.ctx.op("Add", [negated, self.shared(("scalar", 1), lambda: np.array(1), "one")])

    def run(self, cell: Callable[[int, int, list[ir.Value]], list[ir.Value]],
            states: Callable[[int], list[ir.Value]]) -> tuple[list[list[ir.Value]], list[list[ir.Value]]]:
        """Run the cell over time for every direction; return per direction the H_t in time order and final states."""
        hiddens, finals = [], []
        for d, direction in enumerate(self.rec.directions):
            state = states(d)
            order = range(self.rec.seq) if direction == "forward" else range(self.rec.seq - 1, -1, -1)
            outputs: dict[int, ir.Value] = {}
            for t in order:
                state = cell(d, t, state)
                outputs[t] = state[0]
            hiddens.append([outputs[t] for t in range(self.rec.seq)])
            finals.append(state)
        return hiddens, finals

    def sequence_output(self, hiddens: list[list[ir.Value]]) -> ir.Value:
        """Y: [seq, dirs, batch, H] (layout 0) or [batch, seq, dirs, H] (layout 1)."""
        rec = self.rec
        per_direction = [self.join_steps(steps) for steps in hiddens]
        y = self.ctx.op("Concat", per_direction, {"axis": 2}) if len(per_direction) > 1 else per_direction[0]
        return y if rec.layout == 1 else self.ctx.op("Transpose", [y], {"perm": [1, 2, 0, 3]})

    def join_steps(self, steps: list[ir.Value]) -> ir.Value:
        """The states ``[batch, H, 1, 1]`` of every step as ``[batch, seq, 1, H]``.

        One channel Concat of all steps would have ``seq × H`` channels; the steps are joined in chunks of at most
        ``general.dims`` channels each (DLA Concats, so the per-step states never leave the DLA subgraph), and the
        chunks, reshaped to ``[batch, 1, k, H]``, are joined along the sequence on the GPU.
        """
        rec = self.rec
        shape = [rec.batch, rec.seq, 1, rec.hidden]
        groups = chunks(len(steps), rec.hidden, dims_max())
        if len(groups) == 1:
            return reshape(self.ctx, self.ctx.op("Concat", steps, {"axis": 1}) if len(steps) > 1 else steps[0],
                           shape)
        parts = []
        for group in groups:
            members = [steps[t] for t in group]
            joined = self.ctx.op("Concat", members, {"axis": 1}) if len(members) > 1 else members[0]
            parts.append(reshape(self.ctx, joined, [rec.batch, 1, len(members), rec.hidden]))
        # the join runs along H (axis 2): the GPU's, with the reshapes around it, so no one-node DLA island forms
        return reshape(self.ctx, self.ctx.op("Concat", parts, {"axis": 2}), shape)

    def state_output(self, finals: list[ir.Value]) -> ir.Value:
        """Y_h / Y_c: [dirs, batch, H] (layout 0) or [batch, dirs, H] (layout 1)."""
        rec = self.rec
        shape = [1, rec.batch, rec.hidden] if rec.layout == 0 else [rec.batch, 1, rec.hidden]
        parts = [reshape(self.ctx, f, shape) for f in finals]
        return self.ctx.op("Concat", parts, {"axis": rec.layout}) if len(parts) > 1 else parts[0]
