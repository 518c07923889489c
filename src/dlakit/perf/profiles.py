"""Local calibration profiles: the model refitted to one user's board from their own trtexec measurements.

``dlakit compare MODEL --profile profile.json --refit NAME`` measures how far the estimate is from the board and
refits the calibrated parameters, pulled towards the shipped calibration and kept within a factor of 4 of it, so
that one or two measurements cannot drive them anywhere absurd (a parameter that ends at that bound is reported: the
measurement disagrees with the model beyond what refitting can absorb, often because the end-to-end time holds GPU
layers or reformat copies); ``dlakit estimate ... --profile NAME`` then uses them. Profiles are TOML files in
``$DLAKIT_PROFILE_DIR`` (default ``~/.config/dlakit/profiles``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from dlakit.atomic import write_text
from dlakit.errors import DlakitError
from dlakit.perf.calibrate import nelder_mead
from dlakit.perf.estimate import Prepared, evaluate
from dlakit.perf.hardware import Calibration, load_perf_data

FITTED = ("compute_efficiency", "dram_efficiency", "op_overhead_us", "launch_us")
#: parameters an older profile may lack (it then keeps the shipped value)
OPTIONAL = ("launch_us",)
#: Weight of the pull towards the shipped calibration (per parameter, on log scale). Small: measurements win.
PRIOR_WEIGHT = 0.02
#: a refitted parameter stays within this factor of the shipped value (one board measurement, not a new model)
MAX_FACTOR = 4.0


@dataclass
class BoardMeasurement:
    """One network measured on the user's board: the prepared network, its conditions, the measured latency."""

    prepared: Prepared
    conditions: object  # dlakit.perf.Conditions
    label: str
    measured_latency_ms: float


def profile_dir() -> Path:
    return Path(os.environ.get("DLAKIT_PROFILE_DIR", Path.home() / ".config" / "dlakit" / "profiles"))


def _path(name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise DlakitError(f"profile name '{name}': use letters, digits, '.', '_' and '-' only")
    return profile_dir() / f"{name}.toml"


def refit(measurements: list[BoardMeasurement], prior: Calibration | None = None) -> Calibration:
    """Parameters that best reproduce the measured latencies, regularised towards ``prior``."""
    if not measurements:
        raise DlakitError("--refit needs at least one measurement")
    prior = prior or load_perf_data().calibration
    x0 = np.array([math.log(getattr(prior, k)) for k in FITTED])

    bound = math.log(MAX_FACTOR)

    def calibration(x: np.ndarray) -> Calibration:
        x = np.clip(x, x0 - bound, x0 + bound)
        return dataclasses.replace(prior, **{k: math.exp(v) for k, v in zip(FITTED, x, strict=True)})

    def loss(x: np.ndarray) -> float:
        calib = calibration(x)
        error = sum(math.log(evaluate(m.prepared, m.conditions, m.label, calib=calib).latency_ms
                             / m.measured_latency_ms) ** 2 for m in measurements)
        return error + PRIOR_WEIGHT * float(((x - x0) ** 2).sum())

    best, _ = nelder_mead(loss, x0, step=0.2, iters=300)
    at_bound = [k for k, v, v0 in zip(FITTED, best, x0, strict=True) if abs(v - v0) >= bound - 1e-6]
    procedure = (f"refit to {len(measurements)} board measurement(s), prior {prior.version} with weight "
                 f"{PRIOR_WEIGHT}, each parameter within {MAX_FACTOR:g}x of it")
    if at_bound:
        procedure += f"; at that bound: {', '.join(at_bound)}"
    return dataclasses.replace(calibration(best), version=f"local-{date.today().isoformat()}",
                               fitted=date.today().isoformat(), procedure=procedure)


def bounded_parameters(calib: Calibration) -> list[str]:
    """The parameters a refit left at its bound (named in the calibration's procedure)."""
    _, _, names = calib.procedure.partition("; at that bound: ")
    return [n.strip() for n in names.split(",") if n.strip()]


def save_profile(name: str, calib: Calibration, measurements: list[BoardMeasurement]) -> Path:
    path = _path(name)
    lines = [
        "# dlakit local calibration profile (dlakit compare --refit); used by dlakit estimate --profile",
        "[calibration]",
        f'version = "{calib.version}"',
        f'fitted = "{calib.fitted}"',
        f'procedure = "{calib.procedure}"',
        *(f"{k} = {getattr(calib, k)!r}" for k in FITTED),
        "",
    ]
    for m in measurements:
        lines += ["[[measurements]]", f'network = "{m.prepared.name}"', f'power_mode = "{m.label}"',
                  f"cores = {m.conditions.cores}", f"measured_latency_ms = {m.measured_latency_ms!r}", ""]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, "\n".join(lines))
    except OSError as exc:
        raise DlakitError(f"{path}: cannot write the profile ({exc.strerror}); set DLAKIT_PROFILE_DIR to a writable "
                          "folder") from None
    return path


def load_profile(name: str) -> Calibration:
    """The shipped calibration with the fitted parameters of the local profile ``name``."""
    path = _path(name)
    if not path.is_file():
        known = sorted(p.stem for p in profile_dir().glob("*.toml")) if profile_dir().is_dir() else []
        raise DlakitError(f"--profile: no local profile '{name}' in {profile_dir()} (known: "
                          f"{', '.join(known) or 'none'}); create one with dlakit compare --profile FILE --refit NAME")
    try:
        entry = tomllib.loads(path.read_text(encoding="utf-8"))["calibration"]
        # a profile written before the launch cost was fitted keeps the shipped launch cost
        values = {k: float(entry[k]) for k in FITTED if k in entry or k not in OPTIONAL}
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DlakitError(f"{path}: not a dlakit profile ({exc}); recreate it with dlakit compare --refit") from None
    if not all(v > 0 for v in values.values()):
        raise DlakitError(f"{path}: parameters must be positive")
    return dataclasses.replace(load_perf_data().calibration, version=str(entry.get("version", name)),
                               fitted=str(entry.get("fitted", "")), **values)
