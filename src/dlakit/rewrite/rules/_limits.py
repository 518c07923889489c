"""DLA's numeric limits as the rewrite rules need them, read from ``data/rules.toml`` (the check rules' data).

A rewrite that emits a pool or a convolution must stay within the same limits ``check`` enforces, or it would
trade one GPU fallback for another; reading them from the one data file keeps the two sides from drifting.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from dlakit.data.opdata import read


@cache
def limit(rule: str, key: str) -> Any:
    """``limits[key]`` of the check rule ``rule`` (e.g. ``limit("pool.window", "max")`` is 8)."""
    return _rules()[rule]["limits"][key]


@cache
def _rules() -> dict[str, Any]:
    return read("rules.toml")["rules"]


def pool_window_max() -> int:
    return int(limit("pool.window", "max"))


def pool_pad_max() -> int:
    return int(limit("pool.padding", "max"))


def pool_stride_max() -> int:
    return int(limit("pool.stride", "max"))


def conv_kernel_max() -> int:
    return int(limit("conv.kernel", "max"))


def conv_stride_max() -> int:
    return int(limit("conv.stride", "max"))


def conv_pad_max() -> int:
    return int(limit("conv.padding", "max"))


def channels_max() -> int:
    return int(limit("deconv.channels", "max"))


def deconv_kernel_max() -> int:
    return int(limit("deconv.kernel", "max"))


def batch_max() -> int:
    return int(limit("general.batch", "max"))


def dims_max() -> int:
    """Largest non-batch dimension of any DLA tensor (``general.dims``): a Concat's output channels, for one."""
    return int(limit("general.dims", "max"))


def conv_output_maps_max() -> int:
    return int(limit("conv.output-maps", "max"))


def conv_input_channels_max() -> int:
    return int(limit("conv.input-channels", "max"))
