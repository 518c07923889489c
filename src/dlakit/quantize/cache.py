"""TensorRT calibration caches: the text file trtexec's ``--calib`` hands to TensorRT verbatim.

Format (facts/dla.md §4.3): line 1 ``TRT-<version int>-<Algorithm>``; then ``<tensor>: <hex>`` where hex is the
IEEE-754 float32 bit pattern of the *scale* (amax / 127). We write what every known reader accepts: lower-case,
zero-padded to 8 digits, one space after the colon (trtexec takes the 8 characters two after the **last** colon, so
tensor names may contain colons). We read leniently: NVIDIA's DLA-SW writer does not zero-pad, ONNX Runtime splits
at the first colon, so both spellings must parse to the same scales.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlakit.atomic import write_text
from dlakit.errors import DlakitError
from dlakit.quantize.numerics import MIN_AMAX

DEFAULT_ALGORITHM = "EntropyCalibration2"
ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_HEX = re.compile(r"^[0-9a-fA-F]{1,8}$")
INT8_MAX = 127


def scale_to_hex(scale: float) -> str:
    """float32 bits of ``scale`` as 8 lower-case hex digits (what trtexec's parser expects)."""
    return f"{struct.unpack('<I', struct.pack('<f', float(np.float32(scale))))[0]:08x}"


def hex_to_scale(text: str) -> float:
    return float(struct.unpack("<f", struct.pack("<I", int(text, 16)))[0])


def amax_to_scale(amax: float) -> float:
    """The float32 scale TensorRT reads back as range ±127·scale (never 0: an all-zero tensor still needs a
    positive scale, as the Q/DQ model's ``activation_scale`` gives it)."""
    return float(np.float32(max(np.float64(amax), MIN_AMAX) / INT8_MAX))


@dataclass
class CalibrationCache:
    """Per-tensor INT8 scales in file order, with the header's TensorRT version and algorithm."""

    version: str
    algorithm: str = DEFAULT_ALGORITHM
    scales: dict[str, float] = field(default_factory=dict)
    #: the hex text as read, so that re-writing an unmodified cache reproduces the file byte for byte
    raw_hex: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def header(self) -> str:
        return f"TRT-{self.version}-{self.algorithm}"

    def amax(self, name: str) -> float:
        return self.scales[name] * INT8_MAX

    @classmethod
    def from_amax(cls, amax: dict[str, float], version: int | str, algorithm: str = DEFAULT_ALGORITHM
                  ) -> CalibrationCache:
        return cls(str(version), algorithm, {name: amax_to_scale(value) for name, value in amax.items()})


def parse_cache(text: str, source: str = "<cache>") -> CalibrationCache:
    """Parse cache text; a malformed line is a one-line error naming the file and line number."""
    lines = text.splitlines()
    if not lines:
        raise DlakitError(f"{source}: empty calibration cache; expected a first line like TRT-8601-EntropyCalibration2")
    match = _HEADER.match(lines[0].strip())
    if not match:
        raise DlakitError(
            f"{source}:1: '{lines[0][:60]}' is not a calibration cache header (expected TRT-<version>-<algorithm>)"
        )
    cache = CalibrationCache(match.group(1), match.group(2))
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        value = value.strip()
        if not sep or not name or not _HEX.match(value):
            raise DlakitError(
                f"{source}:{number}: '{line[:80]}' is not '<tensor>: <hex float32 scale>' (up to 8 hex digits)"
            )
        scale = hex_to_scale(value)
        if not np.isfinite(scale) or scale < 0:
            raise DlakitError(f"{source}:{number}: scale {value} of '{name}' decodes to {scale}, not a positive number")
        if scale * INT8_MAX > float(np.finfo(np.float32).max):
            raise DlakitError(f"{source}:{number}: scale {value} of '{name}' ({scale:.3g}) gives a range beyond "
                              "float32 (±127·scale overflows); re-create the cache with dlakit quantize")
        if name in cache.scales:
            raise DlakitError(f"{source}:{number}: tensor '{name}' appears twice")
        cache.scales[name] = scale
        cache.raw_hex[name] = value
    return cache


def read_cache(path: str | os.PathLike[str]) -> CalibrationCache:
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: no such calibration cache file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DlakitError(f"{path}: not a text calibration cache (byte {exc.start} is not UTF-8)") from exc
    except OSError as exc:
        raise DlakitError(f"{path}: cannot read the calibration cache ({exc.strerror})") from exc
    if "\0" in text:
        raise DlakitError(f"{path}: not a text calibration cache (it holds NUL bytes)")
    return parse_cache(text, str(path))


def check_cache_used(path: str | os.PathLike[str], model: str, scales: dict[str, float], ignored: list[str],
                     int8_tensors: int) -> None:
    """Refuse a cache that gives the model no INT8 tensor at all: emulating it would silently measure FP16 and
    report it as INT8 (a cache of another model, or of the model before ``dlakit fix`` renamed its tensors)."""
    if int8_tensors == 0:
        return
    if not scales:
        raise DlakitError(f"{path}: holds no tensor scales; create one with dlakit quantize {model}")
    if len(ignored) == len(scales):
        raise DlakitError(f"{path}: none of its {len(scales)} tensors (e.g. '{ignored[0][:60]}') is a DLA INT8 "
                          f"tensor of {model}; is it the cache of another model? Re-create it with dlakit quantize")


def format_cache(cache: CalibrationCache) -> str:
    """Cache text; unchanged entries keep their original hex spelling, new ones are zero-padded."""
    lines = [cache.header]
    for name, scale in cache.scales.items():
        raw = cache.raw_hex.get(name)
        lines.append(f"{name}: {raw if raw is not None and hex_to_scale(raw) == scale else scale_to_hex(scale)}")
    return "\n".join(lines) + "\n"


def write_cache(path: str | os.PathLike[str], cache: CalibrationCache) -> None:
    for name in cache.scales:
        if "\n" in name:
            raise DlakitError(f"tensor name {name!r} contains a newline and cannot be written to a calibration cache")
    write_text(path, format_cache(cache))


def read_trtexec_style(text: str) -> dict[str, float]:
    """Decode a cache the way trtexec's ``readScalesFromCalibrationCache`` does, to test that we write for it:
    split at the last ':', take 8 characters starting two after it, parse base 16, reinterpret as float."""
    out: dict[str, float] = {}
    for line in text.splitlines()[1:]:
        colon = line.rfind(":")
        if colon < 0:
            continue
        out[line[:colon]] = hex_to_scale(line[colon + 2 : colon + 10])
    return out


def read_ort_style(text: str) -> dict[str, float]:
    """Decode as ONNX Runtime's TensorRT EP does: split at the first ':', strtoul base 16."""
    out: dict[str, float] = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        out[name] = hex_to_scale(value.strip())
    return out


def is_cache_file(path: str | os.PathLike[str]) -> bool:
    """A TensorRT calibration cache (its first line starts ``TRT-``), not calibration data."""
    candidate = Path(path)
    if not candidate.is_file() or candidate.suffix in (".npy", ".npz"):
        return False
    with candidate.open("rb") as handle:
        return handle.read(4) == b"TRT-"
