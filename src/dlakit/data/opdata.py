"""The op knowledge base: ``data/ops.toml`` loaded once, validated, and read through :func:`op_data`.

Per ONNX op it says the TensorRT layer the parser makes and the rewrite that makes it DLA-ready (``check``), the
operation kind and DLA unit of the performance model (``perf``), how an INT8 build runs it and the equal-scale
constraint it imposes (``quantize``, ``deploy``), and whether it is decoding or post-processing (``prepare``, the cut
pass). Every subpackage asks here rather than keeping its own op tables, so a correction reaches all of them.

This module imports nothing from dlakit, so every layer (``model`` included) can read it without an import cycle.
Checks that need another package's registry (a ``fix`` id must be a rewrite rule) are in the test suite.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

#: Layer names ``ops.toml`` may use (TensorRT's layer types as dlakit names them; ``gpu_only``: none on DLA).
LAYERS = ("convolution", "fully_connected", "deconvolution", "pooling", "reduce", "activation", "prelu", "elementwise",
          "scale", "lrn", "concatenation", "resize", "unary", "slice", "softmax", "shuffle", "comparison", "quantize",
          "cast", "noop", "gpu_only")
#: Layers whose op carries weights (a convolution or matrix product: per-channel INT8 weights, a linear head).
WEIGHTED_LAYERS = ("convolution", "deconvolution", "fully_connected")
PERF_KINDS = ("conv", "deconv", "fc", "pool", "lrn", "activation", "eltwise", "softmax", "free", "move", "resize",
              "slice", "concat")
SDP_ROLES = ("act", "scale")
INT8_MODES = ("int8", "fused", "pass", "fp16", "fp16_only")
EQUAL_SCALES = ("pool", "inputs", "concat")
FLAGS = ("chain", "flatten", "decoding", "postprocess")
#: One confidence vocabulary for every data file (rules.toml, targets.toml, perf.toml).
CONFIDENCE = ("high", "medium", "low")


@dataclass(frozen=True)
class OpInfo:
    """What dlakit knows about one ONNX op (an op absent from ``ops.toml`` gets ``layer="unknown"`` and no roles)."""

    op: str
    layer: str
    fix: str | None = None
    why: str | None = None
    perf: str | None = None  # performance-model kind; None: "other"
    sdp: str | None = None  # "act" / "scale": rides in the SDP behind a convolution
    int8: str | None = None  # INT8 behaviour on the DLA (see INT8_MODES); None: kept on the GPU by the quantizer
    equal_scale: str | None = None
    chain: bool = False
    flatten: bool = False
    decoding: bool = False
    postprocess: bool = False

    @property
    def weighted(self) -> bool:
        return self.layer in WEIGHTED_LAYERS


@dataclass(frozen=True)
class OpData:
    """``ops.toml`` as typed data; :meth:`having` answers "which ops have this property" as a cached frozenset."""

    ops: Mapping[str, OpInfo]
    perf_units: Mapping[str, str]
    fp16_layers: frozenset[str]
    onnx: Mapping[str, frozenset[str]]
    selection_inputs: Mapping[str, int]
    modes: Mapping[str, tuple[str, ...]]
    _having: dict[tuple[str, Any], frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def info(self, op: str) -> OpInfo:
        return self.ops.get(op) or OpInfo(op=op, layer="unknown")

    def having(self, key: str, *values: Any) -> frozenset[str]:
        """The ops whose ``key`` is one of ``values`` (``having("postprocess", True)``, ``having("int8", "fp16",
        "fp16_only")``), or, for ``weighted``, whose layer carries weights."""
        cached = self._having.get((key, values))
        if cached is None:
            cached = frozenset(op for op, info in self.ops.items() if getattr(info, key) in values)
            self._having[(key, values)] = cached
        return cached

    def onnx_ops(self, name: str) -> frozenset[str]:
        """An ONNX-specification op class of ``[onnx]`` (``spatial``, ``axis``, ``type_changing``, ...)."""
        return self.onnx[name]


def read(name: str) -> dict[str, Any]:
    """A data file of ``dlakit.data``, parsed."""
    return tomllib.loads(resources.files("dlakit.data").joinpath(name).read_text(encoding="utf-8"))


def _choice(op: str, entry: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    value = entry.get(key)
    if value is not None and value not in allowed:
        raise ValueError(f"ops.toml: {op}: {key} = {value!r} is not one of {', '.join(allowed)}")
    return value


def _op(op: str, entry: dict[str, Any]) -> OpInfo:
    known = {"layer", "fix", "why", "perf", "sdp", "int8", "equal_scale", *FLAGS}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"ops.toml: {op}: unknown key(s) {', '.join(unknown)}")
    if "layer" not in entry:
        raise ValueError(f"ops.toml: {op} lacks 'layer'")
    _choice(op, entry, "layer", LAYERS)
    if entry["layer"] == "gpu_only" and not entry.get("why"):
        raise ValueError(f"ops.toml: {op} is gpu_only and must say why")
    for flag in FLAGS:
        if not isinstance(entry.get(flag, False), bool):
            raise ValueError(f"ops.toml: {op}: {flag} must be true or false")
    return OpInfo(op=op, layer=entry["layer"], fix=entry.get("fix"), why=entry.get("why"),
                  perf=_choice(op, entry, "perf", PERF_KINDS), sdp=_choice(op, entry, "sdp", SDP_ROLES),
                  int8=_choice(op, entry, "int8", INT8_MODES),
                  equal_scale=_choice(op, entry, "equal_scale", EQUAL_SCALES),
                  **{flag: bool(entry.get(flag, False)) for flag in FLAGS})


@cache
def op_data() -> OpData:
    data = read("ops.toml")
    ops = {op: _op(op, entry) for op, entry in data["ops"].items()}
    units = dict(data["perf_units"])
    missing = sorted({*PERF_KINDS, "depthwise", "other"} - set(units))
    if missing:
        raise ValueError(f"ops.toml: [perf_units] lacks {', '.join(missing)}")
    fp16_layers = frozenset(data["layers"]["fp16_in_int8"])
    if not fp16_layers <= set(LAYERS):
        raise ValueError(f"ops.toml: [layers] fp16_in_int8 names unknown layers {sorted(fp16_layers - set(LAYERS))}")
    onnx = dict(data["onnx"])
    selection = {op: int(n) for op, n in onnx.pop("selection_inputs").items()}
    modes = {op: tuple(values) for op, values in onnx.pop("modes").items()}
    for name, members in onnx.items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ValueError(f"ops.toml: [onnx] {name} must be a list of op names")
    return OpData(ops=ops, perf_units=units, fp16_layers=fp16_layers,
                  onnx={name: frozenset(members) for name, members in onnx.items()},
                  selection_inputs=selection, modes=modes)


def check_confidence(where: str, value: Any) -> None:
    """Refuse a confidence outside the one vocabulary (every data file's loader calls this)."""
    if value not in CONFIDENCE:
        raise ValueError(f"{where}: confidence must be one of {CONFIDENCE}")


__all__ = ["CONFIDENCE", "LAYERS", "OpData", "OpInfo", "check_confidence", "op_data", "read"]
