"""Deprecated: moved to `jaxconv.tuning.timing`; this module goes in 0.2.0."""

from jaxconv._moved import moved

__getattr__ = moved(__name__, "jaxconv.tuning.timing")
