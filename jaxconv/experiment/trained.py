"""Trained models out of run folders: `load_run` and `load_model`.

A finished run keeps its last checkpoint (``<variant>/seed-<k>/checkpoints``) and the input
normalisation it trained with (``normalization.json`` beside it, `save_normalization`); with the
folder's resolved ``config.yaml`` that is everything needed to rebuild the model, its weights,
its BatchNorm statistics and what its inputs must look like, whatever machine loads it. Run
folders written before the normalisation was kept recompute it from the training set, with a
warning.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from flax import nnx

from jaxconv import data, models, train
from jaxconv._hints import did_you_mean
from jaxconv.experiment import report
from jaxconv.train import loop as train_loop
from jaxconv.train import step as train_step
from jaxconv.tuning.files import atomic_write_text

#: The file of a run folder (``<variant>/seed-<k>/``) with the normalisation the run trained with.
NORMALIZATION = "normalization.json"


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A finished run's model (eval mode) and what its inputs must look like.

    Attributes:
      model: the trained `jaxconv.models.ConvNet`, in eval mode; it takes normalised images.
      mean, std: per-channel statistics (``[0, 1]`` units) that `normalize` applies.
      image_shape: ``(H, W, C)`` of the dataset the run trained on.
      num_classes, dataset_name, variant, seed, spec, data_dir: what was trained, on what.
    """

    model: models.ConvNet
    mean: np.ndarray
    std: np.ndarray
    image_shape: tuple[int, ...]
    num_classes: int
    dataset_name: str
    variant: str
    seed: int
    spec: models.ModelSpec
    data_dir: str | None = None

    def dataset(self, split: str = "train") -> data.Dataset:
        """A split of the dataset the run trained on, from where the run found it."""
        return data.load(self.dataset_name, split, self.data_dir)

    def normalize(self, images: np.ndarray) -> jax.Array:
        """uint8 images (or floats in ``[0, 255]``), ``(N, H, W, C)``, as the model takes them."""
        return data.normalize(np.asarray(images), self.mean, self.std)

    def probabilities(self, images: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
        """Class probabilities ``(N, num_classes)`` for uint8 images ``(N, H, W, C)``.

        The forward pass compiles once per chunk shape, across calls and runs of one design.
        """
        images = np.asarray(images)
        if images.ndim == len(self.image_shape):
            images = images[None]
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"images: expected shape (N, {', '.join(map(str, self.image_shape))})"
                             f" as {self.dataset_name} has; got {images.shape}")
        return np.concatenate([
            np.asarray(_softmax_forward(self.model, self.normalize(images[i:i + batch_size])))
            for i in range(0, len(images), batch_size)])

    def predict_fn(self):
        """``uint8 images (N, H, W, C) -> class probabilities (N, num_classes)``, a pure
        function with the weights and the normalisation closed over."""
        graphdef, state = nnx.split(self.model)
        mean, std = jnp.asarray(self.mean), jnp.asarray(self.std)

        def predict(images):
            model = nnx.merge(graphdef, state)
            logits = model(data.normalize(images, mean, std))
            return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        return predict

    def export(self, batch_size: int | None = None,
               platforms: tuple[str, ...] | None = None) -> jax.export.Exported:
        """The model as a `jax.export` artifact from uint8 images ``(N, H, W, C)`` of the run's
        shape to class probabilities, the run's normalisation inside; `jax.export.deserialize`
        loads it and ``.call(images)`` runs it with JAX alone (no jaxconv, no native kernel).

        Args:
          batch_size: ``None`` (the default) for any number of images per call (a symbolic
            batch dimension); an int fixes it.
          platforms: lowering platforms, e.g. ``("cpu", "cuda")``; the default is this
            machine's.
        """
        if batch_size is None:
            batch = jax.export.symbolic_shape("batch")[0]
        elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: {batch_size!r} must be a positive int, or None for "
                             "any batch")
        else:
            batch = batch_size
        spec = jax.ShapeDtypeStruct((batch, *self.image_shape), jnp.uint8)
        return jax.export.export(jax.jit(self.predict_fn()), platforms=platforms)(spec)


@nnx.jit
def _softmax_forward(model: models.ConvNet, images: jax.Array) -> jax.Array:
    """Class probabilities of normalised images; one compiled program per graph and shape."""
    return jax.nn.softmax(model(images), axis=-1)


def save_normalization(folder: str | pathlib.Path, mean: np.ndarray, std: np.ndarray) -> None:
    """Writes the per-channel ``mean`` and ``std`` (``[0, 1]`` units) a run trains with into its
    folder, atomically, for `load_run` to use on any machine."""
    record = {"mean": np.asarray(mean, np.float32).tolist(),
              "std": np.asarray(std, np.float32).tolist(),
              "units": "pixels / 255; the model takes (pixels / 255 - mean) / std per channel"}
    atomic_write_text(pathlib.Path(folder) / NORMALIZATION, json.dumps(record, indent=1) + "\n")


