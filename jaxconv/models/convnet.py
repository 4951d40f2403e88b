"""`ConvNet`: a classifier assembled from a `ModelSpec`."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxconv import functional
from jaxconv import nnx as jnn
from jaxconv.blocks import _parts as parts
from jaxconv.blocks import init as block_init
from jaxconv.blocks import registry
from jaxconv.models.spec import ModelSpec
from jaxconv.typing import Array


def _stage_inputs(spec: ModelSpec):
    """(block, in_features, out_features, strides, options) for every block, in order; with
    ``spec.drop_path``, block ``i`` of ``n`` gets the rate ``drop_path * i / (n - 1)``."""
    total = sum(stage.depth for stage in spec.stages)
    features, index = spec.stem_width, 0
    for stage in spec.stages:
        for i in range(stage.depth):
            options = dict(stage.options)
            if spec.drop_path:
                options["drop_path"] = spec.drop_path * index / max(total - 1, 1)
            yield stage.block, features, stage.width, stage.strides if i == 0 else 1, options
            features, index = stage.width, index + 1


class ConvNet(nnx.Module):
    """Stem (3x3 conv + BN + ReLU) → stages of blocks → global average pool → linear.

    Parameters start as ``spec.init`` says: by default each block family's reference scheme
    (`jaxconv.blocks.init`).

    Args:
      spec: the architecture.
      num_classes: classifier outputs.
      in_features: input image channels.
      rngs: ``nnx.Rngs`` with ``params`` (and ``dropout`` when ``spec.dropout > 0``).
      dtype: compute dtype of every layer (``None``: float32); e.g. ``jnp.bfloat16`` with
        float32 parameters is mixed precision. The logits come out in this dtype.
      param_dtype: storage dtype of the parameters (``None``: float32). BatchNorm running
        statistics stay float32.

    >>> import jax.numpy as jnp
    >>> spec = ModelSpec.from_dict({"stages": [{"block": "basic", "width": 16}]})
    >>> ConvNet(spec, num_classes=10, in_features=1, rngs=nnx.Rngs(0))(
    ...     jnp.ones((2, 28, 28, 1))).shape
    (2, 10)
    """

    def __init__(self, spec: ModelSpec, *, num_classes: int, in_features: int,
                 rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None):
        parts.check_positive("ConvNet", num_classes=num_classes, in_features=in_features)
        # Parameters and dropout masks draw from separate streams, so switching dropout or
        # drop-path on or off leaves every initial weight as it was.
        rngs = nnx.Rngs(params=rngs.params(), dropout=rngs.dropout())
        self.spec = spec
        self.stem = parts.conv_norm(in_features, spec.stem_width, 3, spec.stem_strides, rngs=rngs)
        self.blocks = nnx.List([
            registry.create(name, cin, cout, strides=s, rngs=rngs, **options)
            for name, cin, cout, s, options in _stage_inputs(spec)])
        width = spec.stages[-1].width
        self.dropout = nnx.Dropout(spec.dropout, rngs=rngs) if spec.dropout else None
        self.head = nnx.Linear(width, num_classes, rngs=rngs)
        if spec.init == "reference":
            self._reference_init(rngs.params())
        jnn.set_dtypes(self, dtype, param_dtype)

    def _reference_init(self, key: jax.Array) -> None:
        """Each block by its family's scheme; the stem and classifier by the first stage's."""
        first = block_init.scheme(self.spec.stages[0].block)
        stem, head, *keys = jax.random.split(key, 2 + len(self.blocks))
        block_init.init_convs(self.stem, first.stem or first.conv, stem)
        block_init.init_classifier(self.head, first, head)
        names = [name for name, *_ in _stage_inputs(self.spec)]
        for block, name, k in zip(self.blocks, names, keys):
            block_init.init_block(block, name, k,
                                  zero_init_residual=self.spec.zero_init_residual)

    @staticmethod
    def param_count(spec: ModelSpec, *, num_classes: int, in_features: int) -> int:
        """Parameters from the blocks' documented formulas (no model is built)."""
        stem = parts.conv_norm_params(in_features, spec.stem_width, 3)
        blocks = sum(registry.param_count(name, cin, cout, strides=s, **options)
                     for name, cin, cout, s, options in _stage_inputs(spec))
        return stem + blocks + spec.stages[-1].width * num_classes + num_classes

    def features(self, x: Array) -> Array:
        """Pooled features before the classifier, ``(N, width)``."""
        y = self.stem(x)
        for block in self.blocks:
            y = block(y)
        return functional.global_avg_pool(y)

    def __call__(self, x: Array) -> Array:
        y = self.features(x)
        if self.dropout is not None:
            y = self.dropout(y)
        return self.head(y)
