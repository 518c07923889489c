"""Build a zoo network as an ONNX model, and let every command take a zoo name where it takes a path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from dlakit.errors import DlakitError
from dlakit.zoo.layers import FORMS, BuildConfig, GraphBuilder
from dlakit.zoo.registry import NETWORKS, Network, canonical, is_zoo_name, suggestion
from dlakit.zoo.weights import ParamSource, load_weights

Weights = str | os.PathLike[str] | Mapping[str, np.ndarray] | None


def get(name: str) -> Network:
    """The registry entry for a zoo name, or a one-line error that lists the names."""
    key = canonical(name)
    if key not in NETWORKS:
        raise DlakitError(f"unknown zoo network '{name}'{suggestion(name)}; known networks: {', '.join(NETWORKS)}")
    return NETWORKS[key]


def build(name: str, form: str = "prepared", batch: int | None = None, weights: Weights = None,
          width: float = 1.0, input_size: tuple[int, int] | None = None, classes: int | None = None,
          seed: int = 0) -> onnx.ModelProto:
    """Build network ``name`` (opset 17, float32, static NCHW shapes) in its ``published`` or ``prepared`` form.

    ``weights`` is a ``.npz`` path or a mapping of published parameter names to arrays; without it the weights
    are random but fixed by ``seed``. ``width`` (channel multiplier) and ``input_size`` (height, width) make
    reduced models for quick numerical runs; ``classes`` overrides the class count.
    """
    spec = get(name)
    if form not in FORMS:
        raise DlakitError(f"form (--form): '{form}' is not one of {', '.join(FORMS)}")
    batch = spec.default_batch if batch is None else batch
    if not isinstance(batch, int) or batch < 1:
        raise DlakitError(f"batch (--batch): {batch!r} is not a positive integer")
    if not 0.0 < width <= 1.0:
        raise DlakitError(f"width {width!r} must be in (0, 1]: it scales the channel counts down for tests")
    hw = spec.input_hw if input_size is None else tuple(input_size)
    if len(hw) != 2 or any(not isinstance(v, int) or v < 1 for v in hw):
        raise DlakitError(f"input_size {input_size!r} must be (height, width) in positive integers")
    n_classes = spec.classes if classes is None else classes
    if spec.classes and (not isinstance(n_classes, int) or n_classes < 1):
        raise DlakitError(f"classes {classes!r} must be a positive integer")
    user, label = _user_weights(weights)
    params = ParamSource(seed=seed, user=user, label=label, network=spec.name)
    builder = GraphBuilder(spec.name, form, params, width)
    spec.builder(builder, BuildConfig(spec.input_name, batch, (hw[0], hw[1]), n_classes))
    params.check_all_used()
    return builder.model()


def parameter_shapes(name: str, width: float = 1.0, classes: int | None = None) -> dict[str, tuple[int, ...]]:
    """Names and shapes a user weights file must hold (torchvision state-dict style keys).

    Parameter shapes do not depend on the input size, so the network is traced at its small test size.
    """
    spec = get(name)
    params = ParamSource(network=spec.name)
    builder = GraphBuilder(spec.name, "published", params, width)
    n_classes = spec.classes if classes is None else classes
    spec.builder(builder, BuildConfig(spec.input_name, 1, spec.small_hw, n_classes))
    return dict(params.shapes)


def resolve(arg: str | os.PathLike[str] | onnx.ModelProto, form: str = "prepared") -> onnx.ModelProto | str:
    """What a command's model argument means: a zoo name becomes its model (``form``, default batch, random
    weights); an existing file, or anything that looks like a path, is returned for the loader to read (and to
    report missing); any other word is an unknown name and the error lists the known ones."""
    if isinstance(arg, onnx.ModelProto):
        return arg
    text = os.fspath(arg)
    if is_zoo_name(text) and not Path(text).exists():
        return build(text, form=form)
    path = Path(text)
    if path.exists() or os.sep in text or "/" in text or path.suffix:
        return text
    raise DlakitError(
        f"'{text}' is neither a file nor a zoo network{suggestion(text)}; zoo networks: {', '.join(NETWORKS)}"
    )


def _user_weights(weights: Weights) -> tuple[Mapping[str, np.ndarray] | None, str]:
    if weights is None:
        return None, "weights"
    if isinstance(weights, Mapping):
        return weights, "weights"
    return load_weights(weights), str(weights)
