#!/usr/bin/env bash
# A short second GPU call after bench/gpu.sh chose the CUDA defaults: the
# defaults themselves (no flags, no knobs), timed, with a second network's
# verdict on MaCo, and channels-last under the simple executor (not swept
# before). Writes $OUT/confirm.jsonl; bench/gpu.sh's `measure` format.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/classviz-gpu}
mkdir -p "$OUT"
TORCH_PY=${TORCH_PY:-/opt/torch/.venv/bin/python3}
export LD_LIBRARY_PATH=$("$TORCH_PY" -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
BIN=target/release/classviz
work=$(mktemp -d)
t() { # t NAME command...: wall seconds and the command's JSON lines
  local name=$1; shift
  local start=$(date +%s%N)
  "$@" > "$work/$name.out" 2> "$work/$name.err"
  local rc=$? ms=$(( ($(date +%s%N) - start) / 1000000 ))
  "$TORCH_PY" - "$name" "$rc" "$ms" "$work/$name.out" "$*" >> "$OUT/confirm.jsonl" <<'PY'
import json, sys
name, rc, ms, out, command = sys.argv[1:]
rows = [json.loads(l) for l in open(out) if l.startswith("{")]
row = {"name": name, "rc": int(rc), "seconds": int(ms) / 1000, "command": command}
classes = [r for r in rows if "top5" in r and "class" in r]
if classes:
    row.update(classes=len(classes), top1=sum(r["top5"][0]["class"] == r["class"] for r in classes),
               stalled=sum(bool(r.get("stalled")) for r in classes))
elif rows and "mean_prob" in rows[-1]:
    row.update(scored_top1=rows[-1]["top1"], scored_total=rows[-1]["total"], mean_prob=rows[-1]["mean_prob"])
print(json.dumps(row))
PY
  tail -n 1 "$OUT/confirm.jsonl"
}
run=(--json --quiet --force)
t one_default env CLASSVIZ_TRACE=1 $BIN --class 100 "${run[@]}" --out "$work/one"
cp "$work/one_default.err" "$OUT/one_default_trace.txt"
t all_default $BIN --class all "${run[@]}" --out "$work/all"
t maco_default $BIN --class 0-31 --preset maco "${run[@]}" --out "$work/maco"
t maco_default_lite1 $BIN score --model weights/efficientnet_lite1.pt --json $(ls "$work"/maco/*.png | grep -v _canvas)
t sub_cl_simple env CLASSVIZ_CUDA_CHANNELS_LAST=1 $BIN --class 0-255 "${run[@]}" --out "$work/cl"
t sub_default $BIN --class 0-255 "${run[@]}" --out "$work/sub"
