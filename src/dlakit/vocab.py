"""The words every package shares: where a node runs, the build precision, the device of a fused op.

String enums (:class:`enum.StrEnum`): a member equals its string (``Placement.DLA == "dla"``), formats as it and
is written to JSON as it, so outputs read exactly as before while code names the value instead of spelling it.
"""

from __future__ import annotations

from enum import StrEnum

from dlakit.errors import DlakitError


class Placement(StrEnum):
    """Where ``dlakit check`` places a node."""

    DLA = "dla"
    GPU = "gpu"
    FOLDED = "folded"  # constant-folded by TensorRT: runs nowhere
    FIXABLE = "fixable"  # GPU as it is; a ``dlakit fix`` rewrite brings it onto the DLA


class Precision(StrEnum):
    """The build precision of a DLA engine (DLA runs no FP32)."""

    INT8 = "int8"
    FP16 = "fp16"

    @classmethod
    def parse(cls, text: str, flag: str = "--precision") -> Precision:
        """``text`` as a precision, or the one-line error every command gives for a bad ``--precision``."""
        try:
            return cls(text)
        except ValueError:
            raise DlakitError(f"{flag}: '{text}' is not one of {', '.join(cls)}") from None


class Device(StrEnum):
    """The engine that runs a fused operation (``dlakit estimate``'s per-layer ``device``)."""

    DLA = "dla"
    GPU = "gpu"
