"""Fuzzing every conv formulation: random configurations, values and both gradients.

Each case is a random convolution (rank 1-3; dense, 1x1, depthwise, grouped or transposed;
strides, both dilations, every padding form and fill; odd sizes; batch 1-3). Every formulation
that claims the case (`jaxconv.functional.plan` accepts it with that ``impl``), and ``auto``,
computes the output and the input and kernel gradients of a random cotangent under ``jax.jit``;
they must match lax's own convolution at ``precision=HIGHEST`` (``impl="xla"``, differentiated
by JAX itself) and, where PyTorch is installed, PyTorch autograd in float64, within a tolerance
per dtype (float32, and bfloat16 against the result for the same bfloat16-rounded operands).

Cases run in child processes, so a formulation that aborts the process (an XLA check failure)
becomes a failure that names the case, and the run goes on in a fresh child. Every failure
comes with a ready-to-paste Python reproducer.

    python -m jaxconv.bench.fuzz 2000 --seed 0 --jobs 2 --output fuzz-failures.md \
        --progress fuzz.progress.jsonl     # run again after a kill: it resumes
    jaxconv bench --fuzz 2000 --fuzz-wide

The package: `cases` (the random configurations and their claimants), `check` (one check, in a
child), `runner` (children, timeouts, parallel runs, progress), `report` (the markdown) and
`command` (the command line). The names below are the public ones, importable from here.
"""

from jaxconv.bench.fuzz.cases import DTYPES, PADDINGS, Case, cases, claimants, random_case
from jaxconv.bench.fuzz.check import TOLERANCE
from jaxconv.bench.fuzz.command import main
from jaxconv.bench.fuzz.report import claims, coverage, padding_form, report, row_shapes
from jaxconv.bench.fuzz.runner import CASE_TIMEOUT, WORKER, Failure, Progress, cores, run, settings

__all__ = ["CASE_TIMEOUT", "DTYPES", "PADDINGS", "TOLERANCE", "WORKER", "Case", "Failure",
           "Progress", "cases", "claimants", "claims", "cores", "coverage", "main",
           "padding_form", "random_case", "report", "row_shapes", "run", "settings"]
