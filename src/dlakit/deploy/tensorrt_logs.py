"""Read what trtexec prints and exports on the device: the build log's placement, its fallback warnings,
``--exportProfile`` and ``--exportLayerInfo`` JSON.

Formats and wordings follow shared/facts/dla.md §5 (TensorRT 7.x and 8.x+ build logs as quoted in public issues).
Every parser tolerates trtexec's line prefixes (``[11/24/2026-10:00:00] [I] [TRT] ``) and unknown lines.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlakit.errors import DlakitError

FOREIGN = re.compile(r"\{ForeignNode\[(?P<body>.*)\]\}")
DLA_HEADER = re.compile(r"-{3,}\s*Layers [Rr]unning on DLA\s*:?\s*-*")
GPU_HEADER = re.compile(r"-{3,}\s*Layers [Rr]unning on GPU\s*:?\s*-*")
DLA_LAYER = re.compile(r"\[DlaLayer\]\s*(?P<rest>.*)$")
GPU_LAYER = re.compile(r"\[GpuLayer\]\s*(?:(?P<type>[A-Z_]+):\s*)?(?P<names>.*)$")
FALLBACKS = [
    (re.compile(r"Layer '(?P<layer>.+?)' \((?P<type>\w+)\): Unsupported on DLA\. Switching this layer's device type "
                r"to GPU\."), "unsupported on DLA"),
    (re.compile(r"Default DLA is enabled but layer (?P<layer>.+?) is not supported on DLA, falling back to GPU\."),
     "not supported on DLA"),
    (re.compile(r"Validation failed for DLA layer: (?P<layer>.+?)\. Switching to GPU fallback\."),
     "DLA validation failed"),
    (re.compile(r"DLA only supports FP16 and Int8 precision type\. Switching (?P<layer>.+?) device type to GPU\."),
     "precision not FP16/INT8"),
    (re.compile(r"DLA Layer (?P<layer>.+?) does not support dynamic shapes in any dimension\."), "dynamic shapes"),
    (re.compile(r"DLA supports only (?P<limit>\d+) subgraphs per DLA core\. Switching to GPU for layer "
                r"(?P<layer>.+?)\s*$"), "loadable limit"),
    # the look-behind starts a match only at a token's start: without it a long line with no space or colon is
    # tried from each of its characters, quadratic (a 650 kB line took minutes)
    (re.compile(r"(?<![^\s:])(?P<layer>[^\s:]+): (?P<why>(?:Unary operation: .*? is not supported on DLA|"
                r"DLA only supports [^.]*|DLA does not support [^.]*|Concatenation on DLA requires [^.]*|"
                r"DLA cores do not support [^.]*))\.?\s*$"), None),
]


@dataclass
class BuildLog:
    """Placement as TensorRT reported it."""

    dla_subgraphs: list[list[str]] = field(default_factory=list)  # each: [first, last] (8.x) or every layer (7.x)
    gpu_layers: list[tuple[str, list[str]]] = field(default_factory=list)  # (layer type, ONNX names fused in it)
    fallbacks: list[tuple[str, str]] = field(default_factory=list)  # (layer name, why)

    @property
    def gpu_names(self) -> set[str]:
        return {name for _, names in self.gpu_layers for name in names} | {name for name, _ in self.fallbacks}


def _strip_prefix(line: str) -> str:
    """Drop trtexec's ``[date] [I] [TRT]`` style prefixes."""
    line = re.sub(r"^(\s*\[(?:[\d/:.,\s-]+|[IWEVF]|TRT|TensorRT)\]\s*)+", "", line.rstrip("\n"))
    return re.sub(r"^(?:INFO|WARNING|ERROR|VERBOSE):\s*", "", line)


def _split_foreign(body: str) -> list[str]:
    return [part.strip() for part in body.split("...")] if "..." in body else [body.strip()]


def parse_build_log(text: str) -> BuildLog:
    log = BuildLog()
    pending = None  # TensorRT 7 prints its lists on the one line after "Layers running on DLA:" / "...GPU:"
    for raw in text.splitlines():
        line = _strip_prefix(raw).strip()
        if DLA_HEADER.search(line) or GPU_HEADER.search(line):
            legacy = line.endswith(":")
            pending = ("dla" if DLA_HEADER.search(line) else "gpu") if legacy else None
            continue
        if pending and line:
            if pending == "dla":
                for group in re.findall(r"\{([^{}]*)\}", line):
                    log.dla_subgraphs.append([n.strip() for n in group.split(",") if n.strip()])
            else:
                log.gpu_layers.extend(("", [n.strip()]) for n in line.split(",") if n.strip())
            pending = None
            continue
        for pattern, why in FALLBACKS:
            match = pattern.search(line)
            if match:
                log.fallbacks.append((match.group("layer").strip(), why or match.group("why")))
                break
        dla = DLA_LAYER.search(line)
        if dla:
            foreign = FOREIGN.search(dla.group("rest"))
            log.dla_subgraphs.append(_split_foreign(foreign.group("body")) if foreign else [dla.group("rest").strip()])
            continue
        gpu = GPU_LAYER.search(line)
        if gpu:
            names = [n.strip() for n in gpu.group("names").split(" + ") if n.strip()]
            log.gpu_layers.append((gpu.group("type") or "", names))
    return log


