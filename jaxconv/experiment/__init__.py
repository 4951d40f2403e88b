"""Experiments from YAML configs: schema and loading, the runner (variants × seeds), reports,
and trained models out of run folders."""

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
from jaxconv.experiment.trained import TrainedRun, load_model, load_run

__all__ = ["ConfigError", "ExperimentConfig", "TrainedRun", "Variant", "apply_override",
           "build_report", "from_mapping", "load", "load_model", "load_run", "run"]
