"""Rule and op data, loaded from ``data/rules.toml`` and ``data/ops.toml`` and matched to their implementations.

A rule is data (what it limits, its source, how sure we are, which rewrite removes it) plus one small function
registered with :func:`rule`. :func:`load_rules` refuses a data entry without a function and a function without a
data entry, so the two never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from dlakit.data.opdata import LAYERS, OpInfo, check_confidence, op_data, read
from dlakit.verdict import Verdict

if TYPE_CHECKING:
    from dlakit.check.context import NodeContext


@dataclass(frozen=True)
class Finding(Verdict):
    """A check rule's refusal (a :class:`~dlakit.verdict.Verdict`: the problem, the offending value, the allowed
    range) with what only check needs: a fix that overrides the rule's default and fields for its TensorRT line."""

    fix: str | None = None  # overrides the rule's default fix (e.g. only some violations are fixable)
    trt: dict[str, Any] = field(default_factory=dict)  # fields of the rule's trt_message template (e.g. op)


@dataclass(frozen=True)
class Reason:
    """A finding with the rule's identity attached: what the user reads."""

    rule: str
    message: str
    value: Any = None
    allowed: Any = None
    confidence: str = "high"
    fix: str | None = None
    blocking: bool = True
    source: str = ""
    trt_message: str | None = None  # what TensorRT prints for it, to hold against a build log line by line

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "value": _jsonable(self.value),
            "allowed": _jsonable(self.allowed),
            "confidence": self.confidence,
            "fix": self.fix,
            "blocking": self.blocking,
            "trt_message": self.trt_message,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


#: A rule function yields its verdicts on one node: refusals (a :class:`Finding` or a plain Verdict); nothing, or
#: verdicts that are not refusals, when the node meets the rule.
RuleFunction = Callable[["NodeContext", "RuleSpec"], Iterable[Verdict]]


@dataclass(frozen=True)
class RuleSpec:
    name: str
    layers: tuple[str, ...]
    summary: str
    source: str
    confidence: str
    function: RuleFunction
    fix: str | None = None
    blocking: bool = True
    limits: dict[str, Any] = field(default_factory=dict)
    trt_message: str | None = None  # template of the rule's own TensorRT log line ({name}, {layer}, {op}, ...)

    def applies_to(self, layer: str) -> bool:
        return "*" in self.layers or layer in self.layers

    def evaluate(self, ctx: NodeContext) -> list[Reason]:
        """The rule's reasons for the node (usually none: a list, not a generator, so that costs little)."""
        try:
            findings = list(self.function(ctx, self) or ())
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            # the loader validates attributes and shapes (dlakit.model.validate); a node that still trips a rule is
            # malformed in a way it does not know: name the node and the rule instead of showing a traceback
            from dlakit.errors import DlakitError
            from dlakit.model.validate import show

            raise DlakitError(f"node '{show(ctx.node.name)}' ({ctx.node.op_type}): rule {self.name} cannot read it "
                              f"({type(exc).__name__}: {show(str(exc)[:200])}); its attributes or inputs are "
                              "malformed: fix them or re-export the model") from exc
        return [self._reason(ctx, v) for v in findings if v.refused]

    def _reason(self, ctx: NodeContext, verdict: Verdict) -> Reason:
        own = verdict if isinstance(verdict, Finding) else Finding(verdict.reason, verdict.value, verdict.allowed)
        trt = trt_message(self, ctx.node.name, ctx.layer, ctx.op, ctx.target.release.trt_version, own.trt)
        return Reason(
            trt_message=trt,
            rule=self.name,
            message=own.reason,
            value=own.value,
            allowed=own.allowed,
            confidence=self.confidence,
            fix=own.fix if own.fix is not None else self.fix,
            blocking=self.blocking,
            source=self.source,
        )


def _fill(template: str, fields: dict[str, Any]) -> str | None:
    try:
        return template.format_map(fields)
    except (KeyError, IndexError, ValueError):
        return None  # the finding lacks a field of the template: say nothing rather than something wrong


