"""Where a zoo network's parameters come from: deterministic random draws, or a user's ``.npz`` file.

Random weights are drawn per tensor from a generator seeded with ``(seed, crc32(name))``, so a tensor's value
depends only on its name and the seed: the published and the prepared form of a network, any batch size, and any
build order see the same numbers. The scales (He for convolutions, BN statistics near identity) keep activations
within a few orders of magnitude of the input through 50 layers, so that numerical comparisons and INT8
calibration on these models behave like on trained ones rather than on overflowing or all-zero tensors.

User weights are keyed by the *published* parameter names (torchvision state-dict style: ``layer1.0.conv1.weight``,
``layer1.0.bn1.running_var``), the same for both forms: preparing a network folds them, exactly as NVIDIA's scripts
fold a checkpoint.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from dlakit.errors import DlakitError, numpy_file_problem

Init = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def he(fan_in: int) -> Init:
    """He-normal: keeps the second moment of ReLU activations constant from layer to layer."""
    std = float(np.sqrt(2.0 / fan_in))
    return lambda rng, shape: rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def normal(std: float) -> Init:
    return lambda rng, shape: rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def uniform(low: float, high: float) -> Init:
    return lambda rng, shape: rng.uniform(low, high, shape).astype(np.float32)


class ParamSource:
    """Hands out a network's parameters by name, from random draws or from a user's tensors."""

    def __init__(self, seed: int = 0, user: Mapping[str, np.ndarray] | None = None,
                 label: str = "weights", network: str = "network") -> None:
        self.seed = seed
        self.user = user
        self.label = label
        self.network = network
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._cache: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], init: Init) -> np.ndarray:
        """The parameter ``name``: the same array every time it is asked for (shared head weights)."""
        shape = tuple(int(d) for d in shape)
        if name in self._cache:
            return self._cache[name]
        self.shapes[name] = shape
        if self.user is None:
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
            array = init(rng, shape)
        else:
            array = self._user_tensor(name, shape)
        self._cache[name] = array
        return array

    def _user_tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        assert self.user is not None
        if name not in self.user:
            raise DlakitError(
                f"{self.label}: no tensor '{name}' (shape {_fmt(shape)}) for {self.network}; the file must hold "
                "every parameter, keyed by name (see dlakit.zoo.parameter_shapes)"
            )
        array = np.asarray(self.user[name])
        if tuple(array.shape) != shape:
            raise DlakitError(
                f"{self.label}: tensor '{name}' has shape {_fmt(array.shape)} but {self.network} needs "
                f"{_fmt(shape)}"
            )
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise DlakitError(f"{self.label}: tensor '{name}' has dtype {array.dtype}; weights must be real numbers")
        return np.ascontiguousarray(array, dtype=np.float32)

    def check_all_used(self) -> None:
        """Extra tensors usually mean weights of another network or another width: say so rather than ignore."""
        if self.user is None:
            return
        extra = sorted(set(self.user) - set(self.shapes))
        if extra:
            more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
            raise DlakitError(
                f"{self.label}: tensor '{extra[0]}'{more} is not a parameter of {self.network}; "
                "are these the weights of another network or width?"
            )


def load_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``.npz`` of named float tensors (``numpy.savez(path, **state_dict)``) without pickles."""
    path = Path(path)
    if not path.is_file():
        raise DlakitError(f"{path}: no such weights file; pass an .npz saved with numpy.savez(file, **tensors)")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise DlakitError(f"{path}: holds a single array, not named tensors; save with numpy.savez")
        with data:
            return {key: data[key] for key in data.files}
    except DlakitError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DlakitError(f"{path}: not a readable .npz weights file ({numpy_file_problem(exc)})") from exc


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"
