#!/usr/bin/env bash
# The local formulation fuzz behind the CPU policy: 2,000 random configurations with few
# channels (every padding form, rank 1-3, strides, both dilations), then 150 with 6-16x the
# channels (dense convs and the sizes YNNPACK takes), each through every formulation that
# claims it and `auto`, float32 and bfloat16, values and both gradients. Each report lists
# what every formulation and every `auto` choice was fuzzed on, and any failure as a
# reproducer.
#
# Expect about 1.5 h of 2 otherwise idle cores for the 2,000 cases (each of the two children
# used 66 CPU-minutes for about three quarters of them) and a quarter of an hour for the wide
# ones. Run it alone: sharing the cores stretches it past a working session. Stopped
# anywhere, the same command resumes where it was (each run's progress file is removed once
# its report is written).
#
#   nice bash experiments/fuzz_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
JOBS=${JOBS:-$(nproc)}
status=0
"$PYTHON" -m jaxconv.bench.fuzz 2000 --seed 1 --jobs "$JOBS" \
  --output experiments/results/fuzz_cpu.md \
  --progress experiments/results/fuzz_cpu.progress.jsonl || status=1
"$PYTHON" -m jaxconv.bench.fuzz 150 --wide --seed 2 --jobs "$JOBS" \
  --output experiments/results/fuzz_cpu_wide.md \
  --progress experiments/results/fuzz_cpu_wide.progress.jsonl || status=1
exit $status
