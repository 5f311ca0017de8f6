#!/usr/bin/env bash
# The wheel as a pip user meets it: `make wheel`, a fresh venv with torch 2.11.0
# from the registry and the wheel installed into it, `classviz-export
# efficientnet_lite0` into a fresh home, then `classviz --class 100` from an
# unrelated folder, with no --model and no LD_LIBRARY_PATH; the class must be
# Lite0's top-1 for its own image.
set -euo pipefail
cd "$(dirname "$0")/.."
make wheel
wheel=$(ls -t target/wheels/classviz-*.whl | head -1)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip}
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --disable-pip-version-check -q torch==2.11.0
"$scratch/venv/bin/pip" install --disable-pip-version-check -q "$wheel"
mkdir -p "$scratch/home" "$scratch/elsewhere"
cd "$scratch/elsewhere"
unset LD_LIBRARY_PATH CLASSVIZ_HOME
HOME="$scratch/home" "$scratch/venv/bin/classviz-export" efficientnet_lite0
HOME="$scratch/home" "$scratch/venv/bin/classviz" --class 100 --out "$scratch/out" --json --quiet > result.json
"$scratch/venv/bin/python" - result.json <<'PY'
import json, sys
row = json.loads(open(sys.argv[1]).read().splitlines()[0])
assert row["top5"][0]["class"] == 100, f"top-1 is {row['top5'][0]}, not class 100"
print(f"wheel: {row['name']} S_c {row['logit']:.2f}, p {row['prob']:.3f}, top-1 from an unrelated folder")
PY
"$scratch/venv/bin/classviz" completions bash | grep -q "complete" && echo "wheel: completions print"
