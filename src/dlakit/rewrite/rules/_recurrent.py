"""Unrolling ONNX GRU / LSTM / RNN into DLA layers: per-time-step 1x1 convolutions and element-wise gates.

DLA has no recurrent layer, but with constant weights every gate is a fully-connected layer (a 1x1 convolution)
plus Sigmoid/Tanh activations and element-wise Sum/Prod — all DLA layers. The sequence is laid out as
``[batch, input, 1, seq]`` so that one convolution per gate projects every time step at once, and each step takes
its column with a Slice along W (a CHW slice, which DLA allows). The hidden state is ``[batch, hidden, 1, 1]``; the
recurrent projection is one 1x1 convolution per gate and step. Outputs are concatenated along channels and
reshaped back to ONNX's layouts. This is NVIDIA's GRU recipe, generalised to LSTM and RNN and to both directions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from dlakit.rewrite.engine import RuleContext
from dlakit.rewrite.rules._common import const_of, dims, need_float, numpy_dtype, reshape, slice_

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


class Unroller:
    """Emits the shared parts: the sequence layout, gate projections, step slices, outputs."""

    def __init__(self, ctx: RuleContext, node: ir.Node, rec: Recurrence, gates: int) -> None:
        self.ctx, self.node, self.rec, self.gates = ctx, node, rec, gates
        x = node.inputs[0]
        perm = [1, 2, 0] if rec.layout == 0 else [0, 2, 1]
        transposed = ctx.op("Transpose", [x], {"perm": perm})
        self.sequence = reshape(ctx, transposed, [rec.batch, rec.weights.shape[-1], 1, rec.seq])

    def conv(self, x: ir.Value, weight: np.ndarray, bias: np.ndarray | None = None) -> ir.Value:
        rows, cols = weight.shape
        inputs = [x, self.ctx.const(weight.reshape(rows, cols, 1, 1).astype(self.rec.dtype), "weight")]
        if bias is not None:
            inputs.append(self.ctx.const(bias.astype(self.rec.dtype), "bias"))
        return self.ctx.op("Conv", inputs, {"kernel_shape": [1, 1]})

    def gate_rows(self, matrix: np.ndarray, gate: int) -> np.ndarray:
        h = self.rec.hidden
        return matrix[gate * h:(gate + 1) * h]

    def input_projections(self, d: int, with_recurrent_bias: set[int]) -> list[ir.Value]:
        """Per gate: W·x_t + Wb (+ Rb where the gate adds it unconditionally), for all t at once."""
        h, g = self.rec.hidden, self.gates
        w_bias, r_bias = self.rec.bias[d, :g * h], self.rec.bias[d, g * h:]
        out = []
        for gate in range(g):
            bias = self.gate_rows(w_bias, gate) + (self.gate_rows(r_bias, gate) if gate in with_recurrent_bias
                                                   else 0)
            out.append(self.conv(self.sequence, self.gate_rows(self.rec.weights[d], gate), bias))
        return out

    def step(self, projection: ir.Value, t: int) -> ir.Value:
        return slice_(self.ctx, projection, [t], [t + 1], [3])

    def recurrent(self, d: int, gate: int, state: ir.Value, bias: bool = False) -> ir.Value:
        r_bias = self.rec.bias[d, self.gates * self.rec.hidden:]
        return self.conv(state, self.gate_rows(self.rec.recurrence[d], gate),
                         self.gate_rows(r_bias, gate) if bias else None)

    def initial(self, index: int, d: int) -> ir.Value:
        """The initial state (initial_h / initial_c) of direction d as [batch, H, 1, 1]."""
        inputs = list(self.node.inputs) + [None] * 8
        value = inputs[index]
        shape = [self.rec.batch, self.rec.hidden, 1, 1]
        if value is None:
            return self.ctx.const(np.zeros(shape, dtype=self.rec.dtype), "initial_state")
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
        negated = self.ctx.op("Mul", [x, self.ctx.const(np.array(-1, dtype=self.rec.dtype), "minus_one")])
        return self.ctx.op("Add", [negated, self.ctx.const(np.array(1, dtype=self.rec.dtype), "one")])

    def run(self, cell: Callable[[int, int, list[ir.Value], list[ir.Value]], list[ir.Value]],
            states: Callable[[int], list[ir.Value]], projections: Callable[[int], list[ir.Value]]
            ) -> tuple[list[list[ir.Value]], list[list[ir.Value]]]:
        """Run the cell over time for every direction; return per direction the H_t in time order and final states."""
        hiddens, finals = [], []
        for d, direction in enumerate(self.rec.directions):
            state = states(d)
            proj = projections(d)
            order = range(self.rec.seq) if direction == "forward" else range(self.rec.seq - 1, -1, -1)
            outputs: dict[int, ir.Value] = {}
            for t in order:
                state = cell(d, t, proj, state)
                outputs[t] = state[0]
            hiddens.append([outputs[t] for t in range(self.rec.seq)])
            finals.append(state)
        return hiddens, finals

    def sequence_output(self, hiddens: list[list[ir.Value]]) -> ir.Value:
        """Y: [seq, dirs, batch, H] (layout 0) or [batch, seq, dirs, H] (layout 1)."""
        rec = self.rec
        per_direction = []
        for steps in hiddens:
            joined = self.ctx.op("Concat", steps, {"axis": 1}) if len(steps) > 1 else steps[0]
            per_direction.append(reshape(self.ctx, joined, [rec.batch, rec.seq, 1, rec.hidden]))
        y = self.ctx.op("Concat", per_direction, {"axis": 2}) if len(per_direction) > 1 else per_direction[0]
        return y if rec.layout == 1 else self.ctx.op("Transpose", [y], {"perm": [1, 2, 0, 3]})

    def state_output(self, finals: list[ir.Value]) -> ir.Value:
        """Y_h / Y_c: [dirs, batch, H] (layout 0) or [batch, dirs, H] (layout 1)."""
        rec = self.rec
        shape = [1, rec.batch, rec.hidden] if rec.layout == 0 else [rec.batch, 1, rec.hidden]
        parts = [reshape(self.ctx, f, shape) for f in finals]
        return self.ctx.op("Concat", parts, {"axis": rec.layout}) if len(parts) > 1 else parts[0]
