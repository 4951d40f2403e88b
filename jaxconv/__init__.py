"""jaxconv: convolutions for JAX and Flax, with the arithmetic made explicit.

``jaxconv.functional`` holds the pure ops; ``jaxconv.nnx`` and ``jaxconv.linen`` the Flax layers;
``jaxconv.blocks`` and ``jaxconv.models`` the bottleneck designs; ``jaxconv.analysis`` the
accounting.
"""

from jaxconv import functional

__version__ = "0.1.0"

_LAZY = ("nnx", "linen", "blocks", "models", "analysis", "data", "train", "experiment")
__all__ = ["__version__", "functional", *_LAZY]


def __getattr__(name: str):
    # The Flax-based packages import Flax; load them on first use so `jaxconv.functional`
    # stays light.
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"jaxconv.{name}")
    raise AttributeError(f"module 'jaxconv' has no attribute {name!r}")
