"""Per-layer INT8 error for ``dlakit report``: the emulator's comparison, with or without the user's data.

The report is often made before any data is at hand; then the inputs are seeded Gaussian noise scaled to each
input's calibrated range, which ranks layers by how sensitive they are to their scales but is not an accuracy
figure (each row says which inputs were used).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlakit.model import LoadedModel
from dlakit.quantize.cache import is_cache_file, read_cache
from dlakit.quantize.calibrate import batch_size_for, calibrate
from dlakit.quantize.data import DataSource, open_source
from dlakit.quantize.emulate import Emulation, build_emulator, compare_layers, emulation_from_scales
from dlakit.quantize.plan import off_dla_of
from dlakit.quantize.runtime import input_specs

if TYPE_CHECKING:
    from dlakit.check import CheckReport


def per_layer_error(loaded: LoadedModel, check_report: CheckReport | None, calib: str, data: str | None = None,
                    num_samples: int = 8, calibration_samples: int = 64) -> list[dict[str, Any]]:
    """Rows ``{name, layer, op, sqnr_db, layer_sqnr_db, local_sqnr_db, cosine, max_abs_error, inputs}``, worst first.

    ``calib`` is either a TensorRT calibration cache (scales as given) or calibration data (a folder or
    .npy/.npz: calibrated here with entropy, then compared on the first samples of the same data).
    ``check_report``: the placement; layers it keeps off the DLA get no scales (None: the op table alone).
    """
    off_dla = off_dla_of(check_report) if check_report is not None else frozenset()
    shapes, _ = input_specs(loaded)
    batch = batch_size_for(loaded)
    if is_cache_file(calib):
        emulation = emulation_from_scales(loaded, read_cache(calib).scales, off_dla=off_dla)
    else:
        result = calibrate(loaded, open_source(calib, shapes, num_samples=calibration_samples), progress=False,
                           off_dla=off_dla)
        _, tied, _ = result.ranges()
        emulation = Emulation(result.model, result.plan, tied, build_emulator(result.model, result.plan, tied))
        data = data or calib
    with tempfile.TemporaryDirectory(prefix="dlakit-report-") as scratch:
        if data is not None:
            source = open_source(data, shapes, num_samples=num_samples)
            kind = "data"
        else:
            source = _synthetic(shapes, emulation.amax, max(num_samples, batch), Path(scratch))
            kind = "synthetic"
        rows = []
        for error in compare_layers(emulation.model, emulation.emulated, source, batch, progress=False):
            row = error.as_dict()
            row["name"] = row.pop("tensor")
            row["inputs"] = kind
            rows.append(row)
    return rows


def _synthetic(shapes: dict[str, tuple[int, ...]], amax: dict[str, float], count: int, folder: Path) -> DataSource:
    rng = np.random.default_rng(0)
    arrays = {name: (rng.normal(size=(count, *shape)) * amax.get(name, 1.0) / 3).astype(np.float32)
              for name, shape in shapes.items()}
    np.savez(folder / "inputs.npz", **arrays)
    return open_source(folder / "inputs.npz", shapes)
