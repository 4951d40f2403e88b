#!/usr/bin/env bash
# The recipe search behind the Fashion-MNIST studies: each trial changes one thing in
# configs/fashion_mnist/recipe.yaml (the baseline) and trains into
# experiments/results/fashion_mnist/recipe/<trial>/. Judged on validation accuracy only;
# `python experiments/recipe_table.py` tabulates the finished trials. Finished trials are
# skipped, so the script continues where it stopped.
#
#   nice -n 19 bash experiments/recipe_search.sh [TRIAL ...]
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}

declare -A TRIALS=(
  [baseline]=""
  [smoothing-0.2]="train.label_smoothing=0.2"
  [no-flip]="train.flip=false"
  [no-translate]="train.crop_padding=0"
  [no-augmentation]="train.flip=false train.crop_padding=0"
  [linear-decay]="train.schedule=linear"
  [batch-256]="train.batch_size=256 train.learning_rate=0.2 train.warmup_epochs=1"
  [lr-0.05]="train.learning_rate=0.05"
  [wd-0.0001]="train.weight_decay=0.0001"
  [zero-init-off]="variants[0].model.zero_init_residual=false"
)
ORDER=(baseline smoothing-0.2 no-flip no-translate no-augmentation linear-decay batch-256 lr-0.05
       wd-0.0001 zero-init-off)

for trial in "${@:-${ORDER[@]}}"; do
  if [[ -z ${TRIALS[$trial]+set} ]]; then
    echo "unknown trial $trial; trials: ${ORDER[*]}" >&2
    exit 2
  fi
  sets=(--set "name=recipe-$trial")
  for kv in ${TRIALS[$trial]}; do sets+=(--set "$kv"); done
  "$JAXCONV" run configs/fashion_mnist/recipe.yaml --quiet "${sets[@]}"
done
