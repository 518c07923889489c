"""Helpers shared by the GPU and power fits (``dlakit.perf.gpu``, ``dlakit.perf.power``): a multi-start Nelder-Mead,
leave-one-network-out, the fit-quality lines, the stored fit's record and the rewrite of a data file's generated
calibration section."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

C = TypeVar("C")
F = TypeVar("F", bound="StoredFit")


@dataclass(frozen=True, kw_only=True)
class StoredFit:
    """A fit as its data file's generated ``[calibration]`` section stores it (what :func:`calibration_section`
    writes): provenance, quality, residual rows; a subclass adds its fitted parameters, named in ``FIT``."""

    version: str
    fitted: str
    data: str
    procedure: str
    rows: int = 0
    median_abs_pct: float = 0.0
    lono_median_abs_pct: float = 0.0
    lono_p90_abs_pct: float = 0.0
    networks: tuple[str, ...] = ()
    residuals: tuple[dict[str, Any], ...] = ()

    #: the fitted parameters, in the order of :meth:`vector` (the fit's parameter vector)
    FIT: ClassVar[tuple[str, ...]] = ()

    def vector(self) -> list[float]:
        return [float(getattr(self, name)) for name in self.FIT]

    @classmethod
    def read(cls: type[F], entry: dict[str, Any], filename: str) -> F:
        """The record in ``entry``; a fitted parameter without a default must be there (else a ValueError naming
        ``filename``)."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        try:
            fitted = {name: float(entry[name] if defaults[name] is dataclasses.MISSING else
                                  entry.get(name, defaults[name])) for name in cls.FIT}
            return cls(version=str(entry["version"]), fitted=str(entry["fitted"]), data=str(entry["data"]),
                       procedure=str(entry["procedure"]), rows=int(entry.get("rows", 0)),
                       median_abs_pct=float(entry.get("median_abs_pct", 0.0)),
                       lono_median_abs_pct=float(entry.get("lono_median_abs_pct", 0.0)),
                       lono_p90_abs_pct=float(entry.get("lono_p90_abs_pct", 0.0)),
                       networks=tuple(entry.get("networks", [])), residuals=tuple(entry.get("residuals", [])),
                       **fitted)
        except KeyError as exc:
            raise ValueError(f"{filename}: calibration lacks {exc}") from None


def multi_start(loss: Callable[[np.ndarray], float], starts: Sequence[np.ndarray],
                step: float = 0.3) -> tuple[np.ndarray, float]:
    """The best minimum of ``loss`` from each start (Nelder-Mead, then a polish with a small simplex)."""
    from dlakit.perf.calibrate import nelder_mead

    best, best_loss = None, math.inf
    for start in starts:
        x, value = nelder_mead(loss, np.asarray(start, dtype=float), step=step)
        x, value = nelder_mead(loss, x, step=0.05)
        if value < best_loss:
            best, best_loss = x, value
    assert best is not None
    return best, best_loss


def leave_one_network_out(cases: Sequence[C], network: Callable[[C], str],
                          fit: Callable[[Sequence[C]], tuple[list[float], float]],
                          errors: Callable[[Sequence[C], Sequence[float]], np.ndarray],
                          ) -> dict[str, tuple[list[float], np.ndarray]]:
    """For each network: the parameters fitted without it and its rows' held-out errors (%)."""
    result = {}
    for held in dict.fromkeys(network(c) for c in cases):
        params, _ = fit([c for c in cases if network(c) != held])
        result[held] = (params, errors([c for c in cases if network(c) == held], params))
    return result


def quality_lines(errs: np.ndarray, lono: dict[str, tuple[Any, np.ndarray]]) -> list[str]:
    """rows, fit median and held-out median / p90 / networks, as TOML lines."""
    held = np.abs(np.concatenate([e for _, e in lono.values()]))
    return [f"rows = {len(errs)}", f"median_abs_pct = {float(np.median(np.abs(errs))):.2f}",
            f"lono_median_abs_pct = {float(np.median(held)):.2f}",
            f"lono_p90_abs_pct = {float(np.percentile(held, 90)):.2f}",
            f"networks = [{', '.join(chr(34) + n + chr(34) for n in lono)}]"]


def calibration_section(version: str, fitted: str, label: str, procedure: str, params: dict[str, str],
                        errs: np.ndarray, lono: dict[str, tuple[Any, np.ndarray]], residuals: Sequence[str]) -> str:
    """The generated ``[calibration]`` TOML section of a fit: provenance, parameters, quality and residual rows."""
    lines = ["[calibration]", f'version = "{version}"', f'fitted = "{fitted}"', f'data = "{label}"',
             f'procedure = "{procedure}"', *(f"{name} = {value}" for name, value in params.items()),
             *quality_lines(errs, lono), "residuals = [", *residuals, "]"]
    return "\n".join(lines) + "\n"


def write_section(filename: str, marker: str, section: str, path: Path | None = None) -> Path:
    """Replace everything after ``marker`` in the package data file ``filename`` with ``section``."""
    from dlakit.atomic import write_text

    path = path or Path(str(resources.files("dlakit.data").joinpath(filename)))
    text = path.read_text(encoding="utf-8")
    if marker not in text:
        raise ValueError(f"{path}: no generated-calibration marker line; restore it before refitting")
    write_text(path, text[: text.index(marker) + len(marker)] + section)
    return path
