"""The jitted train and eval steps over NNX state, sharded over a device mesh.

The model is split once into a graph definition (static) and state: parameters, and the rest
(BatchNorm statistics, dropout RNG streams). A step merges them, runs forward and backward,
applies optax, and returns the new state; its buffers are donated. Train and eval use two graph
definitions of the same model (``model.train()`` and ``model.eval()``), so the mode is static.

Devices: one `jax.sharding.Mesh` over every visible device with one axis, ``"data"``; batches
are sharded along it and the state replicated, so XLA inserts the gradient all-reduce. One
device is the same code path, and so is a multi-host run (`jax.distributed.initialize` first):
every process loads the same data and feeds its own devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxconv import functional as F
from jaxconv import nnx as jnn
from jaxconv.data.augment import augment, normalize, tta_views
from jaxconv.train.recipe import Recipe, ema_params


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
    """Everything a step changes or reads: parameters, other model state (BatchNorm
    statistics, dropout streams), optimizer state, step, and the augmentation key.

    A pytree (`jax.tree_util.register_dataclass`), so it passes through ``jax.jit`` and
    `Checkpoints` whole; the steps of `build` donate it and return a new one.

    Attributes:
      params: the model's ``nnx.Param`` state, floating-point leaves in float32.
      rest: the model's other state (BatchNorm statistics, RNG streams).
      opt_state: the optax optimizer state of ``params``.
      step: int32 scalar, the number of training steps taken.
      key: the PRNG key that step ``s``'s augmentation key is folded from
        (``jax.random.fold_in(key, s)``).
    """

    params: Any
    rest: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


def mesh() -> Mesh:
    """The device mesh training runs on: every visible device (``jax.devices()``, all
    processes') along one axis, ``"data"``.

    Returns:
      A one-axis `jax.sharding.Mesh` of ``jax.device_count()`` devices.

    >>> mesh().axis_names
    ('data',)
    """
    return Mesh(np.array(jax.devices()), ("data",))


def check_divisible(batch_size: int, name: str = "batch_size") -> None:
    """Checks that a batch splits evenly over the ``"data"`` axis of `mesh`.

    Args:
      batch_size: the number of examples in a batch.
      name: the recipe field it comes from, for the message (``train.<name>``).

    Raises:
      ValueError: ``batch_size`` is not a multiple of ``jax.device_count()``.

    >>> check_divisible(4 * jax.device_count())
    """
    devices = jax.device_count()
    if batch_size % devices:
        raise ValueError(f"train.{name}: {batch_size} does not divide evenly over the "
                         f"{devices} devices; use a multiple of {devices}")


def _put(x, sharding: NamedSharding):
    """``x`` placed with ``sharding``. With several processes each process transfers only what
    its own devices hold, cut from its host copy of the whole value (every process loads the
    same data and builds the same initial state), and nothing is compared across processes."""
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding),
                                        impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard_batch(m: Mesh, *arrays: np.ndarray):
    sharding = NamedSharding(m, PartitionSpec("data"))
    return tuple(_put(a, sharding) for a in arrays)


def replicate(m: Mesh, tree):
    sharding = NamedSharding(m, PartitionSpec())
    return jax.tree.map(lambda x: _put(x, sharding), tree)


@dataclasses.dataclass(frozen=True)
class Steps:
    """The compiled steps for one model, recipe and dataset statistics.

    Attributes:
      train: ``(state, images, labels) -> (state, metrics)``, one step.
      train_many: ``(state, images, labels, index, active) -> (state, metrics)``: one step per
        row of the ``(K, batch)`` ``index`` into the whole ``images`` and ``labels`` (placed on
        the devices once) where the ``(K,)`` ``active`` is true, as one ``lax.scan``; each
        metric comes back with one value per row (zeros where inactive). One compiled program
        runs calls of any length up to ``K``.
      option_set: the name of the compile-option set the steps are compiled with
        (``"default"`` or ``"tuned"``, see `jaxconv.train.options`).
      choices: what the steps were built under that changes their numbers
        (`jaxconv.train.options.choices`; `build` alone fills the option set and its compiler
        options): `jaxconv.train.fit` stores it in checkpoints and refuses to resume under
        other choices.
    """

    train: Callable
    evaluate: Callable
    init: Callable[[nnx.Module, int], TrainState]
    train_many: Callable
    merge: Callable[[TrainState], nnx.Module]
    option_set: str = "default"
    choices: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _jit(fn: Callable, compiler_options: Mapping[str, str], **kwargs) -> Callable:
    """``jax.jit`` with these compile options (the model's layers are told them by
    `jaxconv.nnx.set_compilation` in `build`)."""
    return jax.jit(fn, compiler_options=dict(compiler_options) or None, **kwargs)


def build(model: nnx.Module, recipe: Recipe, *, steps_per_epoch: int, num_classes: int,
          mean: np.ndarray, std: np.ndarray, compiler_options: Mapping[str, str] | None = None,
          option_set: str = "default") -> Steps:
    """Jitted steps for ``model``; the model object itself is not modified.

    The steps do not depend on the seed (it lives in the state), so one compilation serves
    every seed of a design. ``compiler_options`` (the XLA option dict) go to every ``jax.jit``
    call; ``option_set`` is the name of the set they come from.
    """
    model = nnx.clone(model)
    if recipe.bn_momentum is not None:
        set_bn_momentum(model, recipe.bn_momentum)
    compute = jnp.dtype(recipe.compute_dtype)
    jnn.set_dtypes(model, compute, jnp.float32)
    compiler_options = dict(compiler_options or {})
    # what the ops are compiled into: these options, and the batch sharded over every device
    # (see `mesh`), so that ``impl="auto"`` picks formulations for the program that will run
    jnn.set_compilation(model, F.Compilation(compiler_options,
                                             batch_shards=jax.device_count(),
                                             policy_version=recipe.policy_version))
    model.train()
    train_def, _, _ = nnx.split(model, nnx.Param, ...)
    model.eval()
    eval_def, _, _ = nnx.split(model, nnx.Param, ...)
    # the trained model `merge` hands out runs in its users' programs, not in these steps
    jnn.set_compilation(model, None)
    plain_def, _, _ = nnx.split(model, nnx.Param, ...)
    tx = recipe.optimizer_fn(steps_per_epoch, norm_mask=norm_mask(model))
    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
    augmenting = recipe.crop_padding > 0 or recipe.flip or recipe.cutout_rate > 0

    @jax.jit
    def fresh(params, rest, key) -> TrainState:
        # Copies: the step donates its state, which must not delete the caller's arrays.
        params, rest = jax.tree.map(lambda x: x.copy(), (params, rest))
        # the recipe trains float32 parameters whatever the model was built with
        params = jax.tree.map(
            lambda p: p.astype(jnp.float32) if jnp.issubdtype(p.dtype, jnp.floating) else p,
            params)
        return TrainState(params, rest, tx.init(params), jnp.zeros((), jnp.int32), key)

    def init(module: nnx.Module, seed: int) -> TrainState:
        # one compiled program, not one per distinct parameter shape and op
        _, params, rest = nnx.split(module, nnx.Param, ...)
        return fresh(params, rest, jax.random.key(seed))

    def train(state: TrainState, images, labels):
        x = images
        if augmenting:
            x = augment(jax.random.fold_in(state.key, state.step), x,
                        crop_padding=recipe.crop_padding, flip=recipe.flip,
                        cutout_size=recipe.cutout_size, cutout_rate=recipe.cutout_rate)
        x = normalize(x, mean, std).astype(compute)

        module = nnx.merge(train_def, state.params, state.rest)

        def objective(module):
            logits = module(x)
            return cross_entropy(logits, labels, num_classes, recipe.label_smoothing), logits

        (loss, logits), grads = nnx.value_and_grad(objective, has_aux=True)(module)
        _, _, rest = nnx.split(module, nnx.Param, ...)
        # optax's schedules mix int step counts with floats; keep that out of strict mode.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        return TrainState(params, rest, opt_state, state.step + 1, state.key), \
            _metrics(loss, accuracy, finite)

    def evaluated(state: TrainState):
        # the parameters evaluated: their moving average where the recipe keeps one
        return ema_params(recipe, state.params, state.opt_state)

    def evaluate(state: TrainState, images, labels, weight):
        module = nnx.merge(eval_def, evaluated(state), state.rest)
        views = [module(normalize(view, mean, std).astype(compute)).astype(jnp.float32)
                 for view in tta_views(images, recipe.tta)]
        logits = views[0] if len(views) == 1 else sum(views[1:], views[0]) / len(views)
        losses = optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, num_classes))
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return {"loss": jnp.sum(losses * weight), "correct": jnp.sum(correct * weight),
                "count": jnp.sum(weight)}

    def merge(state: TrainState) -> nnx.Module:
        return nnx.merge(plain_def, evaluated(state), state.rest)

    def train_many(state: TrainState, images, labels, index, active):
        def run(state, rows):
            return train(state, _batch_sharded(images[rows]), _batch_sharded(labels[rows]))

        def skip(state, rows):
            return state, _metrics(0.0, 0.0, False)

        def body(state, step):
            rows, on = step
            return jax.lax.cond(on, run, skip, state, rows)

        return jax.lax.scan(body, state, (index, active))

    return Steps(_jit(train, compiler_options, donate_argnums=0),
                 _jit(evaluate, compiler_options), init,
                 _jit(train_many, compiler_options, donate_argnums=0), merge, option_set,
                 {"option_set": option_set, "compiler_options": compiler_options})


def batch_norms(model: nnx.Module) -> list[tuple[tuple, nnx.BatchNorm]]:
    """``(path, layer)`` of every BatchNorm in ``model``."""
    return [(tuple(path), m) for path, m in nnx.iter_modules(model)
            if isinstance(m, nnx.BatchNorm)]


def set_bn_momentum(model: nnx.Module, momentum: float) -> None:
    """Sets the running-statistics momentum of every BatchNorm in ``model`` (in place)."""
    for _, norm in batch_norms(model):
        norm.momentum = momentum


def norm_mask(model: nnx.Module) -> Callable[[Any], Any]:
    """A mask function for optax: true for the parameters (scales and biases) of ``model``'s
    BatchNorms in a parameter tree split from it, false for every other parameter."""
    paths = {path for path, _ in batch_norms(model)}

    def inside(keypath) -> bool:
        keys = tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))
                     for k in keypath)
        return any(keys[:i] in paths for i in range(1, len(keys)))

    def mask(params):
        return jax.tree_util.tree_map_with_path(lambda keypath, _: inside(keypath), params)

    return mask


def smoothed_targets(labels, num_classes: int, smoothing: float) -> jax.Array:
    """``(N, num_classes)`` training targets: ``1 - smoothing`` on the label plus
    ``smoothing / num_classes`` on every class (Szegedy et al. 2016, arXiv:1512.00567)."""
    return optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing)


def cross_entropy(logits, labels, num_classes: int, smoothing: float = 0.0) -> jax.Array:
    """The training loss: mean softmax cross-entropy against `smoothed_targets`, in float32."""
    targets = smoothed_targets(labels, num_classes, smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def _metrics(loss, accuracy, finite) -> dict[str, jax.Array]:
    """A training step's metrics, typed the same whether the step ran or was masked (so a
    masked row needs no second trace of the step to learn their types)."""
    return {"loss": jnp.asarray(loss, jnp.float32), "accuracy": jnp.asarray(accuracy, jnp.float32),
            "finite": jnp.asarray(finite, bool)}


def _batch_sharded(x):
    """``x`` split along its first axis over the ``"data"`` axis of the current mesh."""
    if jax.device_count() == 1:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh(), PartitionSpec("data")))
