"""Platforms (boards with their DLA cores and power modes) and software releases (TensorRT + DLA versions).

The facts live in ``data/targets.toml``; this module loads them once, checks them, and resolves what a user types
(``--platform agx-orin-64gb --release jp6.2``) into a :class:`Target`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from dlakit.data.opdata import check_confidence, read
from dlakit.errors import DlakitError

LOADABLE_LIMITS = ("hard", "soft")
#: Defaults for the per-release lists that only old releases restrict (TensorRT 8.4 onwards: the full set).
DEFAULT_ACTIVATIONS = ("RELU", "SIGMOID", "TANH", "CLIP", "LEAKY_RELU")
RESIZE_MODES = ("nearest-asymmetric", "nearest-half-pixel", "linear-half-pixel")


#: Falcon (the DLA's scheduling microcontroller) over DLA core clock on an AGX Orin 64GB at MAXN (844.8 / 1600 MHz,
#: jetson_clocks, dla.md 3.4): the Falcon clock of a mode whose nvpmodel entry leaves it uncapped or unknown. The
#: same MAXN Falcon clock is the one the DLA model's per-launch cost is stated at (dlakit.perf.cost.loadable_seconds).
REFERENCE_FALCON_MHZ = 844.8
FALCON_PER_DLA_CLOCK = REFERENCE_FALCON_MHZ / 1600.0


@dataclass(frozen=True)
class PowerMode:
    name: str
    dla_mhz: float
    emc_mhz: float
    confidence: str = "high"
    #: DLA Falcon clock cap (MHz, nvpmodel DLAx_FALCON); 0 = not given, derived from the core clock
    falcon_cap_mhz: float = 0.0

    @property
    def falcon_mhz(self) -> float:
        return self.falcon_cap_mhz or self.dla_mhz * FALCON_PER_DLA_CLOCK


@dataclass(frozen=True)
class Platform:
    key: str
    name: str
    soc: str
    dla_cores: int
    source: str
    releases: tuple[str, ...] = ()
    default_release: str | None = None
    default_power_mode: str | None = None
    power_modes: tuple[PowerMode, ...] = ()
    dram_bus_bits: int = 0
    no_dla: str | None = None
    confidence: str = "high"

    @property
    def dla_generation(self) -> int:
        """1 for Xavier's first-generation DLA, 2 for Orin's."""
        return {"xavier": 1, "orin": 2}.get(self.soc, 0)

    def power_mode(self, name: str | None) -> PowerMode:
        wanted = name or self.default_power_mode
        for mode in self.power_modes:
            if mode.name.lower() == str(wanted).lower():
                return mode
        known = ", ".join(m.name for m in self.power_modes)
        raise DlakitError(f"--power-mode: '{name}' is not a power mode of {self.key}; choose one of: {known}")

    def dram_gbps(self, emc_mhz: float) -> float:
        """Peak DRAM bandwidth at an EMC clock: LPDDR transfers twice per clock over the bus."""
        return self.dram_bus_bits / 8 * 2 * emc_mhz / 1000.0


@dataclass(frozen=True)
class Release:
    key: str
    name: str
    tensorrt: str
    dla: str
    source: str
    max_loadables_per_core: int
    shuffle: bool
    softmax_batch1_only: bool
    elementwise_ops: frozenset[str]
    unary_ops: frozenset[str]
    reduce_ops: frozenset[str]
    comparison_ops: frozenset[str]
    slice_modes: frozenset[str]
    explicit_quantization: bool
    strongly_typed: bool
    aliases: tuple[str, ...] = ()
    platforms_only: tuple[str, ...] = ()
    confidence: str = "high"
    #: "hard": TensorRT switches subgraphs past the limit to the GPU; "soft": the number is a documented
    #: concurrency figure that NVIDIA's own builds exceed (TensorRT 8.4), reported as a note only.
    loadable_limit: str = "hard"
    activation_types: frozenset[str] = frozenset(DEFAULT_ACTIVATIONS)
    resize_modes: frozenset[str] = frozenset(RESIZE_MODES)
    features: tuple[str, ...] = ()
    evidence: str = ""

    @property
    def trt_version(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.tensorrt.split("."))

    @property
    def trt_version_int(self) -> int:
        """TensorRT's own version integer, as in calibration cache headers (8.5.2 → 8502, 10.3.0 → 100300)."""
        major, minor, patch = (*self.trt_version, 0, 0)[:3]
        return major * 1000 + minor * 100 + patch if major < 10 else major * 10000 + minor * 100 + patch