def read_normalization(folder: pathlib.Path,
                       dataset: data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The ``(mean, std)`` a run in ``folder`` trained with; recomputed from ``dataset`` (the
    training split), with a warning, for a folder written before runs kept them."""
    path = folder / NORMALIZATION
    if not path.is_file():
        warnings.warn(f"{folder} has no {NORMALIZATION} (written before runs kept their input "
                      f"normalisation); it is recomputed from the {dataset.name} training set "
                      "on this machine, which matches the run's only if the data and the "
                      "arithmetic are the same here", UserWarning, stacklevel=3)
        return train.channel_stats(dataset)
    record = json.loads(path.read_text())
    mean, std = (np.asarray(record[key], np.float32) for key in ("mean", "std"))
    channels = dataset.images.shape[-1]
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"run_dir: {path} holds mean {mean.shape} and std {std.shape}; "
                         f"expected one value per channel, ({channels},), as {dataset.name} has")
    return mean, std


def read_images(path: str | pathlib.Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """A ``.npy`` of images as uint8 ``(N, H, W, C)``: one image, or grayscale without its
    channel axis, is accepted; float values must be in ``[0, 255]``."""
    path = pathlib.Path(path)
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"images: cannot read {path} as a .npy array ({error})") from None
    if image_shape[-1] == 1 and images.shape[-2:] == image_shape[:-1]:
        images = images[..., None]                  # grayscale without its channel axis
    if images.shape == image_shape:
        images = images[None]                       # one image
    if images.shape[1:] != image_shape:
        raise ValueError(f"images: {path} holds shape {images.shape}; expected (N, "
                         f"{', '.join(map(str, image_shape))}) as the run's dataset has")
    if images.dtype != np.uint8:
        if images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.number):
            raise ValueError(f"images: {path} holds {images.dtype} values; expected uint8 "
                             "pixels (0..255) as the dataset stores them")
        low, high = (float(images.min()), float(images.max())) if images.size else (0, 0)
        if not (0 <= low and high <= 255):
            raise ValueError(f"images: {path} holds values from {low} to {high}; expected "
                             "pixels in 0..255 as the dataset stores them")
        if np.issubdtype(images.dtype, np.floating) and 0 < high <= 1:
            raise ValueError(f"images: {path} holds floats in [0, 1]; multiply by 255 (the "
                             "model takes pixels in 0..255, as the dataset stores them)")
        images = np.round(images).astype(np.uint8)
    return images


def _config(run_dir: pathlib.Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise ValueError(f"run_dir: {str(run_dir)!r} is not a folder")
    if not path.is_file():
        raise ValueError(f"run_dir: {str(run_dir)!r} is not a run folder (it has no "
                         "config.yaml; jaxconv run writes one)")
    return yaml.safe_load(path.read_text())


def _variant(config: dict[str, Any], variant: str, run_dir: pathlib.Path) -> dict[str, Any]:
    names = [v["name"] for v in config["variants"]]
    if variant not in names:
        hint = did_you_mean(variant, names)
        raise ValueError(f"variant: {variant!r} is not in {run_dir}{hint}; variants: "
                         f"{', '.join(names)}")
    return config["variants"][names.index(variant)]


def abstract_model(spec: models.ModelSpec, dataset: data.Dataset) -> models.ConvNet:
    """`build_model`'s model with abstract parameters (shapes and dtypes only), for costs."""
    return nnx.eval_shape(lambda: models.ConvNet(
        spec, num_classes=dataset.num_classes, in_features=dataset.images.shape[-1],
        rngs=nnx.Rngs(0)))


#: Compiled constructors of the designs built last, newest last; a study builds each design
#: once per seed, one design after another.
_BUILDERS: collections.OrderedDict[str, tuple[list, Callable[[jax.Array], Any]]] = \
    collections.OrderedDict()
_KEEP = 8


def build_model(spec: models.ModelSpec, dataset: data.Dataset, seed: int) -> models.ConvNet:
    """The model a run of ``spec`` on ``dataset`` with ``seed`` starts from.

    The constructor runs as one compiled program per design and dataset shape, whatever the
    seed, compiled without XLA's optimisation passes (it runs once; they took 6-17 s of
    compilation per design on a 2-core CPU, 2-7 s without). Op by op instead, its few hundred
    random draws compiled one by one took 1.5 s per model with a warm compilation cache and
    10-40 s with a cold one. The weights are those of ``ConvNet(spec, ...,
    rngs=nnx.Rngs(seed))`` run op by op to within a few ulps (compiled together, the
    scalings round differently). Call it outside ``jax.jit`` and other transforms (it compiles
    a program of its own); `abstract_model` gives the shapes.
    """
    classes, features = dataset.num_classes, dataset.images.shape[-1]
    name = repr((spec.to_dict(), classes, features))
    if name not in _BUILDERS:
        graphdefs = []

        def create(key):
            graphdef, state = nnx.split(models.ConvNet(
                spec, num_classes=classes, in_features=features, rngs=nnx.Rngs(key)))
            if not graphdefs:
                graphdefs.append(graphdef)      # the structure, the same for every key
            return state

        _BUILDERS[name] = graphdefs, jax.jit(
            create, compiler_options={"xla_backend_optimization_level": 0})
        while len(_BUILDERS) > _KEEP:
            _BUILDERS.popitem(last=False)
    _BUILDERS.move_to_end(name)
    graphdefs, create = _BUILDERS[name]
    state = create(jax.random.key(seed))        # the first call traces, filling graphdefs
    return nnx.merge(graphdefs[0], state)


def load_run(run_dir: str | pathlib.Path, variant: str, seed: int = 0, *,
             initial: bool = False) -> TrainedRun:
    """A finished run's trained model and the input normalisation it trained with.

    Args:
      run_dir: a `jaxconv run` folder, e.g. ``runs/quickstart``.
      variant: a variant name of its config.
      seed: which seed's run.
      initial: the model as that run started, not as it ended: `build_model`'s, with the
        recipe's ``dirac_init`` and ``stem_init: whiten`` applied as the run applied them
        (`jaxconv.train.loop.prepare`, the stem whitened on the run's training split).

    Like `build_model`, call it outside ``jax.jit`` and other transforms.

    Returns:
      The `TrainedRun`: the model, its input normalisation and what it trained on.

    Raises:
      ValueError: not a run folder, an unknown variant, or a run that has not finished.
    """
    run_dir = pathlib.Path(run_dir)
    config = _config(run_dir)
    entry = _variant(config, variant, run_dir)
    folder = run_dir / variant / f"seed-{seed}"
    result_path = folder / "result.json"
    if not result_path.is_file():
        raise ValueError(f"seed: the run of variant {variant!r} with seed {seed} has not "
                         f"finished (no {result_path}); seeds of the config: "
                         f"{config.get('seeds')}")
    result = json.loads(result_path.read_text())
    if not report.finished(result):
        raise ValueError(f"seed: the run of variant {variant!r} with seed {seed} "
                         f"{result['status']} ({result.get('error', '')}); it has no trained "
                         "model")
    spec = models.ModelSpec.from_saved(entry["model"])
    recipe = train.Recipe.from_dict(config["train"])
    dataset = data.load(config["data"]["name"], "train", config["data"].get("data_dir"))
    mean, std = read_normalization(folder, dataset)
    model = build_model(spec, dataset, seed)
    if initial:
        model = train_loop.prepare(model, dataset, recipe, seed)
    else:
        kept = len(dataset) - data.validation_size(len(dataset), recipe.validation_fraction)
        steps = train_step.build(model, recipe, steps_per_epoch=kept // recipe.batch_size,
                                 num_classes=dataset.num_classes, mean=mean, std=std)
        if not (folder / "checkpoints").is_dir():
            raise ValueError(f"run_dir: {folder} has no checkpoints to load (they stay out of "
                             "git; rerun the config here to train it)")
        checkpoints = train.Checkpoints(folder)
        try:
            if checkpoints.latest() is None:
                raise ValueError(f"run_dir: {folder / 'checkpoints'} holds no checkpoint")
            state, _ = checkpoints.restore(steps.init(model, seed))
        finally:
            checkpoints.close()
        model = steps.merge(state)
    model.eval()
    return TrainedRun(model=model, mean=mean, std=std, image_shape=dataset.images.shape[1:],
                      num_classes=dataset.num_classes, dataset_name=dataset.name,
                      variant=variant, seed=seed, spec=spec,
                      data_dir=config["data"].get("data_dir"))


def load_model(run_dir: str | pathlib.Path, variant: str, seed: int = 0) -> models.ConvNet:
    """The trained model (eval mode) of a finished run; it takes images normalised as
    `TrainedRun.normalize` does (`load_run` gives both).

    >>> model = load_model("runs/quickstart", "basic")          # doctest: +SKIP

    Args:
      run_dir: a `jaxconv run` folder.
      variant: a variant name of its config.
      seed: which seed's run.

    Returns:
      The `jaxconv.models.ConvNet`.
    """
    return load_run(run_dir, variant, seed).model
