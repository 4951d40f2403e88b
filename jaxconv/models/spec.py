"""`ModelSpec`: a classifier described as data (stem, stages of blocks, head).

A plain mapping (from YAML or Python) becomes a spec through `ModelSpec.from_dict`, which
rejects unknown keys and bad values with the key path, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from jaxconv._hints import did_you_mean
from jaxconv.blocks import registry

#: ``ModelSpec.init`` values.
INITS = ("reference", "flax")


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _unknown_keys(given: Mapping, valid: Sequence[str], path: str) -> None:
    for key in given:
        if key not in valid:
            hint = did_you_mean(key, valid)
            raise ValueError(f"{_where(path)}unknown key {key!r}{hint}; valid keys: "
                             f"{', '.join(valid)}")


def _positive_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path}: {value!r} must be a positive int")
    return value


def _rate(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{path}: {value!r} must be a number in [0, 1)")
    return float(value)


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """``depth`` blocks of one design at one width; the first carries the stride.

    Attributes:
      block: a registry name (`jaxconv.blocks.names`).
      width: output channels of every block in the stage.
      depth: number of blocks.
      strides: the first block's stride.
      options: the block's design options (`jaxconv.blocks.options`).
    """

    block: str
    width: int
    depth: int = 1
    strides: int = 1
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "stage") -> StageSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a mapping with keys block, width, depth, strides, "
                             f"options; got {data!r}")
        _unknown_keys(data, [f.name for f in dataclasses.fields(cls)], path)
        if "block" not in data or "width" not in data:
            raise ValueError(f"{path}: 'block' and 'width' are required")
        block = data["block"]
        if block not in registry.BLOCKS:
            raise registry._unknown("block", str(block), registry.names(), f"{path}.block: ")
        options = dict(data.get("options") or {})
        registry.check_options(block, options, f"{path}.options: ")
        return cls(block=block, width=_positive_int(data["width"], f"{path}.width"),
                   depth=_positive_int(data.get("depth", 1), f"{path}.depth"),
                   strides=_positive_int(data.get("strides", 1), f"{path}.strides"),
                   options=options)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Stem → stages → global average pool → (dropout) → linear classifier.

    Attributes:
      stages: the stages in order.
      stem_width: channels of the stem's 3x3 conv (+ BN + ReLU).
      stem_strides: the stem's stride.
      dropout: dropout rate before the classifier.
      init: ``"reference"``, each block family's reference initialisation
        (`jaxconv.blocks.init`; the stem and classifier follow the first stage's family), or
        ``"flax"``, every layer's Flax default (LeCun normal kernels).
      zero_init_residual: start the last BatchNorm scale of every residual branch at zero;
        None takes the family's reference default (on for basic, bottleneck and resnext).
        Applies with ``init="reference"`` only.
      drop_path: stochastic depth of the residual blocks, rising linearly from 0 at the first
        block to this rate at the last (as ConvNeXt and timm); every block must take it.
    """

    stages: tuple[StageSpec, ...]
    stem_width: int = 32
    stem_strides: int = 1
    dropout: float = 0.0
    init: str = "reference"
    zero_init_residual: bool | None = None
    drop_path: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "model") -> ModelSpec:
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a mapping; got {data!r}")
        _unknown_keys(data, [f.name for f in dataclasses.fields(cls)], path)
        stages = data.get("stages")
        if not isinstance(stages, Sequence) or isinstance(stages, str) or not stages:
            raise ValueError(f"{path}.stages: expected a non-empty list of stages; got "
                             f"{stages!r}")
        dropout = _rate(data.get("dropout", 0.0), f"{path}.dropout")
        init = data.get("init", "reference")
        if init not in INITS:
            raise ValueError(f"{path}.init: {init!r} is not one of {', '.join(INITS)}")
        zero = data.get("zero_init_residual")
        if zero is not None and not isinstance(zero, bool):
            raise ValueError(f"{path}.zero_init_residual: {zero!r} must be true, false or null "
                             "(the family's default)")
        if zero is not None and init != "reference":
            raise ValueError(f"{path}.zero_init_residual: {zero!r} needs init: reference; "
                             f"got init: {init!r}")
        drop_path = _rate(data.get("drop_path", 0.0), f"{path}.drop_path")
        parsed = tuple(StageSpec.from_dict(s, f"{path}.stages[{i}]")
                       for i, s in enumerate(stages))
        for i, stage in enumerate(parsed):
            if zero and not hasattr(registry.get(stage.block), "residual_norm"):
                raise ValueError(f"{path}.zero_init_residual: true needs residual blocks; block "
                                 f"{stage.block!r} of stages[{i}] has no BatchNorm-ended "
                                 "residual branch")
            if drop_path and "drop_path" not in registry.options(stage.block):
                raise ValueError(f"{path}.drop_path: {drop_path} needs residual blocks; block "
                                 f"{stage.block!r} of stages[{i}] has no residual branch to "
                                 "drop")
            if drop_path and "drop_path" in stage.options:
                raise ValueError(f"{path}.stages[{i}].options.drop_path: set either the "
                                 f"model's drop_path (scaled over depth) or the stages', not both")
        return cls(
            stages=parsed,
            stem_width=_positive_int(data.get("stem_width", 32), f"{path}.stem_width"),
            stem_strides=_positive_int(data.get("stem_strides", 1), f"{path}.stem_strides"),
            dropout=dropout, init=init, zero_init_residual=zero,
            drop_path=drop_path)

    @classmethod
    def from_saved(cls, data: Mapping[str, Any], path: str = "model") -> ModelSpec:
        """A spec from a mapping `to_dict` wrote, by any version: keys it lacks take the
        meaning they had when it was written (before ``init`` existed, every layer started
        with Flax's default and ConvNeXt used the tanh GELU)."""
        data = dict(data)
        if "init" not in data:
            data["init"] = "flax"
            data["stages"] = [
                {**stage, "options": {"gelu_approximate": True, **(stage.get("options") or {})}}
                if stage.get("block") == "convnext" else stage for stage in data["stages"]]
        return cls.from_dict(data, path)

    def to_dict(self) -> dict[str, Any]:
        return {"stem_width": self.stem_width, "stem_strides": self.stem_strides,
                "dropout": self.dropout, "init": self.init,
                "zero_init_residual": self.zero_init_residual, "drop_path": self.drop_path,
                "stages": [{"block": s.block, "width": s.width, "depth": s.depth,
                            "strides": s.strides, "options": dict(s.options)}
                           for s in self.stages]}
