#!/usr/bin/env bash
# classviz on one NVIDIA GPU against the PyTorch reference, in one run
# (the GPU issue): start-up, a precision / layout / executor / batch sweep,
# --class all with the best settings and in fp32, stalled classes, the natural
# preset over all classes, CPU/GPU parity. Every figure is measured here, side
# by side with bench/gpu_reference.py on the same GPU.
#
# Run on the GPU machine from the repository root with target/release/classviz
# and weights/ carried over. Writes $OUT/gpu.jsonl (one JSON object per step),
# $OUT/gpu.log, and prints a table. DRY=1 rehearses every step on the CPU with
# tiny sizes.
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
  DEVICE=cpu; ALL=0-7; SUB=0-5; NATSUB=0-3; MACOSUB=0-1; ITERS=2; NAT_ITERS=2; ONE_ITERS=2
  BATCHES="2 4"; BIG=4; LIMIT=120; SALIENCY_FLAGS="--random-orders 2 --samples 2 --steps 2"
else
  TORCH_PY=${TORCH_PY:-/opt/torch/.venv/bin/python3}
  export LD_LIBRARY_PATH=$("$TORCH_PY" -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
  DEVICE=cuda; ALL=all; SUB=0-255; NATSUB=0-127; MACOSUB=0-31; ITERS=150; NAT_ITERS=256; ONE_ITERS=150
  BATCHES="128 256"; BIG=512; LIMIT=150; SALIENCY_FLAGS=""
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

run=(--json --quiet --force --device "$DEVICE")

# 1. Start-up: one class, cold; where the seconds go (CLASSVIZ_TRACE).
measure one_auto CLASSVIZ_TRACE=1 -- $BIN --class 100 --iters $ONE_ITERS "${run[@]}" --out "$work/one"
measure one_fp32 CLASSVIZ_TRACE=1 -- $BIN --class 100 --iters $ONE_ITERS --precision fp32 "${run[@]}" --out "$work/one32"
measure info CLASSVIZ_TRACE=1 -- $BIN info --device "$DEVICE"

# 2. The sweep on a subset: precision, channels-last, executor, batch, scorer.
for b in $BATCHES; do
  measure "sub_fp32_b$b" -- $BIN --class $SUB --iters $ITERS --precision fp32 --batch $b "${run[@]}" --out "$work/s"
  measure "sub_bf16_b$b" -- $BIN --class $SUB --iters $ITERS --precision bf16 --batch $b "${run[@]}" --out "$work/s"
  measure "sub_bf16_cl_b$b" CLASSVIZ_CUDA_CHANNELS_LAST=1 -- $BIN --class $SUB --iters $ITERS --precision bf16 --batch $b "${run[@]}" --out "$work/s"
  measure "sub_bf16_simple_b$b" CLASSVIZ_JIT=simple -- $BIN --class $SUB --iters $ITERS --precision bf16 --batch $b "${run[@]}" --out "$work/s"
done
measure "sub_bf16_same_scorer" CLASSVIZ_SCORER=same -- $BIN --class $SUB --iters $ITERS --precision bf16 --batch ${BATCHES%% *} "${run[@]}" --out "$work/s"

# 3. The fastest sweep setting that keeps top-1 within 1 point of fp32's.
best=$("$TORCH_PY" - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sub = [r for r in rows if r["name"].startswith("sub_") and r["rc"] == 0 and "top1" in r]
fp32 = max((r["top1"] for r in sub if "fp32" in r["name"]), default=0)
ok = [r for r in sub if r["top1"] >= fp32 - 0.01 * r["classes"]]
best = min(ok or sub, key=lambda r: r["seconds"])
flags = best["command"].split()
batch = flags[flags.index("--batch") + 1]
precision = flags[flags.index("--precision") + 1]
print(best["name"], best["env"].replace(" ", ",") or "-", batch, precision)
PY
)
read -r best_name best_env best_batch best_precision <<< "$best"
[[ $best_env == - ]] && best_env=""
log "best sweep setting: $best_name (env '$best_env', batch $best_batch, $best_precision)"
benv=(${best_env//,/ })

# 4. The headline: --class all, best settings; and fp32 for the top-1 / S_c comparison.
measure all_best "${benv[@]}" -- $BIN --class $ALL --iters $ITERS --precision $best_precision --batch $best_batch "${run[@]}" --out "$work/all"
measure "all_best_b$BIG" "${benv[@]}" -- $BIN --class $ALL --iters $ITERS --precision $best_precision --batch $BIG "${run[@]}" --out "$work/allbig"
measure all_fp32 "${benv[@]}" -- $BIN --class $ALL --iters $ITERS --precision fp32 --batch $best_batch "${run[@]}" --out "$work/all32"

# 5. Stalled classes (zero start) and what --init noise:0.01 makes of them.
stalled=$("$TORCH_PY" -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if r["name"]=="all_fp32": print(",".join(map(str, r.get("stalled", []))))' "$RESULTS")
if [[ -n $stalled ]]; then
  measure stalled_noise -- $BIN --class "$stalled" --iters $ITERS --precision fp32 --init noise:0.01 "${run[@]}" --out "$work/noise"
fi

# 6. The PyTorch reference over the same classes, fp32 and bf16.
measure ref_all_fp32 -- "$TORCH_PY" bench/gpu_reference.py --classes $ALL --iters $ITERS --batch 128 --device "$DEVICE"
measure ref_all_bf16 -- "$TORCH_PY" bench/gpu_reference.py --classes $ALL --iters $ITERS --batch 128 --device "$DEVICE" --bf16

# 7. The natural preset: all classes, and a subset against the Python Lucid reference.
measure natural_all "${benv[@]}" -- $BIN --class $ALL --preset natural --iters $NAT_ITERS --precision $best_precision --batch $best_batch "${run[@]}" --out "$work/nat"
score_dir natural_all_lite1 "$work/nat"
measure natural_sub "${benv[@]}" -- $BIN --class $NATSUB --preset natural --iters $NAT_ITERS --precision $best_precision --batch $best_batch "${run[@]}" --out "$work/nats"
score_dir natural_sub_lite1 "$work/nats"
measure natural_sub_views2 "${benv[@]}" -- $BIN --class $NATSUB --preset natural --views 2 --iters $NAT_ITERS --precision $best_precision --batch $best_batch "${run[@]}" --out "$work/nats2"
score_dir natural_sub_views2_lite1 "$work/nats2"
ref_bf16=""; [[ $best_precision == bf16 ]] && ref_bf16=--bf16
measure ref_natural_sub -- "$TORCH_PY" bench/gpu_reference.py --preset natural --classes $NATSUB --iters $NAT_ITERS --batch $best_batch --device "$DEVICE" $ref_bf16

# 8. CPU/GPU parity: the same class and seed on both, fp32.
measure parity_cpu -- $BIN --class 130 --iters $ONE_ITERS --precision fp32 --json --quiet --force --device cpu --out "$work/pc"
measure parity_gpu -- $BIN --class 130 --iters $ONE_ITERS --precision fp32 "${run[@]}" --out "$work/pg"

if [[ -x bench/gpu_extra.sh ]]; then
  source bench/gpu_extra.sh
fi

cp "$LOG" "$OUT/" 2>/dev/null
"$TORCH_PY" bench/gpu_table.py "$RESULTS" | tee "$OUT/gpu.md"
