"""Deprecated: moved to `jaxconv.tuning.compile_table`; this module goes in 0.2.0."""

from jaxconv._moved import moved

__getattr__ = moved(__name__, "jaxconv.tuning.compile_table")
