#!/usr/bin/env bash
# The release as a user gets it: checks the wheel in dist/ (built by `make dist`) holds what it
# should, installs it from PyPI's dependencies into a fresh venv in a temporary directory outside
# the checkout, and runs it from there: import, `jaxconv --version`, `jaxconv explain`,
# `jaxconv run --list` and a shortened `jaxconv run quickstart` (one epoch, one seed: about a
# minute on 2 CPU cores, plus installing the dependencies). Exits non-zero on the first failure.
# Usage: bash .ci/wheel_smoke.sh   (PYTHON picks the interpreter for the venv; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
fail() { echo "wheel smoke: $*" >&2; exit 1; }

shopt -s nullglob
wheels=(dist/jaxconv-*-py3-none-any.whl)
[ "${#wheels[@]}" -eq 1 ] || fail "expected one wheel dist/jaxconv-*-py3-none-any.whl, found" \
  "${#wheels[@]} (run make dist)"
wheel="$PWD/${wheels[0]}"
version_in_name=$(basename "$wheel" | cut -d- -f2)

# What the wheel holds: the package with py.typed and the example configs; no tests, results,
# experiments or native library (machine-specific: each install builds its own, make native).
python3 - "$wheel" <<'EOF'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
missing = [n for n in ("jaxconv/__init__.py", "jaxconv/py.typed", "jaxconv/cli.py",
                       "jaxconv/configs/quickstart.yaml") if n not in names]
stray = [n for n in names
         if not n.startswith(("jaxconv/", "jaxconv-")) or n.endswith((".so", ".pyc"))
         or "/tests/" in n or "/results/" in n]
if missing or stray:
    sys.exit(f"wheel smoke: {sys.argv[1]} lacks {missing} and should not hold {stray}")
print(f"wheel smoke: {len(names)} files, none stray")
EOF

work=$(mktemp -d "${TMPDIR:-/tmp}/jaxconv-wheel-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$wheel"
echo "wheel smoke: installed with its dependencies in $((SECONDS - started)) s"
mkdir "$work/user"
cd "$work/user"
jaxconv="$work/venv/bin/jaxconv"

# The import comes from the installed wheel, not from a checkout.
location=$("$work/venv/bin/python" -c 'import jaxconv; print(jaxconv.__file__)')
case "$location" in
  "$work/venv/"*) ;;
  *) fail "import jaxconv found $location, not the wheel installed in $work/venv" ;;
esac
version=$("$work/venv/bin/python" -c 'import jaxconv; print(jaxconv.__version__)')
[ "$version" = "$version_in_name" ] || fail "jaxconv.__version__ is $version but the wheel is" \
  "$(basename "$wheel")"
printed=$("$jaxconv" --version)
[ "$printed" = "jaxconv $version" ] || fail "jaxconv --version printed '$printed', expected" \
  "'jaxconv $version'"
echo "wheel smoke: $printed, imported from $location"

"$jaxconv" explain conv2d --input 32x32x64 --filters 16 --kernel 1 | tee explain.txt
grep -q "Parameters: 1,024 weights + 16 biases = 1,040" explain.txt \
  || fail "jaxconv explain did not count the 1x1 conv's parameters"

"$jaxconv" run --list | tee list.txt
grep -q "^  quickstart " list.txt || fail "jaxconv run --list does not name quickstart"

"$jaxconv" run quickstart --quiet --set train.epochs=1 --set 'seeds=[0]'
for file in report.md results.csv accuracy_vs_params.png; do
  [ -s "runs/quickstart/$file" ] || fail "jaxconv run quickstart wrote no ./runs/quickstart/$file"
done
grep -q "inverted_residual" runs/quickstart/report.md \
  || fail "the quickstart report lacks the inverted_residual variant"
echo "wheel smoke: passed in $((SECONDS - started)) s in all (jaxconv $version from $(basename "$wheel"))"