@dataclass(frozen=True)
class Target:
    """What a model is checked, estimated or quantized for: one platform with one release."""

    platform: Platform
    release: Release
    defaulted: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.platform.name}, {self.release.name} (TensorRT {self.release.tensorrt}, DLA {self.release.dla})"

    @property
    def is_xavier(self) -> bool:
        return self.platform.dla_generation == 1

    @property
    def is_orin(self) -> bool:
        return self.platform.dla_generation == 2


@dataclass(frozen=True)
class Catalog:
    platforms: dict[str, Platform]
    releases: dict[str, Release]
    default_platform: str

    def platform(self, key: str | None) -> Platform:
        wanted = (key or self.default_platform).lower().strip().replace("_", "-")
        if wanted not in self.platforms:
            close = _closest(wanted, list(self.platforms))
            if close is not None and _compact(close) == _compact(wanted):
                return self.platforms[close]  # agx_orin_64GB, AGX-Orin-64gb: the same platform
            known = ", ".join(self.platforms)
            hint = f" (did you mean {close}?)" if close else ""
            raise DlakitError(f"platform (--platform): unknown platform '{key}'{hint}; choose one of: {known} "
                              "(see dlakit targets)")
        return self.platforms[wanted]

    def release(self, key: str) -> Release:
        wanted = key.lower()
        for release in self.releases.values():
            if wanted == release.key or wanted in release.aliases:
                return release
        names = [n for r in self.releases.values() for n in (r.key, *r.aliases)]
        close = _closest(wanted, names)
        if close is not None and _compact(close) == _compact(wanted):
            return self.release(close)
        known = ", ".join(self.releases)
        hint = f" (did you mean {close}?)" if close else ""
        raise DlakitError(f"release (--release): unknown release '{key}'{hint}; choose one of: {known} "
                          "(see dlakit targets)")


