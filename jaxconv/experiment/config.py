"""Experiment configs: YAML → frozen dataclasses, with strict validation and ``--set`` overrides.

A config names the dataset, the training recipe, shared model defaults, the variants (each a
model that overrides the defaults) and the seeds::

    name: quickstart
    data: {name: digits}
    train: {epochs: 10, batch_size: 64, learning_rate: 0.05}
    model: {layout: {width: 16, depth: 1, stem_strides: 1}}
    variants:
      - {name: bottleneck, model: {layout: {block: bottleneck}}}
      - {name: fire, model: {layout: {block: fire}}}
    seeds: [0, 1]

A variant's ``model`` is merged key by key into the shared ``model`` and must then name exactly
one of ``preset`` (a `jaxconv.models.presets` name), ``layout`` (the presets' three-stage layout
for any block and width) or ``stages`` (a full `jaxconv.models.ModelSpec`). Unknown keys and
bad values are `ConfigError`s naming the key path, with the closest valid key or the allowed
values.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from jaxconv import data as data_lib
from jaxconv._hints import did_you_mean
from jaxconv.experiment import examples
from jaxconv.models import ModelSpec, layout, presets, spec
from jaxconv.train import Recipe

TOP_KEYS = ("name", "data", "train", "model", "variants", "seeds", "output_dir",
            "compare_with")
DATA_KEYS = ("name", "data_dir")
MODEL_KEYS = ("preset", "layout", "stages", "stem_width", "stem_strides", "dropout", "init",
              "zero_init_residual", "drop_path")
#: Model keys that apply on top of a preset or layout.
EXTRA_KEYS = ("stem_width", "stem_strides", "dropout", "init", "zero_init_residual",
              "drop_path")
LAYOUT_KEYS = ("block", "width", "depth", "stem_strides", "options")

#: What each key of a config means, by section; the documentation's config reference is built
#: from it (``train`` from `jaxconv.train.Recipe`), and its build fails when a key has no entry.
KEY_HELP = {
    "(top)": {
        "name": "the run folder's name (no `/`).",
        "data": "the dataset: `name` and optional `data_dir` (below).",
        "train": "the training recipe: the fields of `jaxconv.train.Recipe` (below).",
        "model": "model defaults shared by the variants; each variant's `model` is merged into "
                 "them key by key.",
        "variants": "a non-empty list of `{name, model}`; after merging, each model names "
                    "exactly one of `preset`, `layout` or `stages`.",
        "seeds": "a non-empty list of distinct ints >= 0 (default `[0]`).",
        "output_dir": "where run folders go (default `runs`).",
        "compare_with": "another study's run folder (a path like `output_dir`'s): the report "
                        "sets this study's ranking of the variants beside that one's, with "
                        "Spearman's rank correlation and its interval (optional; changes no "
                        "run, so it may be added to a finished study).",
    },
    "data": {
        "name": "`digits` (built in), `mnist`, `fashion_mnist`, `cifar10` or `synthetic`.",
        "data_dir": "a folder looked in first for the dataset's files.",
    },
    "model": {
        "preset": "a `jaxconv.models.presets()` name, e.g. `bottleneck-0.3m`.",
        "layout": "the presets' three-stage layout for any block and width: "
                  "`{block, width, depth, stem_strides, options}` (below).",
        "stages": "a full spec: a list of `{block, width, depth, strides, options}`, with "
                  "`stem_width` and `stem_strides` beside it.",
        "stem_width": "channels of the 3x3 stem conv.",
        "stem_strides": "strides of the stem conv.",
        "dropout": "dropout rate before the classifier.",
        "init": "`reference` (each block family's reference initialisation, the default) or "
                "`flax` (Flax's LeCun-normal default of every layer).",
        "zero_init_residual": "start each residual branch's last BatchNorm scale at zero: "
                              "`true`, `false` or `null` (the family's default: on for "
                              "`basic`, `bottleneck`, `resnext`).",
        "drop_path": "stochastic depth, rising linearly from 0 at the first block to this "
                     "rate at the last (residual blocks only).",
    },
    "model.layout": {
        "block": "a `jaxconv.blocks.names()` name (required).",
        "width": "channels of the first stage; the others have 2x and 4x (required).",
        "depth": "blocks per stage (default 2).",
        "stem_strides": "strides of the stem conv (default 2).",
        "options": "the block's own options, e.g. `{expansion: 6}` (`jaxconv.blocks.options`).",
    },
}
#: The keys of each section of a config, as `from_mapping` accepts them.
KEY_SECTIONS = {"(top)": TOP_KEYS, "data": DATA_KEYS, "model": MODEL_KEYS,
                "model.layout": LAYOUT_KEYS}


class ConfigError(ValueError):
    """A config key is unknown, missing or has a bad value."""


def _unknown(path: str, key: str, valid: Sequence[str]) -> ConfigError:
    hint = did_you_mean(key, valid)
    where = f"{path}.{key}" if path else str(key)
    return ConfigError(f"{where}: unknown key{hint}; valid keys at {path or 'the top'}: "
                       f"{', '.join(valid)}")


def _keys(mapping: Any, valid: Sequence[str], path: str) -> Mapping[str, Any]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {mapping!r}")
    for key in mapping:
        if key not in valid:
            raise _unknown(path, key, valid)
    return mapping


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of a study: a named model.

    Attributes:
      name: the variant's name, its folder under the run folder.
      model: the model it trains.
    """

    name: str
    model: ModelSpec


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A resolved, validated experiment.

    Attributes:
      name: the run folder's name.
      data: the ``data`` mapping (``name``, optional ``data_dir``).
      train: the training recipe.
      variants: the models, in config order.
      seeds: the seeds each variant trains with.
      output_dir: where run folders go.
      raw: the config mapping as read, overrides applied.
    """

    name: str
    data: Mapping[str, Any]
    train: Recipe
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    output_dir: str
    raw: Mapping[str, Any]

    @property
    def run_dir(self) -> pathlib.Path:
        return pathlib.Path(self.output_dir) / self.name


def model_spec(model: Mapping[str, Any], path: str) -> ModelSpec:
    """A `ModelSpec` from a merged variant model mapping."""
    _keys(model, MODEL_KEYS, path)
    chosen = [k for k in ("preset", "layout", "stages") if k in model]
    if len(chosen) != 1:
        raise ConfigError(f"{path}: name exactly one of preset, layout or stages; got "
                          f"{', '.join(chosen) or 'none'}")
    try:
        if "preset" in model:
            if model["preset"] not in presets():
                hint = did_you_mean(model["preset"], presets())
                raise ConfigError(f"{path}.preset: {model['preset']!r} is not a preset{hint}; "
                                  f"valid: {', '.join(presets())}")
            base = spec(model["preset"])
        elif "layout" in model:
            lay = _keys(model["layout"], LAYOUT_KEYS, f"{path}.layout")
            for key in ("block", "width"):
                if key not in lay:
                    raise ConfigError(f"{path}.layout.{key}: required")
            base = layout(lay["block"], lay["width"], depth=lay.get("depth", 2),
                          **dict(lay.get("options") or {}))
            base = ModelSpec.from_dict({**base.to_dict(),
                                        "stem_strides": lay.get("stem_strides", 2)}, path)
        else:
            base = ModelSpec.from_dict({k: v for k, v in model.items()
                                        if k in ("stages", "stem_width", "stem_strides")}, path)
        extra = {k: model[k] for k in EXTRA_KEYS if k in model}
        return ModelSpec.from_dict({**base.to_dict(), **extra}, path) if extra else base
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{path}: {error}") from None


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, bool) or not isinstance(value, Sequence) or not value or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        raise ConfigError(f"seeds: {value!r} must be a non-empty list of ints >= 0")
    if len(set(value)) != len(value):
        raise ConfigError(f"seeds: {value!r} has repeats")
    return tuple(value)


def from_mapping(raw: Mapping[str, Any]) -> ExperimentConfig:
    """Validates a config mapping (YAML already parsed).

    Args:
      raw: the config as a mapping (see the module docstring for its keys).

    Returns:
      The resolved `ExperimentConfig`. A bad key or value raises `ConfigError` naming its path.
    """
    raw = _keys(raw, TOP_KEYS, "")
    for key in ("name", "data", "variants"):
        if key not in raw:
            raise ConfigError(f"{key}: required")
    name = raw["name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"name: {name!r} must be a non-empty string without '/'")
    data = dict(_keys(raw["data"], DATA_KEYS, "data"))
    if data.get("name") not in data_lib.NAMES:
        raise ConfigError(f"data.name: {data.get('name')!r} is not one of "
                          f"{', '.join(data_lib.NAMES)}")
    try:
        recipe = Recipe.from_dict(dict(raw.get("train") or {}))
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error)) from None
    shared = dict(_keys(raw.get("model") or {}, MODEL_KEYS, "model"))
    variants_raw = raw["variants"]
    if not isinstance(variants_raw, Sequence) or isinstance(variants_raw, str) \
            or not variants_raw:
        raise ConfigError(f"variants: expected a non-empty list, got {variants_raw!r}")
    variants, seen = [], set()
    for i, entry in enumerate(variants_raw):
        path = f"variants[{i}]"
        entry = _keys(entry, ("name", "model"), path)
        vname = entry.get("name")
        if not isinstance(vname, str) or not vname or "/" in vname or vname in seen:
            raise ConfigError(f"{path}.name: {vname!r} must be a unique non-empty string "
                              "without '/'")
        seen.add(vname)
        merged = _merge(shared, _keys(entry.get("model") or {}, MODEL_KEYS, f"{path}.model"))
        variants.append(Variant(vname, model_spec(merged, f"{path}.model")))
    output_dir = raw.get("output_dir", "runs")
    if not isinstance(output_dir, str) or not output_dir:
        raise ConfigError(f"output_dir: {output_dir!r} must be a non-empty path")
    compare_with = raw.get("compare_with")
    if compare_with is not None and (not isinstance(compare_with, str) or not compare_with):
        raise ConfigError(f"compare_with: {compare_with!r} must be a non-empty path to a run "
                          "folder")
    return ExperimentConfig(name, data, recipe, tuple(variants), _seeds(raw.get("seeds", [0])),
                            output_dir, copy.deepcopy(dict(raw)))


def apply_override(raw: dict[str, Any], assignment: str) -> dict[str, Any]:
    """``a.b=value`` (value parsed as YAML) set into a copy of ``raw``; ``variants[1].name=x``
    indexes lists.

    Args:
      raw: a config mapping (not changed).
      assignment: ``KEY=VALUE``, the key a dotted path, list items by index.

    Returns:
      The changed copy.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.epochs=1")
    key, text = assignment.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({error})") \
            from None
    out = copy.deepcopy(raw)
    node: Any = out
    parts = key.split(".")
    for depth, part in enumerate(parts):
        index = None
        if part.endswith("]") and "[" in part:
            part, index_text = part[:-1].split("[", 1)
            index = int(index_text)
        last = depth == len(parts) - 1 and index is None
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is not a mapping")
        if last:
            node[part] = value
            break
        node = node.setdefault(part, {})
        if index is not None:
            if not isinstance(node, list) or not -len(node) <= index < len(node):
                raise ConfigError(f"--set {key}: {part}[{index}] does not exist")
            if depth == len(parts) - 1:
                node[index] = value
                break
            node = node[index]
    return out


def load(path: str | pathlib.Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Reads a YAML config (a file, or the name of a shipped example config such as
    ``quickstart``: `jaxconv.experiment.examples`), applies ``--set`` overrides, validates.

    Args:
      path: a YAML config file.
      overrides: ``KEY=VALUE`` assignments applied in order (`apply_override`).

    Returns:
      The resolved `ExperimentConfig`.
    """
    try:
        path = examples.resolve(path)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {type(raw).__name__}")
    for assignment in overrides:
        raw = apply_override(raw, assignment)
    return from_mapping(raw)