def trt_message(spec: RuleSpec, name: str, layer: str, op: str, trt_version: tuple[int, ...],
                fields: dict[str, Any] | None = None) -> str | None:
    """TensorRT's own words for a reason: the rule's log line (if known), then, for a blocking reason, the line
    TensorRT prints when it moves the layer to the GPU (its wording changed between releases)."""
    messages = load_trt_messages()
    values = {"name": name, "op": op.upper(), **(fields or {})}
    values["layer"] = messages["layer_types"].get(layer) or messages["op_layer_types"].get(op) or op.upper()
    parts = []
    if spec.trt_message:
        specific = _fill(spec.trt_message, values)
        if specific:
            parts.append(specific)
    if spec.blocking and not any("GPU" in p for p in parts):  # the rule's own line may already say it
        legacy = trt_version < tuple(int(p) for p in messages["legacy_before"].split("."))
        parts.append(_fill(messages["fallback_legacy" if legacy else "fallback"], values) or "")
    return " ".join(p for p in parts if p) or None


@cache
def load_trt_messages() -> dict[str, Any]:
    return _read("rules.toml")["trt_messages"]


#: An op's entry in ``data/ops.toml`` (see :mod:`dlakit.data.opdata`).
OpSpec = OpInfo


_FUNCTIONS: dict[str, RuleFunction] = {}
#: rule → the only ops it can report on (its function returns at once for any other op)
_OPS: dict[str, frozenset[str]] = {}


def rule(name: str, ops: Iterable[str] | None = None) -> Callable[[RuleFunction], RuleFunction]:
    """Register the function that implements the rule ``name`` of ``data/rules.toml``. ``ops``: the ops outside
    which the function finds nothing, so placement does not call it for other nodes (its own test stays)."""

    def register(function: RuleFunction) -> RuleFunction:
        if name in _FUNCTIONS:
            raise ValueError(f"rule {name} registered twice")
        _FUNCTIONS[name] = function
        if ops is not None:
            _OPS[name] = frozenset(ops)
        return function

    return register


_read = read


@cache
def load_rules() -> tuple[RuleSpec, ...]:
    import dlakit.check.rules  # noqa: F401 - registers the rule functions

    data = _read("rules.toml")["rules"]
    missing = sorted(set(data) - set(_FUNCTIONS))
    extra = sorted(set(_FUNCTIONS) - set(data))
    if missing or extra:
        raise ValueError(f"rules.toml and dlakit.check.rules disagree: no code for {missing}, no data for {extra}")
    specs = []
    for name, entry in data.items():
        check_confidence(f"rules.toml: {name}", entry.get("confidence"))
        for key in ("layers", "summary", "source"):
            if key not in entry:
                raise ValueError(f"rules.toml: {name} lacks '{key}'")
        unknown = sorted(set(entry["layers"]) - {*LAYERS, "*"})
        if unknown:
            raise ValueError(f"rules.toml: {name}: layers {unknown} are not layers of ops.toml")
        specs.append(
            RuleSpec(
                name=name,
                layers=tuple(entry["layers"]),
                summary=entry["summary"],
                source=entry["source"],
                confidence=entry["confidence"],
                function=_FUNCTIONS[name],
                fix=entry.get("fix"),
                blocking=bool(entry.get("blocking", True)),
                limits=dict(entry.get("limits", {})),
                trt_message=entry.get("trt_message"),
            )
        )
    return tuple(specs)


def rule_ops(name: str) -> frozenset[str] | None:
    """The ops rule ``name`` is limited to (see :func:`rule`), None for all."""
    return _OPS.get(name)


@cache
def rule_spec(name: str) -> RuleSpec:
    return next(spec for spec in load_rules() if spec.name == name)


def load_ops() -> dict[str, OpSpec]:
    """ONNX op → its entry of ``data/ops.toml`` (loaded and validated once by :func:`dlakit.data.opdata.op_data`)."""
    return op_data().ops  # type: ignore[return-value]
