"""Rule and op data, loaded from ``data/rules.toml`` and ``data/ops.toml`` and matched to their implementations.

A rule is data (what it limits, its source, how sure we are, which rewrite removes it) plus one small function
registered with :func:`rule`. :func:`load_rules` refuses a data entry without a function and a function without a
data entry, so the two never drift apart.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlakit.check.context import NodeContext

CONFIDENCE = ("high", "medium", "low")


@dataclass(frozen=True)
class Finding:
    """What a rule function reports: the problem, the offending value and the allowed range."""

    message: str
    value: Any = None
    allowed: Any = None
    fix: str | None = None  # overrides the rule's default fix (e.g. only some violations are fixable)


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "value": _jsonable(self.value),
            "allowed": _jsonable(self.allowed),
            "confidence": self.confidence,
            "fix": self.fix,
            "blocking": self.blocking,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


RuleFunction = Callable[["NodeContext", "RuleSpec"], Iterable[Finding]]


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

    def applies_to(self, layer: str) -> bool:
        return "*" in self.layers or layer in self.layers

    def evaluate(self, ctx: NodeContext) -> Iterator[Reason]:
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
        for finding in findings:
            yield Reason(
                rule=self.name,
                message=finding.message,
                value=finding.value,
                allowed=finding.allowed,
                confidence=self.confidence,
                fix=finding.fix if finding.fix is not None else self.fix,
                blocking=self.blocking,
                source=self.source,
            )


@dataclass(frozen=True)
class OpSpec:
    op: str
    layer: str
    fix: str | None = None
    why: str | None = None


_FUNCTIONS: dict[str, RuleFunction] = {}


def rule(name: str) -> Callable[[RuleFunction], RuleFunction]:
    """Register the function that implements the rule ``name`` of ``data/rules.toml``."""

    def register(function: RuleFunction) -> RuleFunction:
        if name in _FUNCTIONS:
            raise ValueError(f"rule {name} registered twice")
        _FUNCTIONS[name] = function
        return function

    return register


def _read(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("dlakit.data").joinpath(name).read_text(encoding="utf-8"))


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
        if entry.get("confidence") not in CONFIDENCE:
            raise ValueError(f"rules.toml: {name}: confidence must be one of {CONFIDENCE}")
        for key in ("layers", "summary", "source"):
            if key not in entry:
                raise ValueError(f"rules.toml: {name} lacks '{key}'")
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
            )
        )
    return tuple(specs)


@cache
def rule_spec(name: str) -> RuleSpec:
    return next(spec for spec in load_rules() if spec.name == name)


@cache
def load_ops() -> dict[str, OpSpec]:
    ops = {}
    for op, entry in _read("ops.toml")["ops"].items():
        if "layer" not in entry:
            raise ValueError(f"ops.toml: {op} lacks 'layer'")
        if entry["layer"] == "gpu_only" and not entry.get("why"):
            raise ValueError(f"ops.toml: {op} is gpu_only and must say why")
        ops[op] = OpSpec(op=op, layer=entry["layer"], fix=entry.get("fix"), why=entry.get("why"))
    return ops
