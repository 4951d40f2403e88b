"""The committed table that ``Recipe.compile_options="auto"`` resolves from, one row per machine
class.

The two option sets (`jaxconv.train.options.option_sets`) compute different bits: XLA's own
convolutions round differently from YNNPACK's, and on an AVX2 CPU the ``auto`` policy traces
dense 2-D convs as other formulations under each (``row_taps`` with XLA's defaults,
``canonical`` with YNNPACK's convolutions off). So the pick is a fixed function of the machine
class, read here, never a timing taken while a run starts: the same config and seed give the
same numbers on every machine of a class. Each row names the measurement it comes from, in a
committed results file; a class with no row gets XLA's defaults. Add a row only with a
committed measurement behind it.

What this module does not hold: the option sets themselves (`jaxconv.environment`), the
machine probing (`jaxconv.tuning.machine`), the resolution (`jaxconv.train.options`).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    """One machine class and the option set ``"auto"`` takes on it.

    Attributes:
      backend: ``jax.default_backend()``: ``"cpu"``, ``"gpu"``, ``"tpu"``.
      isa: the CPU class (`jaxconv.tuning.machine.isa`): ``"avx512"``, ``"avx2"``, ``"other"``.
      jaxlib: jaxlib's ``major.minor``.
      option_set: ``"default"`` or ``"tuned"``.
      reason: the measurement behind the row, with the file it is committed in.
      cores: the core count the row holds for; ``None``: any (the measurement's count is in
        ``reason``).
    """

    backend: str
    isa: str
    jaxlib: str
    option_set: str
    reason: str
    cores: int | None = None

    def matches(self, backend: str, isa: str, jaxlib: str, cores: int) -> bool:
        return (self.backend, self.isa, self.jaxlib) == (backend, isa, jaxlib) and \
            self.cores in (None, cores)


ROWS: tuple[Row, ...] = (
    Row("cpu", "avx2", "0.10", "tuned",
        "experiments/results/fit_cpu_avx2.md (AMD EPYC, AVX2, 2 cores): the ResNet bench net's "
        "training call 637 ms tuned vs 803 ms default, MobileNetV2's 890 vs 845 ms; a dense 3x3 "
        "conv's forward and backward 127 ms with XLA's own conv vs 201 ms as row_taps, the "
        "default's formulation; measured on 2 cores, taken for any core count"),
    Row("cpu", "avx512", "0.10", "tuned",
        "experiments/results/bench_ops_cpu.md (AVX-512, 2 cores): forward and backward with the "
        "option 3x3 64->64 102.5 -> 57.9 ms, grouped split g=4 28.0 -> 17.5 ms, 3x3 stride 2 "
        "51.3 -> 36.5 ms; whole training steps 381 -> 396 and 320 -> 332 images/s; measured on "
        "2 cores, taken for any core count"),
)

#: The reason given for a class without a row.
UNMEASURED = "no committed measurement for this machine class: XLA's defaults"


def lookup(backend: str, isa: str, jaxlib: str, cores: int) -> Row | None:
    """The first row for this machine class, or ``None``."""
    return next((row for row in ROWS if row.matches(backend, isa, jaxlib, cores)), None)
