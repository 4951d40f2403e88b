"""Prints the README's "Blocks" table: every family's 0.3M preset on 28x28x1, 10 classes.

Run: ``.venv/bin/python experiments/blocks_table.py``.
"""

from __future__ import annotations

from flax import nnx

from jaxconv import analysis, blocks, models

PAPERS = {
    "basic": "He et al. 2015, arXiv:1512.03385",
    "bottleneck": "He et al. 2015, arXiv:1512.03385",
    "resnext": "Xie et al. 2016, arXiv:1611.05431",
    "separable": "Howard et al. 2017, arXiv:1704.04861",
    "inverted_residual": "Sandler et al. 2018, arXiv:1801.04381",
    "fire": "Iandola et al. 2016, arXiv:1602.07360",
    "shuffle": "Zhang et al. 2017, arXiv:1707.01083",
    "convnext": "Liu et al. 2022, arXiv:2201.03545",
    "inception": "Szegedy et al. 2014, arXiv:1409.4842",
    "nin": "Lin et al. 2013, arXiv:1312.4400",
}


def main() -> None:
    print("| block | paper | preset | params | MACs | XLA FLOPs |")
    print("|---|---|---|---:|---:|---:|")
    for name in blocks.names():
        preset = f"{name}-0.3m"
        model = nnx.eval_shape(lambda p=preset: models.create(p, num_classes=10, in_features=1,
                                                              rngs=nnx.Rngs(0)))
        s = analysis.summary(model, (28, 28, 1))
        print(f"| `{name}` | {PAPERS[name]} | `{preset}` | {s.params:,} | {s.macs / 1e6:.1f}M | "
              f"{s.xla_flops / 1e6:.1f}M |")


if __name__ == "__main__":
    main()
