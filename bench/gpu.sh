#!/usr/bin/env bash
# classviz's engines on one NVIDIA GPU against the PyTorch reference, in one
# run: the CUDA package compiled here first (timed), then one class (batch 1),
# 128 classes (batch 128) and --class all for the paper's preset, and the
# natural preset over all classes, each on TorchScript and on the compiled
# engine with CUDA graphs (and without them at batch 1), side by side with
# bench/gpu_reference.py on the same GPU. Targets (issue 21): all classes in
# 15 s or less, one class in 5 s or less, natural --class all in 30 s or less.
#
# Run on the GPU machine from the repository root, carrying target/release/classviz,
# weights/efficientnet_lite0.{pt,json,step.pt2} and weights/imagenet_classes.txt
# (about 48 MB). Writes $OUT/gpu.jsonl (one JSON object per step) and
# $OUT/gpu.log, and prints a table. DRY=1 rehearses every step on the CPU with
# tiny sizes (and compiles the CPU package instead).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/classviz-gpu}
mkdir -p "$OUT"
RESULTS=$OUT/gpu.jsonl
LOG=$OUT/gpu.log
: > "$RESULTS"
: > "$LOG"
BIN=target/release/classviz
LITE0=weights/efficientnet_lite0.pt
LITE1=weights/efficientnet_lite1.pt
work=$(mktemp -d)

if [[ ${DRY:-0} == 1 ]]; then
  TORCH_PY=${TORCH_PY:-.venv/bin/python3}
  DEVICE=cpu; ALL=0-7; SUB=0-3; ITERS=2; NAT_ITERS=2; ONE_ITERS=2; SUB_BATCH=4; LIMIT=300
