"""On-device preprocessing, run inside the jitted step: normalisation and augmentation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxconv.typing import Array


def normalize(images: Array, mean: Array, std: Array) -> Array:
    """uint8 ``(N, H, W, C)`` to float32, per-channel standardised."""
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


def augment(key: Array, images: Array, *, crop_padding: int, flip: bool) -> Array:
    crop_key, flip_key = jax.random.split(key)
    images = random_crop(crop_key, images, crop_padding)
    return random_flip(flip_key, images) if flip else images
