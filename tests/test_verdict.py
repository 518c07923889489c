"""One verdict type for check rules, rewrite rules and sparsity eligibility (dlakit.verdict)."""

from __future__ import annotations

import numpy as np
import pytest

from dlakit.check.context import NodeContext
from dlakit.check.registry import Finding, OpSpec, RuleSpec
from dlakit.model import load_model
from dlakit.rewrite.engine import NO_MATCH, Rule, apply_rules, verdict_of
from dlakit.rewrite.testing import one_op_model, run_rules
from dlakit.sparsity.eligibility import conv_info, min_channels
from dlakit.targets import resolve_target
from dlakit.verdict import APPLIES, DOES_NOT_APPLY, Outcome, Verdict, refuse
from dlakit.vocab import Placement, Precision
from tests.test_sparsity_support import chain_model

F32 = np.float32


def test_a_refusal_and_only_a_refusal_has_a_reason():
    verdict = refuse("too wide", 9000, [1, 8192], rule="conv.channels")
    assert verdict.refused and not verdict.applies
    assert (verdict.reason, verdict.value, verdict.allowed, verdict.rule) == ("too wide", 9000, [1, 8192],
                                                                              "conv.channels")
    assert APPLIES.applies and not APPLIES.refused and not DOES_NOT_APPLY.applies and not DOES_NOT_APPLY.refused
    with pytest.raises(ValueError):
        Verdict("")
    with pytest.raises(ValueError):
        Verdict("a reason", outcome=Outcome.APPLIES)


def test_the_engine_reads_a_rule_answer_in_one_place():
    assert verdict_of(None) is APPLIES
    assert verdict_of(NO_MATCH) is DOES_NOT_APPLY
    assert verdict_of("the axis is not constant", "r") == refuse("the axis is not constant", rule="r")
    empty = verdict_of("", "my-rule")  # the retired "" sentinel is an error that names the rule, not a silent no
    assert empty.refused and "my-rule" in empty.reason and "NO_MATCH" in empty.reason


def _relu_rule(rule_id: str, answer: object) -> Rule:
    return Rule(id=rule_id, ops=("Relu",), summary="test", check=lambda node, ctx: answer,
                rewrite=lambda node, ctx: list(node.inputs[:1]))


@pytest.mark.parametrize(("answer", "reported"), [
    (NO_MATCH, None),
    ("a reason string", "a reason string"),
    (refuse("a verdict", 3, [4, 8]), "a verdict"),
    ("", "rule 'r' gave an empty reason (return NO_MATCH for 'not this pattern')"),
])
def test_apply_rules_reports_refusals_and_stays_silent_on_no_match(answer, reported):
    loaded = load_model(one_op_model("Relu", {"x": ((1, 4, 3, 3), F32)}))
    _, applied, refused = apply_rules(loaded, [_relu_rule("r", answer)])
    assert applied == []
    assert [r.reason for r in refused] == ([] if reported is None else [reported])


def test_a_pool_that_fits_dla_is_no_match_for_the_large_pool_rules():
    """pool_shape answers NO_MATCH (once the "" sentinel): neither applied nor reported."""
    model = one_op_model("MaxPool", {"x": ((1, 4, 16, 16), F32)}, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    run = run_rules(model, ["maxpool-chain"])
    assert run.applied == [] and run.reasons == []
    model = one_op_model("AveragePool", {"x": ((1, 4, 16, 16), F32)}, kernel_shape=[2, 2], strides=[2, 2])
    run = run_rules(model, ["avgpool-split"])
    assert run.applied == [] and run.reasons == []


def test_a_check_rule_may_yield_plain_verdicts():
    def function(ctx, spec):
        yield APPLIES  # not a refusal: nothing reported
        yield refuse("plain verdict", 7, [1, 5])
        yield Finding("a finding", value=1, allowed=2, fix="some-fix")

    spec = RuleSpec(name="test.verdicts", layers=("*",), summary="", source="", confidence="high", function=function)
    loaded = load_model(one_op_model("Relu", {"x": ((1, 4, 3, 3), F32)}))
    node = next(iter(loaded.graph))
    ctx = NodeContext(node=node, layer="activation", target=resolve_target(), precision=Precision.INT8,
                      op_spec=OpSpec(op="Relu", layer="activation"))
    reasons = list(spec.evaluate(ctx))
    assert [(r.message, r.value, r.allowed, r.fix) for r in reasons] == [("plain verdict", 7, [1, 5], None),
                                                                        ("a finding", 1, 2, "some-fix")]


def test_sparsity_refusals_carry_rule_value_and_allowed():
    loaded = load_model(chain_model())
    conv0 = next(n for n in loaded.graph if n.name == "conv0")  # C = 3
    info = conv_info(conv0, Placement.DLA, True, "Jetson AGX Orin", Precision.FP16)
    assert not info.eligible
    assert info.rules == ["precision", "channels"]
    assert [(v.value, v.allowed) for v in info.refusals] == [(Precision.FP16, Precision.INT8),
                                                              (3, f"> {min_channels()}")]
    assert info.reasons == [v.reason for v in info.refusals]
    conv1 = next(n for n in loaded.graph if n.name == "conv1")  # C = 96
    assert conv_info(conv1, Placement.DLA, True, "Jetson AGX Orin", Precision.INT8).eligible


def test_no_rule_tests_its_answer_as_a_string():
    """NO_MATCH is a Verdict, not "": a rule that asks ``isinstance(plan, str)`` would take a no-match for a plan
    and apply where it should stay silent (and check would promise a fix). Rules test ``isinstance(plan, Answer)``."""
    import re
    from pathlib import Path

    import dlakit.rewrite.rules as rules

    offenders = [f"{path.name}:{number}: {line.strip()}"
                 for path in sorted(Path(rules.__file__).parent.glob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"isinstance\(\w+, str\)|return \"\"(\s|$)", line)]
    assert not offenders, "rules must use Answer / NO_MATCH:\n" + "\n".join(offenders)
