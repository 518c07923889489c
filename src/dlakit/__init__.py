"""dlakit: take convolutional networks onto NVIDIA's Deep Learning Accelerator without the hardware."""

from dlakit.errors import DlakitError

__version__ = "0.1.0"
__all__ = ["DlakitError", "__version__"]
