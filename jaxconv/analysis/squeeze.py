"""Deprecated: moved to `jaxconv.analysis.retention`; this module goes in 0.2.0."""

from jaxconv._moved import moved

__getattr__ = moved(__name__, "jaxconv.analysis.retention")
