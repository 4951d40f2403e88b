"""Each block against a plain re-statement of its paper's computation.

Every parameter and BatchNorm statistic is drawn at random, the block runs in eval mode, and the
re-statement recomputes it from those arrays with `jax.lax.conv_general_dilated`, NumPy-style
norms and pools written here: nothing from `jaxconv` but the block under test. One small
configuration per block, with a stride where the block has one, so the wiring (order of ops,
where the stride sits, activations, shortcut, concatenation order) is what is checked.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

import jaxconv.blocks as B

X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 16)), jnp.float32)
HI = lax.Precision.HIGHEST


def randomised(name, cin, cout, stride, **options):
    block = B.create(name, cin, cout, strides=stride, rngs=nnx.Rngs(0), **options)
    rng = np.random.default_rng(1)
    for path, value in nnx.to_flat_state(nnx.state(block, (nnx.Param, nnx.BatchStat))):
        shape = value[...].shape
        if path[-1] == "var":
            drawn = rng.uniform(0.5, 2.0, shape)
        elif path[-1] in ("scale", "gamma"):
            drawn = rng.uniform(0.5, 1.5, shape)
        else:
            drawn = rng.standard_normal(shape) * 0.3
        owner = block
        for key in path[:-1]:
            owner = owner[key] if isinstance(key, int) else getattr(owner, key)
        getattr(owner, path[-1])[...] = jnp.asarray(drawn, jnp.float32)
    block.eval()
    return block


def a(param):
    return np.asarray(param[...], np.float64)


def conv(x, kernel, stride=1, groups=1, padding="SAME", bias=None):
    k = a(kernel)
    k = k[None, None] if k.ndim == 2 else k
    y = lax.conv_general_dilated(jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32),
                                 (stride, stride), padding, feature_group_count=groups,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HI)
    y = np.asarray(y, np.float64)
    return y if bias is None else y + a(bias)


def bn(x, norm):
    return (x - a(norm.mean)) / np.sqrt(a(norm.var) + norm.epsilon) * a(norm.scale) \
        + a(norm.bias)


def ln(x, norm):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * a(norm.scale) + a(norm.bias)


def cbr(x, part, stride=1, groups=1, act=True):
    """conv → BN → ReLU of a `ConvNorm`-built part, read from its arrays."""
    y = bn(conv(x, part.conv.kernel, stride, groups), part.norm)
    return relu(y) if act else y


def relu(x):
    return np.maximum(x, 0)


def relu6(x):
    return np.clip(x, 0, 6)


def pool(x, kind, stride):
    """3x3 window, TensorFlow SAME padding; the average divides by 9 (padded zeros count)."""
    n, h, w, c = x.shape
    oh, ow = -(-h // stride), -(-w // stride)
    ph, pw = max((oh - 1) * stride + 3 - h, 0), max((ow - 1) * stride + 3 - w, 0)
    fill = -np.inf if kind == "max" else 0.0
    padded = np.full((n, h + ph, w + pw, c), fill)
    padded[:, ph // 2:ph // 2 + h, pw // 2:pw // 2 + w] = x
    windows = np.stack([padded[:, i:i + (oh - 1) * stride + 1:stride,
                               j:j + (ow - 1) * stride + 1:stride]
                        for i in range(3) for j in range(3)])
    return windows.max(0) if kind == "max" else windows.sum(0) / 9


def shuffle(x, groups):
    n, h, w, c = x.shape
    return x.reshape(n, h, w, groups, c // groups).swapaxes(3, 4).reshape(n, h, w, c)


def resnet_shortcut(b, x, stride, cout):
    """Identity when the shapes agree, else a strided 1x1 conv + BN (He et al.'s option B)."""
    project = stride != 1 or x.shape[-1] != cout
    assert (b.shortcut is not None) == project
    return cbr(x, b.shortcut, stride, act=False) if project else x


def basic(b, x, stride, cout):
    y = bn(conv(relu(bn(conv(x, b.conv1.conv.kernel, stride), b.conv1.norm)),
                b.conv2.conv.kernel), b.conv2.norm)
    return relu(y + resnet_shortcut(b, x, stride, cout))


def bottleneck(b, x, stride, cout, groups=1):
    y = cbr(x, b.reduce)
    y = cbr(y, b.conv, stride, groups)          # the 3x3 carries the stride (v1.5)
    y = cbr(y, b.expand, act=False)
    return relu(y + resnet_shortcut(b, x, stride, cout))


def separable(b, x, stride):
    c = x.shape[-1]
    y = relu(bn(conv(x, b.depthwise.conv.kernel, stride, groups=c), b.depthwise.norm))
    return cbr(y, b.pointwise)


def inverted_residual(b, x, stride, cout):
    y = relu6(cbr(x, b.expand, act=False))
    y = relu6(bn(conv(y, b.depthwise.conv.kernel, stride, groups=y.shape[-1]),
                 b.depthwise.norm))
    y = cbr(y, b.project, act=False)            # linear bottleneck: no activation
    return x + y if stride == 1 and x.shape[-1] == cout else y


def shuffle_unit(b, x, stride, groups):
    first = groups if x.shape[-1] % groups == 0 else 1
    y = shuffle(cbr(x, b.reduce, groups=first), groups)
    y = bn(conv(y, b.depthwise.conv.kernel, stride, groups=y.shape[-1]), b.depthwise.norm)
    y = cbr(y, b.expand, groups=groups, act=False)
    if stride != 1:
        return relu(np.concatenate([pool(x, "avg", stride), y], -1))
    project = x.shape[-1] != y.shape[-1]
    assert (b.shortcut is not None) == project
    return relu(y + (cbr(x, b.shortcut, act=False) if project else x))


def fire(b, x, stride, cout):
    if stride != 1:
        x = pool(x, "max", stride)
    s = cbr(x, b.squeeze)
    y = relu(np.concatenate([cbr(s, b.expand1, act=False), cbr(s, b.expand3, act=False)], -1))
    return x + y if x.shape[-1] == cout else y


def inception(b, x, stride):
    if stride != 1:
        x = pool(x, "max", stride)
    return np.concatenate([cbr(x, b.branch1), cbr(cbr(x, b.reduce3), b.branch3),
                           cbr(cbr(x, b.reduce5), b.branch5),
                           cbr(pool(x, "max", 1), b.branch_pool)], -1)


def nin(b, x, stride):
    return cbr(cbr(cbr(x, b.conv, stride), b.mlp1), b.mlp2)


def convnext(b, x, stride, cout):
    from scipy.special import erf

    assert (b.down is not None) == (stride != 1 or x.shape[-1] != cout)
    if b.down is not None:
        x = conv(ln(x, b.down_norm), b.down.kernel, stride, padding="VALID", bias=b.down.bias)
    c = x.shape[-1]
    y = ln(conv(x, b.depthwise.kernel, groups=c, bias=b.depthwise.bias), b.norm)
    h = conv(y, b.expand.kernel, bias=b.expand.bias)
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))                   # exact GELU
    return x + a(b.gamma) * conv(h, b.project.kernel, bias=b.project.bias)


