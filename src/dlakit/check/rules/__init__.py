"""Rule implementations, one small function per entry of ``data/rules.toml``, grouped by TensorRT layer."""

from dlakit.check.rules import activation, conv, elementwise, general, pooling, tensor, various

__all__ = ["activation", "conv", "elementwise", "general", "pooling", "tensor", "various"]
