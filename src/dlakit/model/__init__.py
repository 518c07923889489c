"""The model layer: load ONNX files as TensorRT sees them, fold build-time constants, count MACs and parameters."""

from dlakit.model.folding import constant_array, is_constant, is_folded
from dlakit.model.loader import LoadedModel, load_model
from dlakit.model.shapes import format_shape, parse_shapes, static_dims
from dlakit.model.stats import model_params, node_macs, node_params

__all__ = [
    "LoadedModel",
    "constant_array",
    "format_shape",
    "is_constant",
    "is_folded",
    "load_model",
    "model_params",
    "node_macs",
    "node_params",
    "parse_shapes",
    "static_dims",
]
