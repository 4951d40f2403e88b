"""On-device preprocessing, run inside the jitted steps: normalisation, training-time
augmentation (crop, flip, cutout) and the views of test-time augmentation. Images are uint8
``(N, H, W, C)`` until `normalize`; erased and shifted-in pixels are 0 (black)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxconv.typing import Array


def normalize(images: Array, mean: Array, std: Array) -> Array:
    """uint8 ``(N, H, W, C)`` to float32, per-channel standardised.

    Args:
      images: uint8 images, channels last.
      mean: per-channel mean of the training images, in [0, 1] units, shape ``(C,)``.
      std: per-channel standard deviation, same units and shape.

    Returns:
      float32 images of the same shape, ``(images / 255 - mean) / std``.
    """
    shape = (1,) * (images.ndim - 1) + (-1,)
    return (images.astype(jnp.float32) / 255.0 - mean.reshape(shape)) / std.reshape(shape)


def random_crop(key: Array, images: Array, padding: int) -> Array:
    """Pads each image by ``padding`` zeros and crops it back at a random offset."""
    if padding == 0:
        return images
    n, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0),
                                     (h, w, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def random_flip(key: Array, images: Array) -> Array:
    """Mirrors each image left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1], images)


def cutout(key: Array, images: Array, size: int, rate: float) -> Array:
    """Sets a ``size`` x ``size`` square of each image to 0 with probability ``rate``; the
    square lies wholly inside the image, its corner uniform over the places it fits."""
    n, h, w, _ = images.shape
    if not 1 <= size <= min(h, w):
        raise ValueError(f"cutout_size: {size} must be in 1..{min(h, w)} for {h}x{w} images")
    erase_key, y_key, x_key = jax.random.split(key, 3)
    erase = jax.random.bernoulli(erase_key, rate, (n, 1, 1, 1))
    y = jax.random.randint(y_key, (n, 1, 1, 1), 0, h - size + 1)
    x = jax.random.randint(x_key, (n, 1, 1, 1), 0, w - size + 1)
    rows = jnp.arange(h).reshape(1, h, 1, 1)
    cols = jnp.arange(w).reshape(1, 1, w, 1)
    inside = (rows >= y) & (rows < y + size) & (cols >= x) & (cols < x + size)
    return jnp.where(erase & inside, jnp.zeros((), images.dtype), images)


def augment(key: Array, images: Array, *, crop_padding: int, flip: bool,
            cutout_size: int = 0, cutout_rate: float = 0.0) -> Array:
    """Random crop, then flip, then cutout, as asked; each from its own part of ``key``.

    Args:
      key: the random key of this batch.
      images: a batch ``(N, H, W, C)``.
      crop_padding: pad by this many zero pixels and crop back at a random offset (0: off).
      flip: mirror each image left-right with probability 1/2.
      cutout_size: side of the square `cutout` erases.
      cutout_rate: share of the images cutout erases a square from (0: off).

    Returns:
      The augmented batch, same shape and dtype.
    """
    crop_key, flip_key = jax.random.split(key)
    images = random_crop(crop_key, images, crop_padding)
    images = random_flip(flip_key, images) if flip else images
    if cutout_rate:
        images = cutout(jax.random.fold_in(key, 2), images, cutout_size, cutout_rate)
    return images


def shift(images: Array, dy: int, dx: int) -> Array:
    """Each image moved ``dy`` pixels down and ``dx`` right (negative: up, left), the pixels
    moved in set to 0."""
    if dy == dx == 0:
        return images
    n, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (abs(dy),) * 2, (abs(dx),) * 2, (0, 0)))
    return jax.lax.dynamic_slice(padded, (0, abs(dy) - dy, abs(dx) - dx, 0), (n, h, w, c))


#: The views of each test-time augmentation: (mirrored, rows down, columns right) per view.
TTA_VIEWS = {
    "none": ((False, 0, 0),),
    "flip": ((False, 0, 0), (True, 0, 0)),
    "shifts": ((False, 0, 0), (False, -1, 0), (False, 1, 0), (False, 0, -1), (False, 0, 1)),
}


def tta_views(images: Array, tta: str) -> list[Array]:
    """The views of ``images`` that test-time augmentation ``tta`` (a `TTA_VIEWS` key) averages
    the logits over."""
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta: {tta!r} is not one of {', '.join(TTA_VIEWS)}")
    return [shift(images[:, :, ::-1] if mirrored else images, dy, dx)
            for mirrored, dy, dx in TTA_VIEWS[tta]]
