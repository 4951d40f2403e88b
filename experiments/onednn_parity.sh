#!/usr/bin/env bash
# Accuracy with and without the native extension: one epoch of Study 1's ten designs
# (configs/fashion_mnist/bottlenecks.yaml), seeds 0 and 1, and the quickstart, once with the
# extension under policy version VERSION (the current one by default; Study 1's config would
# otherwise pin version 1; on an AVX-512 CPU, version 3 trains the 1x1, depthwise, grouped and
# dense convs it measured faster there with oneDNN, and version 4 also sums BatchNorm's
# channels natively) into `<study>-native/` (version 3) or `<study>-native-v<VERSION>/`, and
# once with JAXCONV_NATIVE=0 (the lax formulations, which every version from 3 on picks alike,
# so one set of lax runs, pinned to version 3, serves them all) into `<study>-lax/`. Each pair
# of runs shares its seed, split and data order; `python experiments/onednn_parity.py`
# tabulates the test accuracies design by design (issue: within 0.5 points). Finished runs are
# skipped, so the same command continues where it stopped; run it from a clean commit.
#
#   nice -n 19 bash experiments/onednn_parity.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
JAXCONV=${JAXCONV:-.venv/bin/jaxconv}
OUT=experiments/results/fashion_mnist/onednn_parity
.venv/bin/python -c 'from jaxconv.tuning import native
if not native.available(): raise SystemExit(f"onednn_parity: {native.reason()}")'
VERSION=${1:-$(.venv/bin/python -c 'from jaxconv.functional.policy import POLICY_VERSION
print(POLICY_VERSION)')}
if ! [[ $VERSION =~ ^[1-9][0-9]*$ ]] || (( VERSION < 3 )); then
  echo "onednn_parity: VERSION=$VERSION; expected a policy version of 3 or later, written" \
       "as a whole number (the lax runs it is compared with are version 3's)" >&2
  exit 2
fi
# what the version trains natively here: a CPU without AVX-512 would train the lax path twice
.venv/bin/python - "$VERSION" <<'PY'
import sys
import jax.numpy as jnp
from jaxconv.functional import Compilation, policy
from jaxconv.tuning import machine
version = int(sys.argv[1])
if machine.isa() != "avx512":
    raise SystemExit(f"onednn_parity: this CPU is {machine.isa()}; the oneDNN rows of the "
                     "policy hold on AVX-512 CPUs only")
if version >= policy.NATIVE_BATCH_NORM_SINCE and not policy.native_batch_norm(
        Compilation(policy_version=version), jnp.float32):
    raise SystemExit(f"onednn_parity: version {version} would not sum BatchNorm natively here")
PY
for path in native lax; do
  if [[ $path == native ]]; then
    native=1 version=$VERSION name=native
    (( VERSION == 3 )) || name=native-v$VERSION
  else
    native=0 version=3 name=lax
  fi
  JAXCONV_NATIVE=$native "$JAXCONV" run configs/fashion_mnist/bottlenecks.yaml --quiet \
    --set "name=bottlenecks-$name" --set output_dir=$OUT --set train.epochs=1 \
    --set 'seeds=[0, 1]' --set train.policy_version=$version
  JAXCONV_NATIVE=$native "$JAXCONV" run configs/quickstart.yaml --quiet \
    --set "name=quickstart-$name" --set output_dir=$OUT --set train.policy_version=$version
done
