"""How channels mix, shown and checked: three conv layers, their parameters and equivalences.

Run: ``make demo`` (or ``python experiments/demo.py`` in the project's environment).
Prints each layer's kernel shape and parameter count, verifies numerically what each layer
computes, and times a 1x1 conv as `lax.conv_general_dilated` against its matmul form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxconv as jc
from jaxconv import analysis
from jaxconv import functional as F
from jaxconv.tuning.timing import median_ms


def max_error(a: jax.Array, b: jax.Array) -> float:
    return float(jnp.max(jnp.abs(a - b)))


def conv_3_to_32(image: jax.Array) -> None:
    layer = jc.nnx.Conv(3, 32, (3, 3), rngs=nnx.Rngs(0))
    kernel, bias = layer.kernel[...], layer.bias[...]
    y = layer(image)
    per_channel = sum(F.conv(image[..., c:c + 1], kernel[:, :, c:c + 1, :], impl="xla")
                      for c in range(3))
    print(f"Conv 3->32, 3x3, on {image.shape[1:]}: kernel {kernel.shape} = 32 filters of "
          f"3x3x3 = 96 2-D slices; {kernel.size} weights + {bias.size} biases = "
          f"{analysis.n_params(layer)} parameters; output {y.shape[1:]}")
    print(f"  output == sum over the 3 input channels of single-channel convs: max |diff| "
          f"{max_error(y, per_channel + bias):.1e}")


def conv3d_on_depth_one(image: jax.Array) -> None:
    layer = jc.nnx.Conv(3, 32, (3, 3, 3), rngs=nnx.Rngs(1))
    volume = image[:, None]
    y = layer(volume)
    middle = F.conv(image, layer.kernel[...][1], layer.bias[...])
    print(f"Conv3D 3->32, 3x3x3, on depth 1 {volume.shape[1:]}: kernel {layer.kernel.shape}, "
          f"{analysis.n_params(layer)} parameters; output {y.shape[1:]}")
    print(f"  output == 2-D conv with the kernel's middle depth slice: max |diff| "
          f"{max_error(y[:, 0], middle):.1e} (SAME pads depth 1 with zeros; the other two "
          "slices only ever see padding)")


def pointwise_32_to_8() -> None:
    x = jax.random.normal(jax.random.key(2), (2, 16, 16, 32))
    layer = jc.nnx.Conv(32, 8, (1, 1), rngs=nnx.Rngs(2))
    w, b = layer.kernel[...].reshape(32, 8), layer.bias[...]
    y = layer(x)
    print(f"1x1 Conv 32->8: kernel {layer.kernel.shape}, {analysis.n_params(layer)} parameters; "
          "each output pixel is W.T @ x[h, w] + b")
    print(f"  at pixel (5, 11): max |diff| {max_error(y[0, 5, 11], w.T @ x[0, 5, 11] + b):.1e}; "
          f"whole map vs a Dense layer per pixel: {max_error(y, x @ w + b):.1e}")


def time_pointwise() -> None:
    x = jax.random.normal(jax.random.key(3), (64, 32, 32, 128))
    k = jax.random.normal(jax.random.key(4), (1, 1, 128, 128)) * 0.1
    by_impl = {impl: jax.jit(lambda x, k, impl=impl: F.conv(x, k, impl=impl))
               for impl in ("xla", "matmul")}
    ms = {impl: [] for impl in by_impl}
    for _ in range(3):                                   # alternate the contenders
        for impl, fn in by_impl.items():
            ms[impl].append(median_ms(fn, (x, k), repeats=10))
    xla, matmul = (float(np.median(ms[i])) for i in ("xla", "matmul"))
    print(f"1x1 conv 128->128 on {x.shape} (forward, {jax.default_backend()}): "
          f"lax.conv_general_dilated {xla:.1f} ms, matmul form {matmul:.1f} ms "
          f"-> {xla / matmul:.2f}x")


def main() -> None:
    image = jax.random.normal(jax.random.key(0), (1, 64, 64, 3))
    conv_3_to_32(image)
    conv3d_on_depth_one(image)
    pointwise_32_to_8()
    time_pointwise()
    print(F.plan((64, 32, 32, 128), (1, 1, 128, 128)))


if __name__ == "__main__":
    main()
