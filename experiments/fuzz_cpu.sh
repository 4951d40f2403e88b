#!/usr/bin/env bash
# The local formulation fuzz behind the CPU policy: 2,000 random configurations with few
# channels (every padding form, rank 1-3, strides, both dilations), then 150 with 6-16x the
# channels (dense convs and the sizes YNNPACK takes), each through every formulation that
# claims it and `auto`, float32 and bfloat16, values and both gradients. Each report lists
# what every formulation and every `auto` choice was fuzzed on, and any failure as a
# reproducer.
#
# It took 91 min of 2 otherwise idle AVX2 cores for the 2,000 cases and 12 min for the wide
# ones. Where the native extension is built, onednn's own runs follow (`--impls onednn`). Stopped anywhere, the same command resumes where it was: a run whose report exists,
# has no progress file left, found no failure and names this CPU and these jax/jaxlib versions
# is done and skipped (delete its report to run it again); on another CPU or version it runs.
#
#   nice bash experiments/fuzz_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
JOBS=${JOBS:-$(nproc)}
status=0
here=$("$PYTHON" -c 'from jaxconv.tuning import machine; print(f"CPU: {machine.model()} ({machine.isa()})")')
versions=$("$PYTHON" -c 'from importlib.metadata import version as v; print("jax", v("jax") + ", jaxlib", v("jaxlib"))')
fuzz() {   # fuzz REPORT ARGS...: one run, resumable, unless its report is finished
  local report=$1 progress=${1%.md}.progress.jsonl
  shift
  if [ -f "$report" ] && [ ! -f "$progress" ] && grep -q ' s; 0 failures\.$' "$report" &&
     grep -qF "$here" "$report" && grep -qF "$versions" "$report"; then
    echo "$report: done here (delete it to run again)"
    return 0
  fi
  "$PYTHON" -m jaxconv.bench.fuzz "$@" --jobs "$JOBS" --output "$report" --progress "$progress"
}
fuzz experiments/results/fuzz_cpu.md 2000 --seed 1 || status=1
fuzz experiments/results/fuzz_cpu_wide.md 150 --wide --seed 2 || status=1
# The native formulation, which auto picks only where the extension runs (policy versions 2
# and 3): every case of seed 11 it claims, 200 wide ones of seed 12, 300 wide ones on large
# maps of seed 13 and 300 wide 1x1s on larger maps of seed 14, both dtypes. A report counts as done for this CPU and these versions whatever the
# library's build: after changing native/, delete the onednn reports to check the new build.
if "$PYTHON" -c 'from jaxconv.tuning import native; raise SystemExit(not native.available())'; then
  fuzz experiments/results/fuzz_onednn.md 1150 --seed 11 --impls onednn || status=1
  fuzz experiments/results/fuzz_onednn_wide.md 200 --wide --seed 12 --impls onednn || status=1
  fuzz experiments/results/fuzz_onednn_wide_large.md 300 --wide --large --seed 13 --impls onednn \
    || status=1
  # version 3's 1x1 row: 1x1s of up to 255 channels on maps of 13-41 per side
  fuzz experiments/results/fuzz_onednn_pointwise.md 300 --pointwise --seed 14 --impls onednn \
    || status=1
else
  echo "onednn fuzz skipped: the native extension is not built here"
fi
exit $status
