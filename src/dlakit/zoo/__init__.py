"""Reference networks for DLA work, built with ``onnx.helper`` and numpy: no downloads, no framework.

The six networks NVIDIA publishes DLA results for (:data:`NETWORKS`), each in two forms: ``published`` (as an
original export looks, post-processing included) and ``prepared`` (what NVIDIA's DLA preparation leaves: BN
folded, post-processing cut, 4-D DLA-only ops). Weights are random with a fixed seed, or a user's ``.npz``.
Every command accepts a zoo name in place of a model path through :func:`resolve`.
"""

from dlakit.zoo.build import build, get, parameter_shapes, resolve
from dlakit.zoo.layers import FORMS
from dlakit.zoo.registry import NETWORKS, Network, is_zoo_name
from dlakit.zoo.weights import load_weights

__all__ = ["FORMS", "NETWORKS", "Network", "build", "get", "is_zoo_name", "load_weights", "parameter_shapes",
           "resolve"]
