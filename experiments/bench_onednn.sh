#!/usr/bin/env bash
# The formulation policy's speed where the native extension runs, one sequence: the op table
# (forward + both gradients against PyTorch's best layout), training steps and whole fit epochs
# with the extension, the same without it (JAXCONV_NATIVE=0), and training steps with oneDNN
# on one OpenMP thread (the thread-count check). The default environment a library user gets
# (`--settings none`). Run it on a quiet machine (nothing else on the cores); the results file
# is written from its output by hand, with the CPU it ran on.
#
#   bash experiments/bench_onednn.sh > /tmp/bench_onednn.txt
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}
.venv/bin/python -c 'from jaxconv.tuning import native
if not native.available(): raise SystemExit(f"bench_onednn: {native.reason()}")'
echo "# ops"
"$JAXCONV" bench --settings none --repeats 5 --no-steps
echo "# steps and fit epochs, with the extension"
"$JAXCONV" bench --settings none --fit --no-ops
echo "# steps and fit epochs, without it"
JAXCONV_NATIVE=0 "$JAXCONV" bench --settings none --fit --no-ops
echo "# steps, oneDNN on one thread"
OMP_NUM_THREADS=1 "$JAXCONV" bench --settings none --no-ops
