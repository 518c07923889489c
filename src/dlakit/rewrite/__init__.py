"""``dlakit fix``: rule-based rewrites that make ONNX models DLA-ready, each verified with ONNX Runtime.

Python API::

    from dlakit.model import load_model
    from dlakit.rewrite import FixOptions, fix_model, random_inputs, verify

    loaded = load_model("model.onnx")
    result = fix_model(loaded, FixOptions(cut_postprocess=True))
    report = verify(loaded, result.proto(), random_inputs(loaded))
"""

from dlakit.rewrite.engine import NO_MATCH, Applied, Refused, Rule, RuleContext, apply_rules
from dlakit.rewrite.fix import OBJECTIVES, PASS_IDS, FixOptions, FixResult, RuleEffect, blame, fix_model, known_ids
from dlakit.rewrite.rules import ALL_RULES, RULES
from dlakit.rewrite.verify import DEFAULT_TOLERANCE, Verification, load_inputs, random_inputs, verify

__all__ = [
    "ALL_RULES",
    "DEFAULT_TOLERANCE",
    "NO_MATCH",
    "OBJECTIVES",
    "PASS_IDS",
    "RULES",
    "Applied",
    "FixOptions",
    "FixResult",
    "Refused",
    "Rule",
    "RuleContext",
    "RuleEffect",
    "Verification",
    "apply_rules",
    "blame",
    "fix_model",
    "known_ids",
    "load_inputs",
    "random_inputs",
    "verify",
]