#: a layer's average time beyond an hour is not a measurement (a unit mix-up or a corrupted file)
MAX_LAYER_MS = 3.6e6
MAX_PROFILE_ENTRIES = 1_000_000
#: build logs and profiles are text of a few MB; beyond this it is the wrong file (an engine, a core dump)
MAX_TEXT_BYTES = 512 << 20


def read_text(path: str | Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: no such {what} file")
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise DlakitError(f"{path}: {path.stat().st_size:,} bytes, over {MAX_TEXT_BYTES >> 20} MiB for a "
                              f"{what}; is it the right file?")
        data = path.read_bytes()
    except OSError as exc:
        raise DlakitError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    if b"\0" in data[:65536]:
        raise DlakitError(f"{path}: binary data, not a {what} (text); pass the file trtexec wrote")
    return data.decode("utf-8", errors="replace")


@dataclass
class ProfileEntry:
    name: str
    average_ms: float
    percentage: float | None

    @property
    def is_dla(self) -> bool:
        return "ForeignNode" in self.name


def parse_profile(text: str, source: str = "profile") -> list[ProfileEntry]:
    """trtexec ``--exportProfile``: a list, ``{"count": N}`` then ``{"name", "averageMs", "percentage", ...}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DlakitError(
            f"{source}: not JSON (line {exc.lineno}: {exc.msg}); pass trtexec's --exportProfile file"
        ) from None
    except RecursionError:
        raise DlakitError(f"{source}: JSON nested too deeply; pass trtexec's --exportProfile file") from None
    if not isinstance(data, list):
        raise DlakitError(f"{source}: expected a JSON list as written by trtexec --exportProfile")
    if len(data) > MAX_PROFILE_ENTRIES:
        raise DlakitError(f"{source}: {len(data)} entries, over {MAX_PROFILE_ENTRIES:,}; pass the profile of one "
                          "engine")
    entries = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or "name" not in item:
            continue
        if not isinstance(item["name"], str):
            raise DlakitError(f"{source}: entry {index} has a name that is not a string ({str(item['name'])[:40]}); "
                              "pass trtexec's --exportProfile file")
        try:
            average = float(item.get("averageMs", item.get("timeMs", 0.0) / max(_count(data), 1)))
        except (TypeError, ValueError, OverflowError):
            raise DlakitError(f"{source}: entry {index} ('{item['name'][:60]}') has no numeric averageMs") from None
        if not math.isfinite(average) or not 0 <= average < MAX_LAYER_MS:
            raise DlakitError(f"{source}: entry {index} ('{item['name'][:60]}') has averageMs {average}, not a time "
                              f"between 0 and {MAX_LAYER_MS:g} ms; pass the profile of a real run")
        percentage = item.get("percentage")
        if not isinstance(percentage, (int, float)) or isinstance(percentage, bool) or not math.isfinite(percentage):
            percentage = None  # informative only; dlakit computes its own shares
        entries.append(ProfileEntry(item["name"], average, percentage))
    if not entries:
        raise DlakitError(f"{source}: no layer entries; pass trtexec's --exportProfile file")
    if sum(entry.average_ms for entry in entries) <= 0:
        raise DlakitError(f"{source}: every layer takes 0 ms; pass the profile of a run (trtexec --exportProfile "
                          "after inference iterations)")
    return entries


def _count(data: list[Any]) -> int:
    first = data[0] if data else {}
    count = first.get("count", 1) if isinstance(first, dict) else 1
    return int(count) if isinstance(count, (int, float)) and math.isfinite(count) else 1


def parse_layer_info(text: str, source: str = "layer info") -> list[dict[str, Any]]:
    """trtexec ``--exportLayerInfo``: ``{"Layers": [str | {"Name": ..., "LayerType": ...}], "Bindings": [...]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DlakitError(
            f"{source}: not JSON (line {exc.lineno}: {exc.msg}); pass trtexec's --exportLayerInfo file"
        ) from None
    except RecursionError:
        raise DlakitError(f"{source}: JSON nested too deeply; pass trtexec's --exportLayerInfo file") from None
    layers = data.get("Layers") if isinstance(data, dict) else None
    if not isinstance(layers, list):
        raise DlakitError(f"{source}: no 'Layers' list; pass trtexec's --exportLayerInfo file")
    return [layer if isinstance(layer, dict) else {"Name": str(layer)} for layer in layers]
