#!/usr/bin/env bash
# Accuracy with and without the native extension: one epoch of Study 1's ten designs
# (configs/fashion_mnist/bottlenecks.yaml), seeds 0 and 1, and the quickstart, once with the
# extension (the current policy version, which Study 1's config would otherwise pin to 1, then
# trains the 1x1, depthwise, grouped and dense convs it measured faster there with oneDNN on an
# AVX-512 CPU) and once with JAXCONV_NATIVE=0 (the lax formulations). Each pair of runs
# shares its seed, split and data order; `python experiments/onednn_parity.py` tabulates the
# test accuracies design by design (issue: within 0.5 points). Finished runs are skipped, so
# the same command continues where it stopped; run it from a clean commit.
#
#   nice -n 19 bash experiments/onednn_parity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}
OUT=experiments/results/fashion_mnist/onednn_parity
.venv/bin/python -c 'from jaxconv.tuning import native
if not native.available(): raise SystemExit(f"onednn_parity: {native.reason()}")'
VERSION=$(.venv/bin/python -c 'from jaxconv.functional.policy import POLICY_VERSION; print(POLICY_VERSION)')
for path in native lax; do
  native=$([ "$path" = native ] && echo 1 || echo 0)
  JAXCONV_NATIVE=$native "$JAXCONV" run configs/fashion_mnist/bottlenecks.yaml --quiet \
    --set "name=bottlenecks-$path" --set output_dir=$OUT --set train.epochs=1 \
    --set 'seeds=[0, 1]' --set train.policy_version=$VERSION
  JAXCONV_NATIVE=$native "$JAXCONV" run configs/quickstart.yaml --quiet \
    --set "name=quickstart-$path" --set output_dir=$OUT --set train.policy_version=$VERSION
done