def _compact(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _closest(text: str, names: list[str]) -> str | None:
    """The known name ``text`` most likely meant (case, ``-``/``_`` and dots ignored first), or None."""
    import difflib

    for name in names:
        if _compact(name) == _compact(text):
            return name
    close = difflib.get_close_matches(_compact(text), [_compact(n) for n in names], n=1, cutoff=0.6)
    return next((n for n in names if close and _compact(n) == close[0]), None)


def resolve_target(platform: str | None = None, release: str | None = None) -> Target:
    """Resolve user-typed names into a target, filling defaults and refusing platforms without a DLA."""
    catalog = load_catalog()
    plat = catalog.platform(platform)
    if plat.dla_cores == 0:
        raise DlakitError(f"{plat.key}: {plat.no_dla}")
    defaulted = []
    if platform is None:
        defaulted.append("platform")
    if release is None:
        rel = catalog.release(plat.default_release)
        defaulted.append("release")
    else:
        rel = catalog.release(release)
        if rel.key not in plat.releases:
            known = ", ".join(plat.releases)
            raise DlakitError(
                f"--release: {rel.name} (TensorRT {rel.tensorrt}) does not support DLA on {plat.name}; "
                f"choose one of: {known}"
            )
    return Target(platform=plat, release=rel, defaulted=tuple(defaulted))


@cache
def load_catalog() -> Catalog:
    return parse_catalog(read("targets.toml"))


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Build and cross-check the catalog; a broken data file fails loudly at start, naming the entry."""
    releases = {key: _release(key, entry) for key, entry in data["releases"].items()}
    platforms = {key: _platform(key, entry) for key, entry in data["platforms"].items()}
    for plat in platforms.values():
        for rel in plat.releases:
            if rel not in releases:
                raise ValueError(f"targets.toml: platform {plat.key} names unknown release {rel}")
        if plat.dla_cores and plat.default_release not in plat.releases:
            raise ValueError(f"targets.toml: platform {plat.key} default_release is not among its releases")
        if plat.dla_cores and plat.default_power_mode not in {m.name for m in plat.power_modes}:
            raise ValueError(f"targets.toml: platform {plat.key} default_power_mode is not among its power modes")
        if not plat.dla_cores and not plat.no_dla:
            raise ValueError(f"targets.toml: platform {plat.key} has no DLA and must say so in no_dla")
    names = [n for r in releases.values() for n in (r.key, *r.aliases)]
    if len(names) != len(set(names)):
        raise ValueError("targets.toml: release names and aliases must be unique")
    if data["default_platform"] not in platforms:
        raise ValueError("targets.toml: default_platform is not a platform")
    return Catalog(platforms=platforms, releases=releases, default_platform=data["default_platform"])


def _confidence(key: str, entry: dict[str, Any]) -> str:
    value = entry.get("confidence", "high")
    check_confidence(f"targets.toml: {key}", value)
    return value


def _platform(key: str, entry: dict[str, Any]) -> Platform:
    try:
        modes = tuple(
            PowerMode(m["name"], float(m["dla_mhz"]), float(m["emc_mhz"]), _confidence(key, m),
                      float(m.get("falcon_mhz", 0.0)))
            for m in entry.get("power_modes", [])
        )
        return Platform(
            key=key,
            name=entry["name"],
            soc=entry["soc"],
            dla_cores=int(entry["dla_cores"]),
            source=entry["source"],
            releases=tuple(entry.get("releases", [])),
            default_release=entry.get("default_release"),
            default_power_mode=entry.get("default_power_mode"),
            power_modes=modes,
            dram_bus_bits=int(entry.get("dram_bus_bits", 0)),
            no_dla=entry.get("no_dla"),
            confidence=_confidence(key, entry),
        )
    except KeyError as exc:
        raise ValueError(f"targets.toml: platform {key} lacks {exc}") from None


def _release(key: str, entry: dict[str, Any]) -> Release:
    try:
        return Release(
            key=key,
            name=entry["name"],
            tensorrt=entry["tensorrt"],
            dla=entry["dla"],
            source=entry["source"],
            max_loadables_per_core=int(entry["max_loadables_per_core"]),
            shuffle=bool(entry["shuffle"]),
            softmax_batch1_only=bool(entry["softmax_batch1_only"]),
            elementwise_ops=frozenset(entry["elementwise_ops"]),
            unary_ops=frozenset(entry["unary_ops"]),
            reduce_ops=frozenset(entry["reduce_ops"]),
            comparison_ops=frozenset(entry["comparison_ops"]),
            slice_modes=frozenset(entry["slice_modes"]),
            explicit_quantization=bool(entry["explicit_quantization"]),
            strongly_typed=bool(entry["strongly_typed"]),
            aliases=tuple(a.lower() for a in entry.get("aliases", [])),
            platforms_only=tuple(entry.get("platforms_only", [])),
            confidence=_confidence(key, entry),
            loadable_limit=_choice(key, entry, "loadable_limit", LOADABLE_LIMITS),
            activation_types=frozenset(entry.get("activation_types", DEFAULT_ACTIVATIONS)),
            resize_modes=frozenset(_subset(key, entry, "resize_modes", RESIZE_MODES)),
            features=tuple(entry.get("features", [])),
            evidence=entry.get("evidence", ""),
        )
    except KeyError as exc:
        raise ValueError(f"targets.toml: release {key} lacks {exc}") from None


def _choice(key: str, entry: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = entry.get(name, allowed[0])
    if value not in allowed:
        raise ValueError(f"targets.toml: {key}: {name} must be one of {allowed}")
    return value


def _subset(key: str, entry: dict[str, Any], name: str, allowed: tuple[str, ...]) -> list[str]:
    values = list(entry.get(name, allowed))
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"targets.toml: {key}: {name} has unknown entries {unknown}; known: {allowed}")
    return values
