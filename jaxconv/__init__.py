"""jaxconv: convolutions for JAX and Flax, with the arithmetic made explicit.

``jaxconv.functional`` holds the pure ops; ``jaxconv.nnx`` and ``jaxconv.linen`` the Flax layers.
"""

from jaxconv import functional

__version__ = "0.1.0"

__all__ = ["__version__", "functional", "linen", "nnx"]


def __getattr__(name: str):
    # The Flax faces import Flax; load them on first use so `jaxconv.functional` stays light.
    if name in ("nnx", "linen"):
        import importlib

        return importlib.import_module(f"jaxconv.{name}")
    raise AttributeError(f"module 'jaxconv' has no attribute {name!r}")