else
  TORCH_PY=${TORCH_PY:-/opt/torch/.venv/bin/python3}
  # libtorch and the CUDA runtime of that venv's wheels.
  torch_lib=$("$TORCH_PY" -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
  export LD_LIBRARY_PATH=$torch_lib:$torch_lib/../../nvidia/cu13/lib
  DEVICE=cuda; ALL=all; SUB=0-127; ITERS=150; NAT_ITERS=256; ONE_ITERS=150; SUB_BATCH=128; LIMIT=240
fi

log() { echo "[$(date +%T)] $*" | tee -a "$LOG" >&2; }

# measure NAME [VAR=value ...] -- command ...: wall time, exit status, and a
# summary of classviz's --json lines (top-1, stalled, median S_c) as one JSON line.
measure() {
  local name=$1; shift
  local envs=()
  while [[ $# -gt 0 && $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  log "$name: ${envs[*]} $*"
  local start end rc
  start=$(date +%s.%N)
  env "${envs[@]}" timeout "$LIMIT" "$@" > "$work/$name.out" 2> "$work/$name.err"
  rc=$?
  end=$(date +%s.%N)
  tail -n 3 "$work/$name.err" >> "$LOG"
  "$TORCH_PY" - "$name" "$rc" "$start" "$end" "$work/$name.out" "$work/$name.err" "${envs[*]}" "$*" >> "$RESULTS" <<'PY'
import json, sys
name, rc, start, end, out, err, envs, command = sys.argv[1:]
row = {"name": name, "rc": int(rc), "seconds": round(float(end) - float(start), 2), "env": envs, "command": command}
lines = []
for line in open(out):
    line = line.strip()
    if line.startswith("{"):
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
classes = [l for l in lines if "top5" in l and "class" in l]
if classes:
    row["classes"] = len(classes)
    row["top1"] = sum(l["top5"][0]["class"] == l["class"] for l in classes)
    row["stalled"] = [l["class"] for l in classes if l.get("stalled")]
    logits = sorted(l["logit"] for l in classes)
    row["median_logit"] = logits[len(logits) // 2]
    row["p10_logit"] = logits[len(logits) // 10]
elif lines and "seconds" in lines[-1]:
    row.update({k: v for k, v in lines[-1].items() if k not in ("seconds",)})
    row["reference_seconds"] = lines[-1]["seconds"]
elif lines and "top1" in lines[-1]:
    row["scored_top1"] = lines[-1]["top1"]; row["scored_total"] = lines[-1]["total"]
    row["scored_mean_prob"] = lines[-1]["mean_prob"]
trace = [l for l in open(err) if "trace:" in l]
if trace:
    row["trace"] = [t.split("trace:", 1)[1].strip() for t in trace]
print(json.dumps(row))
PY
}

# score_dir NAME DIR: a second network's verdict on a folder's class images.
score_dir() {
  [[ -f $LITE1 ]] || return 0
  local images
  images=$(ls "$2"/*.png 2>/dev/null | grep -v -e grid.png -e _canvas.png -e _alpha.png)
  [[ -n $images ]] || return 0
  measure "$1" -- $BIN score --model $LITE1 --device "$DEVICE" --json $images
}

field() { # field NAME KEY: a value from a measured step
  "$TORCH_PY" -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if r["name"]==sys.argv[2]: print(r.get(sys.argv[3],""))' "$RESULTS" "$1" "$2"
}

log "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo no GPU)"
"$TORCH_PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tee -a "$LOG" >&2

# 0. Compile the package for this device from the traced step (only torch needed).
measure compile -- "$TORCH_PY" weights/compile_step.py weights/efficientnet_lite0.step.pt2 --device "$DEVICE"

run=(--json --quiet --force --device "$DEVICE")
ts=(--engine torchscript)
cc=(--engine compiled)

# 1. One class, batch 1, cold start included.
measure one_torchscript CLASSVIZ_TRACE=1 -- $BIN --class 100 --iters $ONE_ITERS "${ts[@]}" "${run[@]}" --out "$work/one"
measure one_compiled CLASSVIZ_TRACE=1 -- $BIN --class 100 --iters $ONE_ITERS "${cc[@]}" "${run[@]}" --out "$work/one"
measure one_compiled_no_graphs CLASSVIZ_CUDA_GRAPHS=0 -- $BIN --class 100 --iters $ONE_ITERS "${cc[@]}" "${run[@]}" --out "$work/one"
measure one_reference -- "$TORCH_PY" bench/gpu_reference.py --classes 100 --iters $ONE_ITERS --batch 1 --device "$DEVICE"

# 2. Batch 128 (fp32 on the compiled engine: a compiled graph fixes its arithmetic).
measure b128_torchscript -- $BIN --class $SUB --iters $ITERS --batch $SUB_BATCH "${ts[@]}" "${run[@]}" --out "$work/s"
measure b128_torchscript_fp32 -- $BIN --class $SUB --iters $ITERS --batch $SUB_BATCH --precision fp32 "${ts[@]}" "${run[@]}" --out "$work/s"
measure b128_compiled -- $BIN --class $SUB --iters $ITERS --batch $SUB_BATCH "${cc[@]}" "${run[@]}" --out "$work/s"

# 3. Every class at the defaults, on each engine, and the reference.
measure all_torchscript -- $BIN --class $ALL --iters $ITERS "${ts[@]}" "${run[@]}" --out "$work/all"
measure all_compiled CLASSVIZ_TRACE=1 -- $BIN --class $ALL --iters $ITERS "${cc[@]}" "${run[@]}" --out "$work/all"
measure all_reference -- "$TORCH_PY" bench/gpu_reference.py --classes $ALL --iters $ITERS --batch 256 --device "$DEVICE" --bf16

# 4. The natural preset over every class.
measure natural_torchscript -- $BIN --class $ALL --preset natural --iters $NAT_ITERS "${ts[@]}" "${run[@]}" --out "$work/nat"
measure natural_compiled -- $BIN --class $ALL --preset natural --iters $NAT_ITERS "${cc[@]}" "${run[@]}" --out "$work/nat"

"$TORCH_PY" bench/gpu_table.py "$RESULTS" | tee -a "$LOG"
rm -rf "$work"
