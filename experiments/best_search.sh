#!/usr/bin/env bash
# The best search (configs/fashion_mnist/best_search.yaml): each row one design at the length
# that fits about 50 minutes per seed on 2 CPU cores, seeds 0-2, trained into
# experiments/results/fashion_mnist/best_search/best-search-e<N>[-<trial>]/. Finished runs
# are skipped, so the script continues where it stopped. Run it from a clean commit (a study
# folder refuses a tree with uncommitted changes):
#
#   nice -n 19 bash experiments/best_search.sh [ROW ...]
#
# Rows, in the order they run: ir-e36 basic-e96 separable-e64 ir-e36-cutout.
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}
CONFIG=configs/fashion_mnist/best_search.yaml

declare -A ROWS=(
  [ir-e36]="inverted_residual 36"
  [basic-e96]="basic 96"
  [separable-e64]="separable 64"
  [ir-e36-cutout]="inverted_residual 36 cutout train.cutout_rate=0.5 train.cutout_size=8"
)
ORDER=(ir-e36 basic-e96 separable-e64 ir-e36-cutout)

for row in "${@:-${ORDER[@]}}"; do
  if [[ -z ${ROWS[$row]+set} ]]; then
    echo "unknown row $row; rows: ${ORDER[*]}" >&2
    exit 2
  fi
  read -r variant epochs trial sets <<< "${ROWS[$row]}"
  name="best-search-e$epochs${trial:+-$trial}"
  args=(--variant "$variant" --set "name=$name" --set "train.epochs=$epochs")
  for kv in $sets; do args+=(--set "$kv"); done
  "$JAXCONV" run "$CONFIG" --quiet "${args[@]}"
done
