"""Rules are tested by construction: every registered check rule id and rewrite rule id is named by some test.

A test "names" a rule when its id appears as a quoted string in a test source (the tests assert a rule's finding,
``"pool.stride" in rules_of(node)``, or run a rewrite by id, ``run_rules(model, ["neg-to-scale"])``). A new rule
without a test fails here until one is written. There is no allow-list: every id has a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlakit.check.registry import load_rules
from dlakit.rewrite import PASS_IDS, RULES

TESTS = Path(__file__).resolve().parent


def _test_sources() -> str:
    this = Path(__file__).name
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(TESTS.rglob("*.py")) if p.name != this)


def _unnamed(ids: list[str]) -> list[str]:
    text = _test_sources()
    return [i for i in ids if not re.search(r"[\"']" + re.escape(i) + r"[\"']", text)]


def test_every_check_rule_is_named_by_a_test():
    ids = [spec.name for spec in load_rules()]
    assert len(ids) > 60
    assert _unnamed(ids) == []


def test_every_rewrite_rule_and_pass_is_named_by_a_test():
    ids = [*RULES, *PASS_IDS]
    assert len(ids) > 30
    assert _unnamed(ids) == []


@pytest.mark.parametrize("source", ['"pool.stride" in rules', "run_rules(model, ['neg-to-scale'])"])
def test_a_quoted_id_counts_and_a_bare_word_does_not(source):
    assert re.search(r"[\"'](pool\.stride|neg-to-scale)[\"']", source)
    assert not re.search(r"[\"']pool\.stride[\"']", "pool.stride without quotes")
