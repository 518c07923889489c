"""One answer to "may this node ...?": it applies, it does not apply, or it is refused with a reason.

Three questions share it: a check rule (may this node run on the DLA? a refusal moves it off), a rewrite rule (may
this rule rewrite this node? a refusal is the user's "why not"), sparsity eligibility (may this convolution run 2:4
sparse?). A refusal carries the reason the user reads and, where there is one, the offending ``value`` and the
``allowed`` range, plus the short id of the ``rule`` that refused when the asker groups by it. *Does not apply* is a
silent no: the node is not the question's business at all (a rewrite that sees a node outside its pattern), so
nothing is reported.

Imports nothing from dlakit, so every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    APPLIES = "applies"
    DOES_NOT_APPLY = "does not apply"
    REFUSED = "refused"


@dataclass(frozen=True)
class Verdict:
    """A refusal by default (``Verdict("too wide", value=9000, allowed=[1, 8192])``); see :data:`APPLIES` and
    :data:`DOES_NOT_APPLY` for the other two outcomes."""

    reason: str = ""
    value: Any = None
    allowed: Any = None
    outcome: Outcome = Outcome.REFUSED
    rule: str = ""  # short id of what refused, where the asker groups refusals by it

    def __post_init__(self) -> None:
        if (self.outcome == Outcome.REFUSED) != bool(self.reason):
            raise ValueError("a refusal needs a reason, and only a refusal has one")

    @property
    def applies(self) -> bool:
        return self.outcome == Outcome.APPLIES

    @property
    def refused(self) -> bool:
        return self.outcome == Outcome.REFUSED


APPLIES = Verdict(outcome=Outcome.APPLIES)
DOES_NOT_APPLY = Verdict(outcome=Outcome.DOES_NOT_APPLY)


def refuse(reason: str, value: Any = None, allowed: Any = None, *, rule: str = "") -> Verdict:
    return Verdict(reason, value, allowed, rule=rule)


__all__ = ["APPLIES", "DOES_NOT_APPLY", "Outcome", "Verdict", "refuse"]
