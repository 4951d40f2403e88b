#!/usr/bin/env bash
# The two Fashion-MNIST studies, seed 0 of every design first so that a partial run already
# compares all of them, then the remaining seeds, then the long run of the leading design.
# Finished runs are skipped, so the same command continues where an earlier one stopped (on
# this machine or, through the committed result.json files, on another). After each pass of
# Study 2 the retention analysis measures the runs whose checkpoints are on this machine
# (checkpoints stay out of git, so no other machine can) and keeps the rows measured earlier.
#
#   nohup nice -n 19 bash experiments/fashion_mnist_studies.sh > studies.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}
PYTHON=${PYTHON:-.venv/bin/python}
for seeds in "[0]" "[0, 1, 2]"; do
  "$JAXCONV" run configs/fashion_mnist/width_sweep.yaml --quiet --set "seeds=$seeds"
  "$PYTHON" experiments/retention_sweep.py \
    || echo "retention_sweep.py failed; the studies go on" >&2
  "$JAXCONV" run configs/fashion_mnist/bottlenecks.yaml --quiet --set "seeds=$seeds"
done
"$JAXCONV" run configs/fashion_mnist/long_run.yaml --quiet