CASES = [
    ("basic", 16, 16, 1, {}, basic),
    ("basic", 16, 32, 2, {}, basic),
    ("bottleneck", 16, 16, 1, {}, bottleneck),
    ("bottleneck", 16, 32, 2, {}, bottleneck),
    ("resnext", 16, 32, 2, {"cardinality": 4},
     lambda b, x, s, c: bottleneck(b, x, s, c, groups=4)),
    ("separable", 16, 24, 2, {}, lambda b, x, s, c: separable(b, x, s)),
    ("inverted_residual", 16, 16, 1, {"expansion": 2}, inverted_residual),
    ("inverted_residual", 16, 24, 2, {"expansion": 2}, inverted_residual),
    ("shuffle", 16, 16, 1, {"groups": 2}, lambda b, x, s, c: shuffle_unit(b, x, s, 2)),
    ("shuffle", 16, 24, 1, {"groups": 2}, lambda b, x, s, c: shuffle_unit(b, x, s, 2)),
    ("shuffle", 16, 32, 2, {"groups": 2}, lambda b, x, s, c: shuffle_unit(b, x, s, 2)),
    ("fire", 16, 16, 1, {}, fire),
    ("fire", 16, 32, 2, {}, fire),
    ("inception", 16, 32, 2, {}, lambda b, x, s, c: inception(b, x, s)),
    ("nin", 16, 24, 2, {}, lambda b, x, s, c: nin(b, x, s)),
    ("convnext", 16, 16, 1, {"layer_scale": 1.0}, convnext),
    ("convnext", 16, 32, 2, {"layer_scale": 1.0}, convnext),
]


@pytest.mark.parametrize("name,cin,cout,stride,options,restated", CASES,
                         ids=[f"{c[0]}-{c[1]}to{c[2]}-s{c[3]}" for c in CASES])
def test_block_computes_its_papers_formula(name, cin, cout, stride, options, restated):
    block = randomised(name, cin, cout, stride, **options)
    expected = restated(block, np.asarray(X, np.float64), stride, cout)
    got = np.asarray(jax.jit(lambda x: block(x))(X), np.float64)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
