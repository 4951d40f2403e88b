"""Experiments from YAML configs: schema and loading, the runner (variants × seeds), reports."""

from jaxconv.experiment.config import (
    ConfigError,
    ExperimentConfig,
    Variant,
    apply_override,
    from_mapping,
    load,
)
from jaxconv.experiment.report import build as build_report
from jaxconv.experiment.runner import run

__all__ = ["ConfigError", "ExperimentConfig", "Variant", "apply_override", "build_report",
           "from_mapping", "load", "run"]
