#!/usr/bin/env bash
# One epoch of Study 1's ten designs (seed 0), with the code of an earlier commit and with this
# checkout's, back to back on this machine: each with empty caches (a HOME of its own), the same
# config file (the earlier commit's), quiet. Prints the wall time of each whole command and every
# design's training images/s (result.json).
#
#   bash experiments/epoch_before_after.sh [BEFORE_COMMIT]    (default b3b8b04)
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:-b3b8b04}
here=$(pwd)
python=$here/.venv/bin/python
work=$(mktemp -d)
echo "logs and run folders: $work"
# the data stay where they are (a HOME of its own would hide ~/.cache/jaxconv); every cache
# the engine reads is pointed at an empty place, whatever the caller's environment says
export JAXCONV_DATA_DIR=${JAXCONV_DATA_DIR:-$HOME/.cache/jaxconv}
unset JAX_COMPILATION_CACHE_DIR JAXCONV_COMPILE_CACHE JAXCONV_AUTOTUNE_CACHE
after_label=$(git describe --always --dirty)
git worktree add --detach "$work/before" "$before" >/dev/null
trap 'git worktree remove --force "$work/before"' EXIT
git show "$before:configs/fashion_mnist/bottlenecks.yaml" > "$work/config.yaml"
for side in before after; do
  code=$here
  [ "$side" = before ] && code=$work/before
  mkdir -p "$work/home-$side"
  start=$(date +%s)
  (cd "$code" && HOME=$work/home-$side "$python" -m jaxconv run "$work/config.yaml" --quiet \
    --set train.epochs=1 --set 'seeds=[0]' --set "output_dir=$work/runs-$side") \
    > "$work/$side.log" 2>&1
  echo "$side ($( [ "$side" = before ] && echo "$before" || echo "$after_label")):" \
    "$(( $(date +%s) - start )) s for the whole command" | tee -a "$work/walls.txt"
done
"$python" - "$work" <<'EOF'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
def speeds(side):
    return {p.parent.parent.name: json.loads(p.read_text())["images_per_second"]
            for p in sorted((work / f"runs-{side}").glob("*/*/seed-0/result.json"))}
before, after = speeds("before"), speeds("after")
print("| design | images/s before | images/s after | after / before |")
print("|---|---:|---:|---:|")
for name in [n for n in before if n in after]:
    ratio = f"{after[name] / before[name]:.2f}" if before[name] else "-"
    print(f"| {name} | {before[name]:.0f} | {after[name]:.0f} | {ratio} |")
missing = sorted(set(before) ^ set(after))
if missing:
    print(f"finished on one side only: {', '.join(missing)}")
EOF
