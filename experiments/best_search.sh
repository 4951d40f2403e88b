#!/usr/bin/env bash
# The best search (configs/fashion_mnist/best_search.yaml): each row one design at the length
# that fits about 50 minutes per seed on 2 CPU cores, trained into
# experiments/results/fashion_mnist/best_search/best-search-e<N>[-<trial>]/. Seed 0 of every
# row first, then seed 1 of each, then seed 2, so a search stopped part way still compares
# every row. Finished runs are skipped, so the script continues where it stopped. Run it from
# a clean commit (a study folder refuses a tree with uncommitted changes):
#
#   nice -n 19 bash experiments/best_search.sh [ROW ...]
#
# Rows, in the order they run: ir-e32 basic-e80 separable-e64 ir-e32-cutout.
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}
CONFIG=configs/fashion_mnist/best_search.yaml
SEEDS=(0 1 2)

# row -> "variant|epochs|trial|settings" (the trial names the folder's suffix; settings are
# space-separated KEY=VALUE overrides of the recipe only: a row that changed a model key would
# escape the test that holds the config's nets to best.yaml's 0.3M cap)
declare -A ROWS=(
  [ir-e32]="inverted_residual|32||"
  [basic-e80]="basic|80||"
  [separable-e64]="separable|64||"
  [ir-e32-cutout]="inverted_residual|32|cutout|train.cutout_rate=0.5 train.cutout_size=8"
)
ORDER=(ir-e32 basic-e80 separable-e64 ir-e32-cutout)

chosen=("${@:-${ORDER[@]}}")
for row in "${chosen[@]}"; do
  if [[ -z $row || -z ${ROWS[$row]+set} ]]; then
    echo "unknown row '$row'; rows: ${ORDER[*]}" >&2
    exit 2
  fi
done
for seed in "${SEEDS[@]}"; do
  for row in "${chosen[@]}"; do
    IFS='|' read -r variant epochs trial sets <<< "${ROWS[$row]}"
    args=(--variant "$variant" --seed "$seed" --set "name=best-search-e$epochs${trial:+-$trial}"
          --set "train.epochs=$epochs")
    for kv in $sets; do args+=(--set "$kv"); done
    "$JAXCONV" run "$CONFIG" --quiet "${args[@]}"
  done
done
