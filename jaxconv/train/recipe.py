"""`Recipe`: every training hyper-parameter in one frozen dataclass, and the optimizer it makes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import optax

from jaxconv._hints import did_you_mean

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "linear", "onecycle", "constant")
COMPUTE_DTYPES = ("float32", "bfloat16")
COMPILE_OPTIONS = ("auto", "default", "tuned")
LR_SCALINGS = ("none", "linear")
TTAS = ("none", "flip", "shifts")
STEM_INITS = ("model", "whiten")
TEST_EVALS = ("epoch", "end")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train.

    Attributes:
      epochs, batch_size: length of training and global batch (split over devices).
      optimizer: ``"sgd"`` (momentum, optionally Nesterov) or ``"adamw"``.
      learning_rate: peak learning rate (at ``reference_batch_size`` when ``lr_scaling`` is
        ``"linear"``).
      lr_scaling: ``"none"`` (``learning_rate`` whatever the batch) or ``"linear"``: the peak
        rate is ``learning_rate * batch_size / reference_batch_size`` (Goyal et al. 2017,
        arXiv:1706.02677), so a batch size can change without retuning the rate.
      reference_batch_size: the batch size ``learning_rate`` was tuned at (``"linear"`` only).
      momentum, nesterov: SGD's momentum (``b1`` of AdamW).
      weight_decay: decoupled for AdamW, L2 added to the gradient for SGD; never applied to
        biases, norm scales or other 1-D parameters.
      schedule: ``"cosine"`` (decay to 0), ``"linear"`` (decay to 0 in a straight line),
        ``"onecycle"`` (optax's cosine one-cycle: up from peak/25 over the first 30% of the
        steps, then down to peak/250,000; it ignores ``warmup_epochs``) or ``"constant"``; over
        ``epochs`` epochs.
      warmup_epochs: linear warm-up from 0 (cosine, linear and constant).
      label_smoothing: mass spread uniformly over the classes.
      validation_fraction: share of the training set held out for validation.
      split_seed: the seed of that hold-out, separate from the training seed so that every
        seed of a study trains on the same images and validates on the same others (0 by
        default; ``None``: the training seed, as runs did before split seeds existed).
      crop_padding: random crop after zero padding by this many pixels (0: off).
      flip: random horizontal flips.
      cutout_rate, cutout_size: erase a ``cutout_size`` x ``cutout_size`` square (to black,
        pixel value 0), placed uniformly inside the image, from each training image with
        probability ``cutout_rate`` (DeVries and Taylor 2017, arXiv:1708.04552; Zhong et al.'s
        random erasing, arXiv:1708.04896, with a fixed square). Never in evaluation.
      ema_decay: evaluate (and return, and checkpoint) an exponential moving average of the
        parameters, ``ema = ema_decay * ema + (1 - ema_decay) * params`` after every step,
        starting from the initial parameters; 0: off, the trained parameters themselves.
        BatchNorm statistics are the trained model's either way.
      tta: test-time augmentation of every evaluation (validation and test): the logits are
        the mean over views of each image: ``"none"`` (the image), ``"flip"`` (the image and
        its mirror) or ``"shifts"`` (the image and its four one-pixel shifts, up, down, left,
        right, filled with black).
      stem_init: ``"model"`` (the model's own init) or ``"whiten"``: before training, the
        stem conv's filters become the principal directions of 3x3 patches of the first
        `jaxconv.train.loop.WHITEN_IMAGES` training images, whitened, each with its negative
        (`jaxconv.blocks.init.whiten_stem`; airbench's patch-PCA init); filters beyond twice
        the patch size keep the model's init. They are trained from there.
      dirac_init: before training, every conv and depthwise conv of the model's blocks with a
        spatial kernel (3x3, 5x5, ...) starts with identity filters: output ``o`` of each
        group passes its group's input ``o mod (outputs per group)`` through where that input
        exists, the other filters keep the model's init (`jaxconv.blocks.init.dirac_blocks`;
        airbench's partial dirac init). 1x1s and the stem keep theirs.
      bn_momentum: the momentum of every BatchNorm's running statistics
        (``stat = m * stat + (1 - m) * batch_stat``); ``None``: each layer's own (0.9 in
        jaxconv's blocks, PyTorch's 0.1).
      bn_lr_scale: BatchNorm scales and biases learn at this multiple of the learning rate
        (airbench trains BatchNorm biases 64x faster); 1: the same rate as every parameter.
      checkpoint_every: also checkpoint every N steps (0: only at epoch ends, where `fit`'s
        ``checkpoint_seconds`` allows, and after the last epoch).
      eval_batch_size: batch size for evaluation.
      test_eval: when the test set is evaluated: ``"epoch"`` (after every epoch, so the
        history holds a test curve) or ``"end"`` (after the last epoch only: the test set is
        seen once, and the time of the other epochs' test passes is saved; the validation
        split, where there is one, is still evaluated after every epoch).
      log_every: steps between training-metric records.
      compile_options: the compile-option set of the training step: ``"auto"`` (the set that
        the committed per-class table, `jaxconv.tuning.compile_table`, gives this machine class:
        backend, CPU class, core count and jaxlib; never a timing), ``"default"`` (XLA's
        defaults) or ``"tuned"`` (`jaxconv.environment.compiler_options`). The two sets
        compute different bits; a run records which it used. See `jaxconv.train.options`.
      compute_dtype: ``"float32"`` or ``"bfloat16"``: the dtype the forward and backward passes
        run in (mixed precision). Parameters, optimizer state and BatchNorm statistics stay
        float32 and the loss is computed in float32 either way.
      policy_version: pins the version of ``impl="auto"``'s formulation policy
        (`jaxconv.functional.policy.CONV_POLICIES`, and from version 4 whether BatchNorm sums
        its channels natively) a study runs under: its ops pick by that
        version's rows under any later jaxconv that holds it (`F.Compilation.policy_version`),
        so a later policy neither changes a pinned study's numbers nor stops its resumes; a
        version this jaxconv does not hold is refused. ``None``: the current version (every
        run records the version it used either way).
      steps_per_call: training steps per compiled call (one ``lax.scan``; 0: the constant
        `jaxconv.train.loop.STEPS_PER_CALL`, 8). Metrics, logs and divergence checks stay per
        step; checkpoints fall between calls.
    """

    epochs: int = 1
    batch_size: int = 128
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    lr_scaling: str = "none"
    reference_batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    validation_fraction: float = 0.0
    split_seed: int | None = 0
    crop_padding: int = 0
    flip: bool = False
    cutout_rate: float = 0.0
    cutout_size: int = 0
    ema_decay: float = 0.0
    tta: str = "none"
    stem_init: str = "model"
    dirac_init: bool = False
    bn_momentum: float | None = None
    bn_lr_scale: float = 1.0
    checkpoint_every: int = 0
    eval_batch_size: int = 500
    log_every: int = 10
    compile_options: str = "auto"
    steps_per_call: int = 0
    compute_dtype: str = "float32"
    policy_version: int | None = None
    test_eval: str = "epoch"

    def __post_init__(self):
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("compile_options", self.compile_options, COMPILE_OPTIONS)
        _choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        _choice("lr_scaling", self.lr_scaling, LR_SCALINGS)
        _choice("tta", self.tta, TTAS)
        _choice("stem_init", self.stem_init, STEM_INITS)
        _choice("test_eval", self.test_eval, TEST_EVALS)
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every",
                     "reference_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"train.{name}: {value!r} must be a positive int")
        for name in ("crop_padding", "checkpoint_every", "steps_per_call", "cutout_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"train.{name}: {value!r} must be an int >= 0")
        for name in ("learning_rate", "weight_decay", "warmup_epochs", "momentum",
                     "bn_lr_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"train.{name}: {value!r} must be a number >= 0")
        for name in ("label_smoothing", "validation_fraction", "ema_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value < 1:
                raise ValueError(f"train.{name}: {value!r} must be a number in [0, 1)")
        _fraction("cutout_rate", self.cutout_rate)
        if self.cutout_rate and not self.cutout_size:
            raise ValueError(f"train.cutout_size: 0 must be >= 1 when train.cutout_rate is "
                             f"{self.cutout_rate}")
        if self.bn_momentum is not None:
            _fraction("bn_momentum", self.bn_momentum)
        if self.policy_version is not None and (isinstance(self.policy_version, bool) or
                                                not isinstance(self.policy_version, int)):
            raise ValueError(f"train.policy_version: {self.policy_version!r} must be an int or "
                             "null (any)")
        if self.split_seed is not None and (isinstance(self.split_seed, bool) or not isinstance(
                self.split_seed, int) or self.split_seed < 0):
            raise ValueError(f"train.split_seed: {self.split_seed!r} must be an int >= 0 or "
                             "null (the training seed)")
        for name in ("nesterov", "flip", "dirac_init"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"train.{name}: {getattr(self, name)!r} must be true or false")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "train") -> Recipe:
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in valid:
                hint = did_you_mean(key, valid)
                raise ValueError(f"{path}: unknown key {key!r}{hint}; valid keys: "
                                 f"{', '.join(valid)}")
        return cls(**data)

    def validation_seed(self, seed: int) -> int:
        """The seed of the validation split of a run with training seed ``seed``."""
        return seed if self.split_seed is None else self.split_seed

    @property
    def peak_learning_rate(self) -> float:
        """The schedule's peak: ``learning_rate``, scaled to the batch size by ``lr_scaling``."""
        if self.lr_scaling == "linear":
            return self.learning_rate * self.batch_size / self.reference_batch_size
        return self.learning_rate

    def schedule_fn(self, steps_per_epoch: int) -> optax.Schedule:
        """The learning rate of each step (from 0) of a run of ``steps_per_epoch`` per epoch."""
        total = self.epochs * steps_per_epoch
        warmup = min(round(self.warmup_epochs * steps_per_epoch), total - 1)
        peak = self.peak_learning_rate
        if self.schedule == "onecycle":
            return optax.cosine_onecycle_schedule(total, peak)
        rest = max(total - warmup, 1)
        main = {"cosine": lambda: optax.cosine_decay_schedule(peak, rest),
                "linear": lambda: optax.linear_schedule(peak, 0.0, rest),
                "constant": lambda: optax.constant_schedule(peak)}[self.schedule]()
        if warmup == 0:
            return main
        return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])

    def optimizer_fn(self, steps_per_epoch: int,
                     norm_mask: Callable[[Any], Any] | None = None) -> optax.GradientTransformation:
        """The optimizer: SGD or AdamW on the schedule; then, where ``bn_lr_scale`` is not 1,
        the updates of the parameters ``norm_mask(params)`` marks (BatchNorm scales and
        biases) multiplied by it; then, where ``ema_decay`` is set, `track_ema` (read the
        average back with `ema_params`)."""
        lr = self.schedule_fn(steps_per_epoch)

        def decay_mask(params):
            return jax.tree.map(lambda p: p.ndim > 1, params)

        if self.optimizer == "adamw":
            tx = optax.adamw(lr, b1=self.momentum, weight_decay=self.weight_decay,
                             mask=decay_mask)
        else:
            tx = optax.chain(optax.add_decayed_weights(self.weight_decay, mask=decay_mask),
                             optax.sgd(lr, momentum=self.momentum or None,
                                       nesterov=self.nesterov))
        if self.bn_lr_scale != 1:
            if norm_mask is None:
                raise ValueError(f"train.bn_lr_scale: {self.bn_lr_scale} needs the model's "
                                 "BatchNorm parameters (norm_mask) to scale")
            # the norm parameters take no weight decay, so scaling their final update scales
            # their learning rate exactly, for SGD (momentum is linear) and AdamW alike
            tx = optax.chain(tx, optax.masked(optax.scale(self.bn_lr_scale), norm_mask))
        if self.ema_decay:
            tx = optax.chain(tx, track_ema(self.ema_decay))
        return tx


class EmaState(NamedTuple):
    """`track_ema`'s state: the average of the parameters."""

    ema: Any


def track_ema(decay: float) -> optax.GradientTransformation:
    """Passes updates through unchanged and keeps ``ema = decay * ema + (1 - decay) * new``
    of the parameters they produce; it must come last in a chain, where the updates are
    final. The average starts at the initial parameters."""

    def init(params):
        return EmaState(jax.tree.map(lambda p: p.copy(), params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("track_ema: update needs params")
        new = optax.apply_updates(params, updates)
        return updates, EmaState(jax.tree.map(lambda e, p: decay * e + (1 - decay) * p,
                                              state.ema, new))

    return optax.GradientTransformation(init, update)


def ema_params(recipe: Recipe, params: Any, opt_state: Any) -> Any:
    """The parameters to evaluate: the average `track_ema` keeps in ``opt_state`` (the last
    link of `Recipe.optimizer_fn`'s chain) when ``recipe.ema_decay`` is set, else
    ``params``."""
    return opt_state[-1].ema if recipe.ema_decay else params


def _fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"train.{name}: {value!r} must be a number in [0, 1]")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"train.{name}: {value!r} is not one of {', '.join(allowed)}")
