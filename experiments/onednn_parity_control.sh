#!/usr/bin/env bash
# The control of `experiments/onednn_parity.sh`: how far apart two runs land after one epoch when
# nothing but their rounding differs. The lax path trains Study 1's ten designs (seeds 0 and 1)
# and the quickstart again with neither jaxconv's recommended XLA flags (JAXCONV_TUNE=0) nor its
# compile options (`train.compile_options=default`): XLA then hands its matrix products to
# YNNPACK instead of Eigen, which rounds differently (either change alone left every bit of a
# ShuffleNet run as it was), into `<study>-control/` beside the parity runs;
# `python experiments/onednn_parity.py` then sets the lax-versus-lax differences beside the
# native-versus-lax ones. Finished runs are
# skipped; run it from a clean commit. Arguments, when given, are passed on to `jaxconv run`
# (e.g. `--variant shuffle --seed 1` for one row).
#
#   nice -n 19 bash experiments/onednn_parity_control.sh [ARGS ...]
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}
OUT=experiments/results/fashion_mnist/onednn_parity
# The parity runs' version: with the extension off, versions 3 and 4 pick the same formulations.
VERSION=3
JAXCONV_NATIVE=0 JAXCONV_TUNE=0 "$JAXCONV" run configs/fashion_mnist/bottlenecks.yaml --quiet \
  --set name=bottlenecks-control --set output_dir=$OUT --set train.epochs=1 \
  --set 'seeds=[0, 1]' --set train.policy_version=$VERSION --set train.compile_options=default "$@"
if [[ $# -eq 0 ]]; then
  JAXCONV_NATIVE=0 JAXCONV_TUNE=0 "$JAXCONV" run configs/quickstart.yaml --quiet \
    --set name=quickstart-control --set output_dir=$OUT --set train.policy_version=$VERSION \
    --set train.compile_options=default
fi
