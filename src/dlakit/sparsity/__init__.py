"""``dlakit sparsify``: 2:4 structured sparsity where the DLA can use it, with its cost and gain.

Typical use::

    proto, loaded = read_source("net.onnx")
    report = check_model(loaded, resolve_target("agx-orin-64gb"), "int8")
    sparsity_column(report)                      # per-conv eligibility, reasons, existing 2:4 pattern
    result = sparsify_model(proto, report, mode="magnitude", gains=perf_gains(loaded, report, None))
    write_model(result.model, "net_sparse.onnx")

Sparsity without fine-tuning costs accuracy; dlakit measures that cost (:mod:`dlakit.sparsity.accuracy`), it does
not train.
"""

from dlakit.sparsity.apply import FINE_TUNE_NOTE, LayerResult, SparsifyResult, sparsify_model
from dlakit.sparsity.eligibility import (
    SparsityInfo,
    sparse_nodes,
    sparsity_column,
    sparsity_info,
    summarize,
)
from dlakit.sparsity.files import read_source, write_model
from dlakit.sparsity.gain import GainEstimate, GainModel, LayerGain, default_gain_model, perf_gains
from dlakit.sparsity.pattern import MODES, density, energy_kept, force_mask, has_2to4, magnitude_mask, prune

__all__ = [
    "FINE_TUNE_NOTE",
    "MODES",
    "GainEstimate",
    "GainModel",
    "LayerGain",
    "LayerResult",
    "SparsifyResult",
    "SparsityInfo",
    "default_gain_model",
    "density",
    "energy_kept",
    "force_mask",
    "has_2to4",
    "magnitude_mask",
    "perf_gains",
    "prune",
    "read_source",
    "sparse_nodes",
    "sparsify_model",
    "sparsity_column",
    "sparsity_info",
    "summarize",
    "write_model",
]
