"""Training: recipe, jitted sharded steps, the resumable loop, checkpoints and metrics."""

from jaxconv.train.checkpoint import Checkpoints
from jaxconv.train.logging import MetricsLog, read_jsonl
from jaxconv.train.loop import (
    FitResult,
    TrainingDiverged,
    build_steps,
    channel_stats,
    fit,
    step_seconds,
)
from jaxconv.train.recipe import Recipe
from jaxconv.train.step import TrainState, check_divisible, mesh

__all__ = [
    "Checkpoints", "FitResult", "MetricsLog", "Recipe", "TrainState", "TrainingDiverged",
    "build_steps", "channel_stats", "check_divisible", "fit", "mesh", "read_jsonl",
    "step_seconds",
]
